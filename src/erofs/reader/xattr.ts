/**
 * Extended attributes (erofs-format.md §6): the inline area after an inode
 * (header, shared ids, inline entries) and shared entries at xattr_blkaddr.
 *
 * Entries come back in the kernel's listxattr order (inline first, then
 * shared). Entries the kernel never shows (name index 0, 5 or unknown, a long
 * prefix index past the table) are dropped, so what we return is what a
 * mounted layer exposes. Long-prefix names are re-expressed with their short
 * base prefix, so a writer only ever needs short indexes.
 */
import { failInode, type Inode } from './inode';
import type { ReaderImage } from './image';

export const XATTR_PREFIXES: Record<number, string> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
};

export interface Xattr {
  /** Short name index (1..6 except 5). */
  index: number;
  /** Name after the short prefix, raw bytes. */
  suffix: Buffer;
  value: Buffer;
  /** Full name (latin1, so any byte survives) for semantic checks. */
  name: string;
}

const ENTRY_HEADER = 4;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Decodes one entry header + name + value at `pos`; returns it (or null if invisible) and its rounded size. */
function readEntry(image: ReaderImage, inode: Inode, pos: number, limit: number | null): { xattr: Xattr | null; size: number } {
  const head = image.file.read(pos, ENTRY_HEADER, `xattr entry of nid ${inode.nid}`);
  const nameLen = head[0];
  const nameIndex = head[1];
  const valueSize = head.readUInt16LE(2);
  const size = align4(ENTRY_HEADER + nameLen + valueSize);
  if (limit !== null && size > limit) {
    failInode(image, inode.nid, 'bad-xattr', `xattr entry of ${size} bytes overruns the ${limit} bytes left in the inline area`);
  }
  const body = image.file.read(pos + ENTRY_HEADER, nameLen + valueSize, `xattr entry of nid ${inode.nid}`);
  let index = nameIndex;
  let suffix = Buffer.from(body.subarray(0, nameLen));
  if (nameIndex & 0x80) {
    const prefix = image.longPrefixes[nameIndex & 0x7f];
    if (prefix === undefined) return { xattr: null, size };
    index = prefix.baseIndex;
    suffix = Buffer.concat([prefix.infix, suffix]);
    if (suffix.length > 255) {
      failInode(image, inode.nid, 'unsupported-xattr', `xattr name with a long prefix is ${suffix.length} bytes after its short prefix (at most 255 can be written)`);
    }
  }
  const prefixName = XATTR_PREFIXES[index];
  if (prefixName === undefined) return { xattr: null, size };
  const value = Buffer.from(body.subarray(nameLen));
  return { xattr: { index, suffix, value, name: prefixName + suffix.toString('latin1') }, size };
}

/**
 * The inode's xattr name filter as the kernel applies it: a set bit means
 * getxattr reports "no such attribute" for names hashing there (listxattr is
 * unaffected). 0 when the image does not use filters.
 */
export function readXattrFilter(image: ReaderImage, inode: Inode): number {
  if (!image.xattrFilterActive || inode.xattrSize < 12) return 0;
  return image.file.read(inode.offset + inode.inodeSize, 4, `xattr header of nid ${inode.nid}`).readUInt32LE(0);
}

/** All visible xattrs of `inode`. */
export function readXattrs(image: ReaderImage, inode: Inode): Xattr[] {
  if (inode.xattrSize === 0) return [];
  if (inode.xattrSize === 12) {
    // The kernel answers every xattr call on such an inode with EOPNOTSUPP.
    failInode(image, inode.nid, 'bad-xattr', 'xattr area of exactly 12 bytes (i_xattr_icount 1) is not readable by the kernel');
  }
  const base = inode.offset + inode.inodeSize;
  const header = image.file.read(base, 12, `xattr header of nid ${inode.nid}`);
  const sharedCount = header[4];
  const sharedEnd = 12 + 4 * sharedCount;
  if (sharedEnd > inode.xattrSize) {
    failInode(image, inode.nid, 'bad-xattr', `${sharedCount} shared xattr ids do not fit in the ${inode.xattrSize}-byte xattr area`);
  }
  const out: Xattr[] = [];
  let pos = sharedEnd;
  while (pos < inode.xattrSize) {
    const { xattr, size } = readEntry(image, inode, base + pos, inode.xattrSize - pos);
    if (xattr) out.push(xattr);
    pos += size;
  }
  if (sharedCount > 0) {
    const ids = Buffer.from(image.file.read(base + 12, 4 * sharedCount, `shared xattr ids of nid ${inode.nid}`));
    const sharedBase = image.sb.xattrBlkAddr * image.blockSize;
    for (let i = 0; i < sharedCount; i++) {
      const { xattr } = readEntry(image, inode, sharedBase + ids.readUInt32LE(4 * i) * 4, null);
      if (xattr) out.push(xattr);
    }
  }
  return out;
}
