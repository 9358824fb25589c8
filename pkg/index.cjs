'use strict';
// Node, CommonJS: the Node build (instantiated synchronously on require).
const wasm = require('./node/threadline.js');

class ThreadlineError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'ThreadlineError';
    this.kind = kind;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'ThreadlineError' && typeof value.kind === 'string';
  }
}

const NAMES = [
  'Tracker',
  'ThreadGuard',
  'IdGenerator',
  'UserContext',
  'SessionStore',
  'IsolationKey',
  'Registry',
  'compareAnalyses',
  'parseId',
  'parseContextId',
  'isValidId',
  'idAgeMs',
  'runReadings',
  'threadIdForRun',
  'areCorrelated',
  'correlation',
  'version',
];

async function init() {}
function initSync() {}

const api = { ThreadlineError, init, initSync, default: init };
for (const name of NAMES) api[name] = wasm[name];
module.exports = api;
