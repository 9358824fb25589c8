// Node, ES modules: the Node build (instantiated synchronously on import).
import wasm from './node/threadline.js';

export { ThreadlineError } from './error.mjs';

export const {
  Tracker,
  ThreadGuard,
  IdGenerator,
  UserContext,
  SessionStore,
  IsolationKey,
  Registry,
  compareAnalyses,
  parseId,
  parseContextId,
  isValidId,
  idAgeMs,
  runReadings,
  threadIdForRun,
  areCorrelated,
  correlation,
  version,
} = wasm;

/** The Node build is ready on import; `init()` exists so code shared with browsers can await it. */
export default async function init() {}

/** See `init`. */
export function initSync() {}
