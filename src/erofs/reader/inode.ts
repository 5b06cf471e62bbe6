/**
 * On-disk inodes (erofs-format.md §3): compact (32 bytes) and extended (64
 * bytes), decoded the way the Linux 6.18 kernel decodes them, with every check
 * the kernel makes at inode read time plus the bounds of the file.
 */
import { ErofsFormatError } from '../errors';
import type { ReaderImage } from './image';

export const DATA_LAYOUT = {
  FLAT_PLAIN: 0,
  COMPRESSED_FULL: 1,
  FLAT_INLINE: 2,
  COMPRESSED_COMPACT: 3,
  CHUNK_BASED: 4,
} as const;

export const LAYOUT_NAMES = ['FLAT_PLAIN', 'COMPRESSED_FULL', 'FLAT_INLINE', 'COMPRESSED_COMPACT', 'CHUNK_BASED'];

export type InodeType = 'reg' | 'dir' | 'lnk' | 'chr' | 'blk' | 'fifo' | 'sock';

const S_IFMT = 0o170000;
const TYPE_BY_FMT: Record<number, InodeType> = {
  0o100000: 'reg',
  0o040000: 'dir',
  0o120000: 'lnk',
  0o020000: 'chr',
  0o060000: 'blk',
  0o010000: 'fifo',
  0o140000: 'sock',
};

/** Directory-entry file types (Linux FT_*), indexed by InodeType. */
export const FILE_TYPE: Record<InodeType, number> = { reg: 1, dir: 2, chr: 3, blk: 4, fifo: 5, sock: 6, lnk: 7 };

/** All address bits set: "no block" (32-bit and 48-bit forms). */
export const NULL_ADDR_32 = 0xffffffff;
export const NULL_ADDR_48 = 2 ** 48 - 1;

export interface Inode {
  nid: number;
  /** Absolute byte offset of the inode in the image. */
  offset: number;
  compact: boolean;
  inodeSize: 32 | 64;
  layout: number;
  mode: number;
  type: InodeType;
  xattrSize: number;
  nlink: number;
  size: number;
  uid: number;
  gid: number;
  /** Seconds as a signed 64-bit value, in two u32 halves (no BigInt on the hot path; see inodeMtime). */
  mtimeLo: number;
  mtimeHi: number;
  mtimeNsec: number;
  /** Raw i_u union (start block low bits, chunk format, or rdev). */
  rawU: number;
  /**
   * Start block for FLAT_PLAIN / FLAT_INLINE, or null when all address bits are
   * set. Combines i_nb (startblk_hi) the way 48-bit-era kernels do.
   */
  startBlock: number | null;
  /** rdev in the kernel's new 32-bit encoding (char/block devices), else 0. */
  rdev: number;
  /** Absolute byte right after the inode and its xattr area. */
  dataOffset: number;
}

export function layoutName(layout: number): string {
  return LAYOUT_NAMES[layout] ?? `layout ${layout}`;
}

export function decodeRdev(v: number): { major: number; minor: number } {
  return { major: (v >>> 8) & 0xfff, minor: (v & 0xff) | ((v >>> 12) & 0xfff00) };
}

/** Throws the ErofsFormatError `code` naming the image and inode `nid` (shared by the inode, data and xattr readers). */
export function failInode(image: ReaderImage, nid: number, code: string, what: string): never {
  throw new ErofsFormatError(code, `${image.path}: inode nid ${nid}: ${what}`, image.path);
}

/** Reads and validates the inode `nid`. */
export function readInode(image: ReaderImage, nid: number): Inode {
  if (!Number.isSafeInteger(nid) || nid < 0) failInode(image, nid, 'bad-nid', 'nid out of range');
  const offset = image.metaBase + nid * 32;
  if (!Number.isSafeInteger(offset)) failInode(image, nid, 'bad-nid', 'nid out of range');
  const file = image.file;
  let o = file.locate(offset, 32, 'inode');
  const format = file.located.readUInt16LE(o);
  const compact = (format & 1) === 0;
  const inodeSize = compact ? 32 : 64;
  if (!compact) o = file.locate(offset, 64, 'inode');
  const raw = file.located;
  if (format & ~0x1f) failInode(image, nid, 'unsupported-inode-format', `i_format 0x${format.toString(16)} has unknown bits`);
  const layout = (format >> 1) & 7;
  if (layout > DATA_LAYOUT.CHUNK_BASED) failInode(image, nid, 'unsupported-inode-format', `unknown data layout ${layout}`);
  const icount = raw.readUInt16LE(o + 2);
  const xattrSize = icount === 0 ? 0 : 12 + 4 * (icount - 1);
  const mode = raw.readUInt16LE(o + 4);
  const type = TYPE_BY_FMT[mode & S_IFMT];
  if (type === undefined) failInode(image, nid, 'bad-inode-mode', `bogus i_mode 0${mode.toString(8)}`);
  const nb = raw.readUInt16LE(o + 6);
  const rawU = raw.readUInt32LE(o + 16);
  const bit4 = (format & 0x10) !== 0;
  let size: number;
  let uid: number;
  let gid: number;
  let mtimeLo: number;
  let mtimeHi: number;
  let mtimeNsec: number;
  let nlink: number;
  /** Whether i_nb carries startblk_hi (extended, or compact with NLINK_1). */
  let nbIsStartHi: boolean;
  if (compact) {
    size = raw.readUInt32LE(o + 8);
    // mtime = epoch + i_mtime (u32), in 64-bit two's complement like the kernel's time64_t
    const sum = image.epochLo + raw.readUInt32LE(o + 12);
    mtimeLo = sum >>> 0;
    mtimeHi = (image.epochHi + (sum > 0xffffffff ? 1 : 0)) >>> 0;
    mtimeNsec = image.sb.fixedNsec;
    uid = raw.readUInt16LE(o + 24);
    gid = raw.readUInt16LE(o + 26);
    const nlink1 = bit4 && type !== 'dir';
    nlink = nlink1 ? 1 : nb;
    nbIsStartHi = nlink1;
  } else {
    const sizeLo = raw.readUInt32LE(o + 8);
    const sizeHi = raw.readUInt32LE(o + 12);
    if (sizeHi >= 0x80000000) failInode(image, nid, 'bad-inode-size', 'negative i_size');
    if (sizeHi >= 0x200000) failInode(image, nid, 'file-too-large', `i_size of ${sizeHi} * 2^32 bytes is beyond what is supported`);
    size = sizeHi * 2 ** 32 + sizeLo;
    uid = raw.readUInt32LE(o + 24);
    gid = raw.readUInt32LE(o + 28);
    mtimeLo = raw.readUInt32LE(o + 32);
    mtimeHi = raw.readUInt32LE(o + 36);
    mtimeNsec = raw.readUInt32LE(o + 40);
    nlink = raw.readUInt32LE(o + 44);
    nbIsStartHi = true;
  }
  let startBlock: number | null = null;
  if (nbIsStartHi) {
    const v = rawU + nb * 2 ** 32;
    startBlock = v === NULL_ADDR_48 ? null : v;
  } else {
    startBlock = rawU === NULL_ADDR_32 ? null : rawU;
  }
  const rdev = type === 'chr' || type === 'blk' ? rawU : 0;
  const dataOffset = offset + inodeSize + xattrSize;
  if (!file.contains(offset, inodeSize + xattrSize)) {
    failInode(image, nid, 'out-of-bounds', `inode and its ${xattrSize}-byte xattr area run past the end of the file`);
  }
  return {
    nid,
    offset,
    compact,
    inodeSize,
    layout,
    mode,
    type,
    xattrSize,
    nlink,
    size,
    uid,
    gid,
    mtimeLo,
    mtimeHi,
    mtimeNsec,
    rawU,
    startBlock,
    rdev,
    dataOffset,
  };
}

/** mtime seconds as the kernel reports them (signed 64-bit). */
export function inodeMtime(inode: { mtimeLo: number; mtimeHi: number }): bigint {
  return BigInt.asIntN(64, (BigInt(inode.mtimeHi) << 32n) | BigInt(inode.mtimeLo));
}
