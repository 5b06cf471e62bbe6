/**
 * Error kinds shared by every layer of the daemon. They mirror containerd's
 * errdefs so that the gRPC server can map them to status codes containerd maps
 * back (NotFound, AlreadyExists, ...). Core modules throw these; only the
 * server knows about gRPC.
 */
export type ErrorKind =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'Unimplemented'
  | 'ResourceExhausted'
  | 'DeadlineExceeded'
  | 'Internal';

export class SnapshotterError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = `SnapshotterError(${kind})`;
  }
}

export const invalidArgument = (message: string) => new SnapshotterError('InvalidArgument', message);
export const notFound = (message: string) => new SnapshotterError('NotFound', message);
export const alreadyExists = (message: string) => new SnapshotterError('AlreadyExists', message);
export const failedPrecondition = (message: string) => new SnapshotterError('FailedPrecondition', message);
export const unavailable = (message: string) => new SnapshotterError('Unavailable', message);
export const unimplemented = (message: string) => new SnapshotterError('Unimplemented', message);

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof SnapshotterError && err.kind === kind;
}
