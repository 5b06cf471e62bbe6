/** Wire (ts-proto) <-> domain (src/backend) conversions for the Snapshots API. */
import { Kind, type Info } from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount as WireMount } from '../../api/gen/containerd/types/mount';
import type { SnapshotInfo, SnapshotKind } from '../backend/backend';
import type { Mount } from '../mount';

const kindToWire: Record<SnapshotKind, Kind> = {
  unknown: Kind.UNKNOWN,
  view: Kind.VIEW,
  active: Kind.ACTIVE,
  committed: Kind.COMMITTED,
};

export function kindFromWire(kind: Kind): SnapshotKind {
  switch (kind) {
    case Kind.VIEW:
      return 'view';
    case Kind.ACTIVE:
      return 'active';
    case Kind.COMMITTED:
      return 'committed';
    default:
      return 'unknown';
  }
}

export function infoToWire(info: SnapshotInfo): Info {
  return {
    name: info.name,
    parent: info.parent,
    kind: kindToWire[info.kind],
    createdAt: info.createdAt,
    updatedAt: info.updatedAt,
    labels: { ...info.labels },
  };
}

export function infoFromWire(info: Info): SnapshotInfo {
  return {
    name: info.name,
    parent: info.parent,
    kind: kindFromWire(info.kind),
    labels: { ...info.labels },
    createdAt: info.createdAt ?? new Date(0),
    updatedAt: info.updatedAt ?? new Date(0),
  };
}

export function mountsToWire(mounts: Mount[]): WireMount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] }));
}

export function mountsFromWire(mounts: WireMount[]): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] }));
}
