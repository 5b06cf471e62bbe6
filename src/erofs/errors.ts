/**
 * The one error type of the EROFS metadata code. `code` is a stable kebab-case
 * identifier (tests and callers switch on it); `message` is one line that names
 * the file (when known) and what is wrong with it.
 */
export class ErofsFormatError extends Error {
  readonly code: string;
  /** The file the problem was found in, when the caller told us. */
  readonly file?: string;
  constructor(code: string, message: string, file?: string) {
    super(message);
    this.code = code;
    if (file !== undefined) this.file = file;
    this.name = 'ErofsFormatError';
  }
}
