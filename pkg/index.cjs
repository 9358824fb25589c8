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
// As TypeScript's CommonJS output expects of a module typed with a default export
// (index.d.cts): `import init from 'threadline'` then calls `init`, not the module.
Object.defineProperty(api, '__esModule', { value: true });
module.exports = api;
