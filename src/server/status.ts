/**
 * SnapshotterError kind -> gRPC status code. containerd maps these codes back
 * to its errdefs (errgrpc.ToNative), so NotFound must stay NotFound, etc.
 * Anything that is not a SnapshotterError is a bug or an unexpected system
 * error: it becomes Internal with the message, never a silent success.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { type ErrorKind, SnapshotterError } from '../errdefs';

const codeOfKind: Record<ErrorKind, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unavailable: status.UNAVAILABLE,
  Unimplemented: status.UNIMPLEMENTED,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  DeadlineExceeded: status.DEADLINE_EXCEEDED,
  Internal: status.INTERNAL,
};

/**
 * An error that already carries an exact gRPC code (the remote backend passes
 * upstream statuses through, including codes that have no ErrorKind such as
 * PermissionDenied). Duck-typed so core modules need not import grpc-js.
 */
interface CarriesGrpcCode {
  grpcCode: number;
}

function carriesGrpcCode(err: unknown): err is Error & CarriesGrpcCode {
  return err instanceof Error && typeof (err as Partial<CarriesGrpcCode>).grpcCode === 'number';
}

export interface GrpcFailure {
  code: status;
  details: string;
}

export function toGrpcFailure(err: unknown): GrpcFailure {
  if (carriesGrpcCode(err)) return { code: err.grpcCode as status, details: err.message };
  if (err instanceof SnapshotterError) return { code: codeOfKind[err.kind], details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}` };
}

export function toServiceError(failure: GrpcFailure): Partial<ServiceError> {
  return { code: failure.code, details: failure.details, message: failure.details };
}

export function codeName(code: status): string {
  return status[code] ?? String(code);
}
