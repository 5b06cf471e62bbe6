/** Typed error of the VMDK descriptor code: `code` is stable, `message` is one line. */
export class VmdkError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'VmdkError';
  }
}
