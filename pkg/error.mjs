/**
 * The error every threadline call throws. The wasm module throws plain `Error`s named
 * `ThreadlineError` carrying a `kind` (so errors from the Node build, the web build and
 * a worker all match); `instanceof ThreadlineError` recognises all of them.
 */
export class ThreadlineError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'ThreadlineError';
    this.kind = kind;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'ThreadlineError' && typeof value.kind === 'string';
  }
}
