/**
 * The snapshotter as containerd's testsuite sees it (snapshots.Snapshotter),
 * with two implementations: straight on a Backend (development, unit level)
 * and over gRPC through a running daemon (what the acceptance requires).
 */
import type { Backend, SnapshotInfo, SnapshotUsage } from '../../src/backend/backend';
import { SnapshotterError, type ErrorKind } from '../../src/errdefs';
import type { Mount } from '../../src/mount';
import type { SnapshotsTestClient } from '../support/daemon';

export interface Snapshotter {
  prepare(key: string, parent: string, labels?: Record<string, string>): Promise<Mount[]>;
  view(key: string, parent: string, labels?: Record<string, string>): Promise<Mount[]>;
  mounts(key: string): Promise<Mount[]>;
  commit(name: string, key: string, labels?: Record<string, string>): Promise<void>;
  remove(key: string): Promise<void>;
  stat(key: string): Promise<SnapshotInfo>;
  update(info: SnapshotInfo, ...fieldPaths: string[]): Promise<SnapshotInfo>;
  walk(...filters: string[]): Promise<SnapshotInfo[]>;
  usage(key: string): Promise<SnapshotUsage>;
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

const GRPC_KINDS: Record<number, ErrorKind> = {
  3: 'InvalidArgument',
  4: 'DeadlineExceeded',
  5: 'NotFound',
  6: 'AlreadyExists',
  8: 'ResourceExhausted',
  9: 'FailedPrecondition',
  12: 'Unimplemented',
  13: 'Internal',
  14: 'Unavailable',
};

/** The errdefs kind of an error from either implementation. */
export function errorKind(err: unknown): ErrorKind | undefined {
  if (err instanceof SnapshotterError) return err.kind;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? GRPC_KINDS[code] : undefined;
}

const NS = { namespace: 'testsuite' };

export function backendSnapshotter(backend: Backend): Snapshotter {
  return {
    prepare: (key, parent, labels = {}) => backend.prepare(NS, key, parent, labels),
    view: (key, parent, labels = {}) => backend.view(NS, key, parent, labels),
    mounts: (key) => backend.mounts(NS, key),
    commit: (name, key, labels = {}) => backend.commit(NS, name, key, labels, ''),
    remove: (key) => backend.remove(NS, key),
    stat: (key) => backend.stat(NS, key),
    update: (info, ...paths) => backend.update(NS, info, paths),
    walk: async (...filters) => {
      const out: SnapshotInfo[] = [];
      for await (const info of backend.list(NS, filters)) out.push(info);
      return out;
    },
    usage: (key) => backend.usage(NS, key),
    cleanup: () => backend.cleanup({}),
    close: () => backend.close(),
  };
}

/** containerd.services.snapshots.v1.Kind numbering. */
const KINDS: SnapshotInfo['kind'][] = ['unknown', 'view', 'active', 'committed'];

interface WireInfo {
  name: string;
  parent: string;
  kind: number;
  labels: Record<string, string>;
  createdAt?: Date;
  updatedAt?: Date;
}

function fromWire(info: WireInfo): SnapshotInfo {
  return {
    name: info.name,
    parent: info.parent,
    kind: KINDS[info.kind] ?? 'unknown',
    labels: { ...info.labels },
    createdAt: info.createdAt ?? new Date(0),
    updatedAt: info.updatedAt ?? new Date(0),
  };
}

/** The daemon's gRPC API, the way containerd's proxy plugin calls it (test/support/daemon.ts client). */
export function grpcSnapshotter(client: SnapshotsTestClient, snapshotter: string, onClose: () => Promise<void> = async () => {}): Snapshotter {
  const o = { namespace: 'testsuite' };
  let closed = false;
  return {
    prepare: (key, parent, labels = {}) => client.prepare({ snapshotter, key, parent, labels }, o),
    view: (key, parent, labels = {}) => client.view({ snapshotter, key, parent, labels }, o),
    mounts: (key) => client.mounts({ snapshotter, key }, o),
    commit: (name, key, labels = {}) => client.commit({ snapshotter, name, key, labels }, o),
    remove: (key) => client.remove({ snapshotter, key }, o),
    stat: async (key) => fromWire((await client.stat({ snapshotter, key }, o)) as WireInfo),
    update: async (info, ...paths) =>
      fromWire(
        (await client.update(
          { snapshotter, info: { name: info.name, parent: info.parent, kind: KINDS.indexOf(info.kind), labels: info.labels, createdAt: info.createdAt, updatedAt: info.updatedAt }, paths },
          o,
        )) as WireInfo,
      ),
    walk: async (...filters) => (await client.list({ snapshotter, filters }, o)).map((i) => fromWire(i as WireInfo)),
    usage: (key) => client.usage({ snapshotter, key }, o),
    cleanup: () => client.cleanup({ snapshotter }, { namespace: null }),
    // Closing a client twice must be harmless (CloseTwice); the daemon keeps running.
    close: async () => {
      if (closed) return;
      closed = true;
      await onClose();
    },
  };
}
