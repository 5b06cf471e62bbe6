/**
 * Refusals of the native merge. `code` is stable kebab-case (callers and tests
 * switch on it); `message` is one line naming the layer and what is wrong.
 * Reader problems keep the reader's code (bad-checksum, compressed-layout, ...).
 */
export class MergeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'MergeError';
  }
}
