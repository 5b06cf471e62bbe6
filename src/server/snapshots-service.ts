/**
 * containerd.services.snapshots.v1.Snapshots implemented on a
 * ProfiledSnapshotter: decode + validate the request, build the CallContext
 * (namespace from `containerd-namespace` metadata, cancellation), call the
 * core, encode the answer or map the error to a gRPC status. Every call is
 * logged at debug and measured.
 */
import type { Metadata, sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Empty } from '../../api/gen/google/protobuf/empty';
import type * as api from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import { invalidArgument } from '../errdefs';
import type { CallContext } from '../backend/backend';
import type { ProfiledSnapshotter } from '../snapshotter/snapshotter';
import { infoFromWire, infoToWire, mountsToWire } from './convert';
import type { DaemonMetrics } from './metrics';
import { codeName, toGrpcFailure, toServiceError } from './status';
import { checkFieldPaths, checkLabels, checkNamespace, checkString, requireName } from './validate';

export const NAMESPACE_METADATA_KEY = 'containerd-namespace';
/** Infos per List response message (containerd's own service batches too). */
const LIST_BATCH = 100;

export interface ServiceOptions {
  snapshotter: ProfiledSnapshotter;
  logger: Logger;
  metrics?: DaemonMetrics;
  /** Tracks in-flight calls so shutdown can cancel them after its bound. */
  inflight: Set<AbortController>;
}

function namespaceOf(metadata: Metadata): string | undefined {
  const values = metadata.get(NAMESPACE_METADATA_KEY);
  if (values.length === 0) return undefined;
  const v = values[0];
  return checkNamespace(typeof v === 'string' ? v : v.toString('utf8'));
}

interface CallInfo {
  rpc: string;
  snapshotter: string;
  key?: string;
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

export function createSnapshotsService(options: ServiceOptions): api.SnapshotsServer {
  const { snapshotter: core, logger, metrics, inflight } = options;

  /** Runs one call with context, logging, metrics and error mapping. */
  async function handle<T>(call: AnyCall, info: CallInfo, body: (ctx: CallContext) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: ReturnType<typeof toGrpcFailure> }> {
    const started = process.hrtime.bigint();
    const abort = new AbortController();
    inflight.add(abort);
    const onCancel = () => abort.abort(new Error('call cancelled by the client'));
    call.on('cancelled', onCancel);
    let namespace: string | undefined;
    try {
      namespace = namespaceOf(call.metadata);
      const value = await body({ namespace, signal: abort.signal });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics?.observeCall(info.rpc, seconds);
      logger.debug({ rpc: info.rpc, snapshotter: info.snapshotter, key: info.key, namespace, duration_ms: seconds * 1000 }, 'rpc');
      return { ok: true, value };
    } catch (err) {
      const failure = toGrpcFailure(err);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const code = codeName(failure.code);
      metrics?.observeCall(info.rpc, seconds, code);
      const fields = { rpc: info.rpc, snapshotter: info.snapshotter, key: info.key, namespace, duration_ms: seconds * 1000, code, error: failure.details };
      if (code === 'INTERNAL' || code === 'UNKNOWN' || code === 'DATA_LOSS') logger.error({ ...fields, stack: (err as Error)?.stack }, 'rpc failed');
      else logger.debug(fields, 'rpc failed');
      return { ok: false, error: failure };
    } finally {
      call.removeListener('cancelled', onCancel);
      inflight.delete(abort);
    }
  }

  function unary<Req, Res>(rpc: string, infoOf: (req: Req) => CallInfo, body: (req: Req, ctx: CallContext) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      void handle(call as AnyCall, infoOf(call.request), (ctx) => body(call.request, ctx)).then((r) => {
        if (r.ok) callback(null, r.value);
        else callback(toServiceError(r.error));
      });
    };
  }

  const empty = (): Empty => ({});
  const keyed = (rpc: string) => (req: { snapshotter: string; key: string }): CallInfo => ({ rpc, snapshotter: req.snapshotter, key: req.key });

  return {
    prepare: unary<api.PrepareSnapshotRequest, api.PrepareSnapshotResponse>('Prepare', keyed('Prepare'), async (req, ctx) => {
      const key = requireName('key', req.key, 'Prepare');
      const mounts = await core.prepare(ctx, req.snapshotter, key, checkString('parent', req.parent, 'Prepare'), checkLabels(req.labels, 'Prepare'));
      return { mounts: mountsToWire(mounts) };
    }),
    view: unary<api.ViewSnapshotRequest, api.ViewSnapshotResponse>('View', keyed('View'), async (req, ctx) => {
      const key = requireName('key', req.key, 'View');
      const mounts = await core.view(ctx, req.snapshotter, key, checkString('parent', req.parent, 'View'), checkLabels(req.labels, 'View'));
      return { mounts: mountsToWire(mounts) };
    }),
    mounts: unary<api.MountsRequest, api.MountsResponse>('Mounts', keyed('Mounts'), async (req, ctx) => {
      const mounts = await core.mounts(ctx, req.snapshotter, requireName('key', req.key, 'Mounts'));
      return { mounts: mountsToWire(mounts) };
    }),
    commit: unary<api.CommitSnapshotRequest, Empty>('Commit', keyed('Commit'), async (req, ctx) => {
      const name = requireName('name', req.name, 'Commit');
      const key = requireName('key', req.key, 'Commit');
      await core.commit(ctx, req.snapshotter, name, key, checkLabels(req.labels, 'Commit'), checkString('parent', req.parent, 'Commit'));
      return empty();
    }),
    remove: unary<api.RemoveSnapshotRequest, Empty>('Remove', keyed('Remove'), async (req, ctx) => {
      await core.remove(ctx, req.snapshotter, requireName('key', req.key, 'Remove'));
      return empty();
    }),
    stat: unary<api.StatSnapshotRequest, api.StatSnapshotResponse>('Stat', keyed('Stat'), async (req, ctx) => {
      const info = await core.stat(ctx, req.snapshotter, requireName('key', req.key, 'Stat'));
      return { info: infoToWire(info) };
    }),
    update: unary<api.UpdateSnapshotRequest, api.UpdateSnapshotResponse>(
      'Update',
      (req) => ({ rpc: 'Update', snapshotter: req.snapshotter, key: req.info?.name }),
      async (req, ctx) => {
        if (!req.info) throw invalidArgument('Update: info is required');
        requireName('info.name', req.info.name, 'Update');
        checkLabels(req.info.labels, 'Update');
        const paths = checkFieldPaths(req.updateMask ?? [], 'Update');
        const info = await core.update(ctx, req.snapshotter, infoFromWire(req.info), paths);
        return { info: infoToWire(info) };
      },
    ),
    usage: unary<api.UsageRequest, api.UsageResponse>('Usage', keyed('Usage'), async (req, ctx) => {
      const usage = await core.usage(ctx, req.snapshotter, requireName('key', req.key, 'Usage'));
      return { size: usage.size, inodes: usage.inodes };
    }),
    cleanup: unary<api.CleanupRequest, Empty>('Cleanup', (req) => ({ rpc: 'Cleanup', snapshotter: req.snapshotter }), async (req, ctx) => {
      await core.cleanup(ctx, req.snapshotter);
      return empty();
    }),
    list: (call: ServerWritableStream<api.ListSnapshotsRequest, api.ListSnapshotsResponse>) => {
      const req = call.request;
      void handle(call as AnyCall, { rpc: 'List', snapshotter: req.snapshotter }, async (ctx) => {
        for (const f of req.filters) checkString('filter', f, 'List');
        let batch: api.ListSnapshotsResponse['info'] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const more = call.write({ info: batch });
          batch = [];
          // Respect backpressure: a huge List must not buffer everything in memory.
          // A client that cancels never drains: stop waiting then too.
          if (!more && !ctx.signal?.aborted) {
            await new Promise<void>((resolve) => {
              call.once('drain', resolve);
              ctx.signal?.addEventListener('abort', () => resolve(), { once: true });
            });
          }
        };
        for await (const info of core.list(ctx, req.snapshotter, req.filters)) {
          if (ctx.signal?.aborted) break;
          batch.push(infoToWire(info));
          if (batch.length >= LIST_BATCH) await flush();
        }
        await flush();
      }).then((r) => {
        if (r.ok) call.end();
        // grpc-js turns an 'error' event into the call's status (destroy() would send none).
        else call.emit('error', Object.assign(new Error(r.error.details), toServiceError(r.error)));
      });
    },
  };
}
