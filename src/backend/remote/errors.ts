/**
 * gRPC status from the upstream -> SnapshotterError. The exact gRPC code is
 * kept on the error (`grpcCode`) so the server passes it through unchanged,
 * including codes that have no ErrorKind (PermissionDenied, Aborted, ...).
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { type ErrorKind, SnapshotterError } from '../../errdefs';

const kindOfCode: Partial<Record<status, ErrorKind>> = {
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
};

export class UpstreamError extends SnapshotterError {
  readonly grpcCode: status;
  constructor(grpcCode: status, message: string, cause?: unknown) {
    super(kindOfCode[grpcCode] ?? 'Internal', message, { cause });
    this.grpcCode = grpcCode;
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** Maps a failed upstream call; `address` names the socket in connection errors. */
export function fromUpstream(err: unknown, address: string): Error {
  if (err instanceof SnapshotterError) return err;
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  if (err.code === status.UNAVAILABLE) {
    return new UpstreamError(status.UNAVAILABLE, `upstream snapshotter at ${address} is unavailable: ${err.details}`, err);
  }
  if (err.code === status.DEADLINE_EXCEEDED) {
    return new UpstreamError(status.DEADLINE_EXCEEDED, `upstream snapshotter at ${address} did not answer in time: ${err.details}`, err);
  }
  // Pass the upstream's own message through verbatim: containerd and operators see what it said.
  return new UpstreamError(err.code, err.details, err);
}

export function unavailableUpstream(address: string, why: string): UpstreamError {
  return new UpstreamError(status.UNAVAILABLE, `upstream snapshotter at ${address} is unavailable: ${why}`);
}
