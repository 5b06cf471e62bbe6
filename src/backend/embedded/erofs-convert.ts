/**
 * Converts a directory tree into an EROFS layer blob with mkfs.erofs, the way
 * containerd's EROFS snapshotter does at Commit when no differ wrote one
 * (e.g. the walking differ, or a container snapshot being committed).
 *
 * `-Enoinline_data` keeps file data block-aligned (no tail packing into the
 * inode), which the flat-device merge (fsmeta + chunk indexes) relies on.
 * erofs-utils 1.5 (Debian 12) accepts --quiet and -Enoinline_data.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { failedPrecondition, SnapshotterError } from '../../errdefs';

export const MKFS_EROFS = 'mkfs.erofs';

export function convertDirToErofs(output: string, sourceDir: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(MKFS_EROFS, ['--quiet', '-Enoinline_data', output, sourceDir], { signal, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      fs.rmSync(output, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(failedPrecondition(`cannot convert ${sourceDir} to EROFS: ${MKFS_EROFS} not found (install the erofs-utils package)`));
      }
      reject(new SnapshotterError('Internal', `${MKFS_EROFS} ${output} ${sourceDir} failed: ${String(stderr).trim() || err.message}`, { cause: err }));
    });
  });
}

/** fsync a file (by path), so a rename of it that follows is durable in order. */
export function fsyncPath(file: string, flags: number = fs.constants.O_RDONLY): void {
  const fd = fs.openSync(file, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
