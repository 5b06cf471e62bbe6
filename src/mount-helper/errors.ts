/**
 * The host mount helper's one error type. `exitCode` 2 means the request was
 * refused before anything was touched (bad argv, option, config, path or
 * descriptor); 1 means a mount step failed and everything done was undone.
 * `message` is made one line by `oneLine` before it is printed.
 */
export const EXIT_REFUSED = 2;
export const EXIT_FAILED = 1;

export class HelperError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_REFUSED) {
    super(message);
    this.name = 'HelperError';
    this.exitCode = exitCode;
  }
}

/** Refused input (exit 2). */
export function refuse(message: string): never {
  throw new HelperError(message, EXIT_REFUSED);
}

/** Hostile names must not break the single stderr line. */
export function oneLine(message: string): string {
  return message.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** A path quoted for a message (JSON quoting escapes control characters). */
export function show(p: string): string {
  return JSON.stringify(p);
}
