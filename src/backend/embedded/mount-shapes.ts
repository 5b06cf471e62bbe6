/**
 * The mounts the embedded backend returns, as pure functions of a snapshot,
 * its parent chain and a few file-existence facts.
 *
 * `manager`: exactly the shapes of containerd >= 2.2's EROFS snapshotter
 * (plugins/snapshots/erofs), for containerd's mount manager, which resolves
 * `format/`, `mkdir/`, `mkfs/` types and `{{ mount i }}` / `{{ overlay a b }}`
 * templates.
 *
 * `legacy`: for containerd < 2.2, which mounts the list itself and knows only
 * plain types: every committed layer.erofs is mounted read-only by the
 * backend on its own `fs/`, so lowers are host directories and the result is
 * a plain `overlay` (or `bind`) mount with absolute paths.
 */
import { mount, type Mount } from '../../mount';
import type { Layout } from './layout';

export type MountStyle = 'legacy' | 'manager';

export interface ShapeInput {
  kind: 'active' | 'view' | 'committed';
  id: number;
  /** Parent ids, direct parent first. */
  parentIds: number[];
}

export interface ShapeFacts {
  /** True when <id>/fsmeta.erofs exists and is not empty. */
  hasFsmeta(id: number): boolean;
}

export interface ManagerOptions {
  /** > 0: block mode, an ext4 writable layer of this many bytes. */
  defaultSize: number;
}

function readFlag(kind: ShapeInput['kind']): 'rw' | 'ro' {
  return kind === 'view' ? 'ro' : 'rw';
}

export function managerMounts(s: ShapeInput, layout: Layout, facts: ShapeFacts, opts: ManagerOptions): Mount[] {
  const blockMode = opts.defaultSize > 0;
  const rwlayer = (flag: string) =>
    mount('mkfs/ext4', layout.rwlayer(s.id), [
      'X-containerd.mkfs.fs=ext4',
      `X-containerd.mkfs.size=${opts.defaultSize}`,
      flag,
      'loop',
    ]);

  if (s.parentIds.length === 0) {
    const flag = readFlag(s.kind);
    if (blockMode) {
      return [
        rwlayer(flag),
        mount('format/mkdir/bind', '{{ mount 0 }}/upper', ['X-containerd.mkdir.path={{ mount 0 }}/upper:0755', flag, 'rbind']),
      ];
    }
    return [mount('bind', layout.fs(s.id), [flag, 'rbind'])];
  }

  const mounts: Mount[] = [];
  const options: string[] = [];
  if (s.kind === 'active') {
    if (blockMode) {
      mounts.push(rwlayer('rw'));
      options.push(
        'X-containerd.mkdir.path={{ mount 0 }}/upper:0755',
        'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
        'workdir={{ mount 0 }}/work',
        'upperdir={{ mount 0 }}/upper',
      );
    } else {
      options.push(`workdir=${layout.work(s.id)}`, `upperdir=${layout.fs(s.id)}`);
    }
  } else if (s.parentIds.length === 1) {
    return [mount('erofs', layout.layer(s.parentIds[0]), ['ro', 'loop'])];
  }

  const first = mounts.length;
  for (let i = 0; i < s.parentIds.length; i++) {
    // A non-empty fsmeta.erofs in a parent already covers it and every layer below.
    if (facts.hasFsmeta(s.parentIds[i])) {
      const devices = s.parentIds.slice(i).reverse().map((id) => `device=${layout.layer(id)}`);
      mounts.push(mount('erofs', layout.fsmeta(s.parentIds[i]), ['ro', 'loop', ...devices]));
      break;
    }
    mounts.push(mount('erofs', layout.layer(s.parentIds[i]), ['ro', 'loop']));
  }
  const lowers = mounts.length - first;
  if (s.kind !== 'active' && lowers === 1) {
    // overlayfs refuses a single lowerdir without an upperdir: a read-only bind of the one lower.
    return [...mounts, mount('format/bind', `{{ mount ${first} }}`, ['ro', 'rbind'])];
  }
  options.push(lowers === 1 ? `lowerdir={{ mount ${first} }}` : `lowerdir={{ overlay ${first} ${mounts.length - 1} }}`);
  return [...mounts, mount('format/mkdir/overlay', 'overlay', options)];
}

export function legacyMounts(s: ShapeInput, layout: Layout): Mount[] {
  if (s.parentIds.length === 0) {
    return [mount('bind', layout.fs(s.id), [readFlag(s.kind), 'rbind'])];
  }
  const lowerdir = `lowerdir=${s.parentIds.map((id) => layout.fs(id)).join(':')}`;
  if (s.kind === 'active') {
    return [mount('overlay', 'overlay', [`workdir=${layout.work(s.id)}`, `upperdir=${layout.fs(s.id)}`, lowerdir])];
  }
  if (s.parentIds.length === 1) {
    return [mount('bind', layout.fs(s.parentIds[0]), ['ro', 'rbind'])];
  }
  return [mount('overlay', 'overlay', [lowerdir])];
}
