import { SnapshotterError, type ErrorKind } from '../errdefs';
import { unsafePathProblem } from '../vmdk/paths';

/** Context every planner message starts with: which key of which profile. */
export interface PlanContext {
  key: string;
  profile: string;
}

function prefix(ctx: PlanContext): string {
  return `cannot rewrite mounts of key ${JSON.stringify(ctx.key)} (profile ${ctx.profile})`;
}

/** The upstream returned a shape or option the vmdk contract cannot express. */
export function refuse(ctx: PlanContext, reason: string): SnapshotterError {
  return new SnapshotterError('FailedPrecondition', `${prefix(ctx)}: ${reason}`);
}

export function planError(kind: ErrorKind, ctx: PlanContext, reason: string): SnapshotterError {
  return new SnapshotterError(kind, `${prefix(ctx)}: ${reason}`);
}

/**
 * A path that will end up in a descriptor extent line. Paths with a double
 * quote, CR, LF, NUL or whitespace cannot be written safely (QEMU has no
 * escaping; Cloud Hypervisor splits on whitespace): InvalidArgument naming the
 * key and what the path is.
 */
export function checkLayerPath(ctx: PlanContext, what: string, p: string): void {
  const problem = unsafePathProblem(p);
  if (problem) throw planError('InvalidArgument', ctx, `${what}: ${problem.message}`);
  if (!p.startsWith('/')) throw planError('InvalidArgument', ctx, `${what}: path ${JSON.stringify(p)} is not absolute`);
}
