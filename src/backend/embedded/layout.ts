/**
 * On-disk layout of the embedded backend, identical to containerd's EROFS
 * snapshotter so that containerd's EROFS differ can unpack straight into it:
 *
 *   <root>/snapshots.db                  metadata (SQLite, WAL)
 *   <root>/snapshots/<id>/fs/            upperdir / bind source; legacy: committed layer mounted here
 *   <root>/snapshots/<id>/work/          overlay workdir (active, directory mode)
 *   <root>/snapshots/<id>/.erofslayer    marker the EROFS differ looks for (active)
 *   <root>/snapshots/<id>/layer.erofs    committed layer blob
 *   <root>/snapshots/<id>/fsmeta.erofs   merged metadata (used when present and non-empty)
 *   <root>/snapshots/<id>/rwlayer.img    block-mode writable layer (made by the mount manager)
 */
import * as path from 'node:path';
import { TEMP_PREFIX } from '../../atomic/write-file-atomic';

/** Marker written next to a layer.erofs that WE converted (not the differ): see commit in embedded-backend.ts. */
export const CONVERTED_MARKER = '.erofs-vmdk-converted';

/** Directories being created or removed carry this prefix; they are never a snapshot's directory. */
export const NEW_DIR_PREFIX = `${TEMP_PREFIX}new-`;
export const REMOVED_DIR_PREFIX = `${TEMP_PREFIX}removed-`;

export class Layout {
  constructor(readonly root: string) {}

  get dbFile(): string {
    return path.join(this.root, 'snapshots.db');
  }
  get snapshotsDir(): string {
    return path.join(this.root, 'snapshots');
  }
  dir(id: number): string {
    return path.join(this.snapshotsDir, String(id));
  }
  fs(id: number): string {
    return path.join(this.dir(id), 'fs');
  }
  work(id: number): string {
    return path.join(this.dir(id), 'work');
  }
  marker(id: number): string {
    return path.join(this.dir(id), '.erofslayer');
  }
  layer(id: number): string {
    return path.join(this.dir(id), 'layer.erofs');
  }
  fsmeta(id: number): string {
    return path.join(this.dir(id), 'fsmeta.erofs');
  }
  rwlayer(id: number): string {
    return path.join(this.dir(id), 'rwlayer.img');
  }
  converted(id: number): string {
    return path.join(this.dir(id), CONVERTED_MARKER);
  }
}

/** A snapshot directory name is the decimal id, nothing else. */
export function parseSnapshotDirName(name: string): number | undefined {
  return /^[1-9][0-9]*$/.test(name) ? Number(name) : undefined;
}
