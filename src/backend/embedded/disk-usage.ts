/**
 * Disk usage of a tree, as containerd's continuity fs.DiskUsage computes it:
 * allocated blocks (st_blocks x 512) of every distinct inode, and the number
 * of distinct inodes. Does not cross into other mounts' contents beyond what
 * lstat reports for the mount point itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Usage {
  size: number;
  inodes: number;
}

export function diskUsage(root: string): Usage {
  const seen = new Set<string>();
  let size = 0;
  const visit = (p: string) => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed while walking
      throw err;
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    }
  };
  visit(root);
  return { size, inodes: seen.size };
}
