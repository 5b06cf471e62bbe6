/**
 * Writes the merged tree as a metadata-only EROFS image (fsmeta) whose regular
 * files point into the layer blobs (erofs-format.md §9, §12.1).
 *
 * Image layout (all offsets from byte 0 of the fsmeta):
 *   [0, 1024)            zeros (boot area)
 *   1024                 superblock (128 bytes)
 *   1152                 device table: one 128-byte slot per layer, bottom first
 *   after the table      inodes, root first then breadth-first, 32-byte aligned;
 *                        each inode is followed by its xattrs and either its
 *                        inline data or its chunk indexes (8-aligned)
 *   next block boundary  data blocks: directories, symlinks and file tails that
 *                        do not fit inline
 *
 * Choices that keep the image readable by every kernel with flat-device support
 * (and simple): extended inodes only (no epoch/compact-mtime subtleties), all
 * xattrs inline (each inode keeps its source's name filter, so getxattr answers
 * as it does on the layer; compat XATTR_FILTER only when some filter is set), no
 * shared xattrs, no long prefixes, chunk formats without 48-bit addresses, inline
 * data never crossing a block. Output depends only on the tree and the device
 * list, so the same layers give the same bytes.
 */
import { writeSuperblockChecksum } from '../erofs/checksum';
import { FEATURE_COMPAT, FEATURE_INCOMPAT, EROFS_MAGIC, DEVICE_SLOT_SIZE } from '../erofs/superblock';
import { DATA_LAYOUT } from '../erofs/reader';
import { MergeError } from './errors';
import type { MergedNode } from './tree';

export interface DeviceSpec {
  /** Slot tag (at most 64 bytes). */
  tag: Buffer;
  /** Blocks of this layer's extent in the flat image. */
  blocks: number;
}

export interface WriterInput {
  root: MergedNode;
  blockBits: number;
  devices: DeviceSpec[];
  uuid: Buffer;
}

const SUPERBLOCK_AT = 1024;
const DEVICE_TABLE_AT = 1152;
const INODE_SIZE = 64;
const NULL32 = 0xffffffff;
const MAX_U32 = 0xffffffff;
const MAX_ROOT_NID = 0xffff;
const MAX_XATTR_AREA = 12 + 4 * 0xfffe;

interface OutInode {
  node: MergedNode;
  parent: OutInode;
  ino: number;
  nlink: number;
  /** Directories: sorted entry names including "." and "..", and what each names (parallel arrays). */
  entryNames: string[] | null;
  entryTargets: OutInode[] | null;
  /** Directories: entries per directory block. */
  blockCounts: number[] | null;
  xattrSize: number;
  layout: number;
  /** Bytes stored inline after the xattrs (FLAT_INLINE), or 0. */
  inlineLength: number;
  /** CHUNK_BASED: log2 chunk size and the number of entries. */
  chunkBits: number;
  chunkCount: number;
  /** Blocks of fsmeta data (directories, symlinks, copied tails) and where they start. */
  dataBlocks: number;
  dataBlock: number;
  pos: number;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function xattrAreaSize(node: MergedNode): number {
  if (node.xattrs.length === 0) return 0;
  let size = 12;
  for (const x of node.xattrs) size += align(4 + x.suffix.length + x.value.length, 4);
  return size;
}

/** Packs sorted names into directory blocks; returns the dirent-data size and entries per block. */
function packDirectory(names: string[], bs: number): { size: number; blockCounts: number[] } {
  const blockCounts: number[] = [];
  let used = 0;
  let count = 0;
  let size = 0;
  for (const name of names) {
    const cost = 12 + name.length;
    if (used + cost > bs) {
      blockCounts.push(count);
      size += bs;
      used = 0;
      count = 0;
    }
    used += cost;
    count++;
  }
  blockCounts.push(count);
  return { size: size + used, blockCounts };
}

function newInode(node: MergedNode, parent: OutInode | null, ino: number): OutInode {
  const out: OutInode = {
    node,
    parent: null as unknown as OutInode,
    ino,
    nlink: 0,
    entryNames: null,
    entryTargets: null,
    blockCounts: null,
    xattrSize: 0,
    layout: DATA_LAYOUT.FLAT_PLAIN,
    inlineLength: 0,
    chunkBits: 0,
    chunkCount: 0,
    dataBlocks: 0,
    dataBlock: 0,
    pos: 0,
  };
  out.parent = parent ?? out;
  return out;
}

/** Breadth-first list of output inodes; hard-linked nodes appear once, whiteouts never. */
function collectInodes(root: MergedNode): OutInode[] {
  const inodes: OutInode[] = [newInode(root, null, 1)];
  root.outIndex = 0;
  for (let i = 0; i < inodes.length; i++) {
    const dir = inodes[i];
    const children = dir.node.children;
    if (children === null) continue;
    const names: string[] = ['.', '..'];
    for (const [name, child] of children) if (child.type !== 'whiteout') names.push(name);
    names.sort();
    const targets: OutInode[] = new Array(names.length);
    let subdirs = 0;
    for (let e = 0; e < names.length; e++) {
      const name = names[e];
      if (name === '.') {
        targets[e] = dir;
        continue;
      }
      if (name === '..') {
        targets[e] = dir.parent;
        continue;
      }
      const child = children.get(name) as MergedNode;
      let target: OutInode;
      if (child.outIndex >= 0) target = inodes[child.outIndex];
      else {
        target = newInode(child, dir, inodes.length + 1);
        child.outIndex = inodes.length;
        inodes.push(target);
      }
      if (child.type === 'dir') subdirs++;
      else target.nlink = child.nlink;
      targets[e] = target;
    }
    dir.entryNames = names;
    dir.entryTargets = targets;
    dir.nlink = 2 + subdirs;
  }
  return inodes;
}

/** Chooses layout, inline length and chunking for every inode. */
function planData(inodes: OutInode[], blockBits: number): void {
  const bs = 1 << blockBits;
  for (const inode of inodes) {
    const node = inode.node;
    inode.xattrSize = xattrAreaSize(node);
    if (inode.xattrSize > MAX_XATTR_AREA) {
      throw new MergeError('xattrs-too-large', `an inode has ${inode.xattrSize} bytes of xattrs, more than one inode can carry`);
    }
    const head = INODE_SIZE + inode.xattrSize;
    const inlineOrBlocks = (length: number): void => {
      if (head + length <= bs) {
        inode.layout = DATA_LAYOUT.FLAT_INLINE;
        inode.inlineLength = length;
      } else {
        inode.layout = DATA_LAYOUT.FLAT_PLAIN;
        inode.dataBlocks = Math.ceil(length / bs);
      }
    };
    switch (node.type) {
      case 'dir': {
        const packed = packDirectory(inode.entryNames as string[], bs);
        node.size = packed.size;
        inode.blockCounts = packed.blockCounts;
        inlineOrBlocks(packed.size);
        break;
      }
      case 'lnk':
        inlineOrBlocks((node.target as Buffer).length);
        break;
      case 'reg':
        planFile(inode, blockBits, head);
        break;
      default:
        inode.layout = DATA_LAYOUT.FLAT_PLAIN;
    }
  }
}

function planFile(inode: OutInode, blockBits: number, head: number): void {
  const bs = 1 << blockBits;
  const node = inode.node;
  const data = node.data;
  if (data === null || data.kind === 'none') {
    inode.layout = DATA_LAYOUT.FLAT_PLAIN;
    return;
  }
  switch (data.kind) {
    case 'extent': {
      // One chunk covering the file when possible (chunk sizes are 2^bb .. 2^(bb+31)).
      let bits = blockBits;
      while (2 ** bits < node.size && bits < blockBits + 31) bits++;
      inode.layout = DATA_LAYOUT.CHUNK_BASED;
      inode.chunkBits = bits;
      inode.chunkCount = Math.ceil(node.size / 2 ** bits);
      return;
    }
    case 'chunks':
      inode.layout = DATA_LAYOUT.CHUNK_BASED;
      inode.chunkBits = data.chunkBits;
      inode.chunkCount = data.blocks.length;
      return;
    case 'tail':
      if (data.fullBlocks === 0) {
        // The whole file is a tail: inline it in the fsmeta, or give it one fsmeta block.
        if (head + data.tail.length <= bs) {
          inode.layout = DATA_LAYOUT.FLAT_INLINE;
          inode.inlineLength = data.tail.length;
        } else {
          inode.layout = DATA_LAYOUT.FLAT_PLAIN;
          inode.dataBlocks = 1;
        }
        return;
      }
      // Block-sized chunks: the full blocks stay in the layer, the tail gets an fsmeta block.
      inode.layout = DATA_LAYOUT.CHUNK_BASED;
      inode.chunkBits = blockBits;
      inode.chunkCount = data.fullBlocks + 1;
      inode.dataBlocks = 1;
      return;
  }
}

/** Assigns byte positions (nids) to inodes; returns the end of the metadata. */
function placeInodes(inodes: OutInode[], start: number, bs: number): number {
  let pos = align(start, 32);
  for (const inode of inodes) {
    const head = INODE_SIZE + inode.xattrSize;
    const together = head + inode.inlineLength;
    // Keep the inode, its xattrs and inline data in one block when they fit in one.
    if (together <= bs && (pos % bs) + together > bs) pos = align(pos, bs);
    inode.pos = pos;
    let end = pos + together;
    if (inode.layout === DATA_LAYOUT.CHUNK_BASED) end = align(pos + head, 8) + 8 * inode.chunkCount;
    pos = align(end, 32);
  }
  return pos;
}

function writeXattrs(buf: Buffer, at: number, node: MergedNode): void {
  // header: the source's name filter (0 = no filter), no shared xattrs
  buf.writeUInt32LE(node.xattrFilter >>> 0, at);
  let p = at + 12;
  for (const x of node.xattrs) {
    buf[p] = x.suffix.length;
    buf[p + 1] = x.index;
    buf.writeUInt16LE(x.value.length, p + 2);
    x.suffix.copy(buf, p + 4);
    x.value.copy(buf, p + 4 + x.suffix.length);
    p += align(4 + x.suffix.length + x.value.length, 4);
  }
}

/** Writes the dirents of `inode` into `dst` (inline area or data blocks). */
function writeDirectory(buf: Buffer, at: number, inode: OutInode, bs: number): void {
  const names = inode.entryNames as string[];
  const targets = inode.entryTargets as OutInode[];
  let e = 0;
  let blockStart = at;
  for (const count of inode.blockCounts as number[]) {
    let nameoff = count * 12;
    for (let i = 0; i < count; i++, e++) {
      const name = names[e];
      const target = targets[e];
      const d = blockStart + i * 12;
      const nid = target.pos / 32;
      buf.writeUInt32LE(nid % 2 ** 32, d);
      buf.writeUInt32LE(Math.floor(nid / 2 ** 32), d + 4);
      buf.writeUInt16LE(nameoff, d + 8);
      buf[d + 10] = target.node.fileType;
      // names are latin1 strings (one char per byte); a JS loop beats a native call for short names
      const at = blockStart + nameoff;
      for (let c = 0; c < name.length; c++) buf[at + c] = name.charCodeAt(c);
      nameoff += name.length;
    }
    blockStart += bs;
  }
}

function checkBlock(block: number, what: string): number {
  if (block > MAX_U32 - 1) {
    throw new MergeError('block-out-of-range', `${what}: block ${block} does not fit a 32-bit chunk address`);
  }
  return block;
}

function writeChunkIndexes(buf: Buffer, at: number, inode: OutInode, blockBits: number): void {
  const data = inode.node.data;
  if (data === null) return;
  const entry = (i: number, device: number, block: number | null): void => {
    const p = at + 8 * i;
    buf.writeUInt16LE(0, p);
    if (block === null) {
      buf.writeUInt16LE(0, p + 2);
      buf.writeUInt32LE(NULL32, p + 4);
      return;
    }
    buf.writeUInt16LE(device, p + 2);
    buf.writeUInt32LE(checkBlock(block, `chunk ${i} of inode ${inode.ino}`), p + 4);
  };
  switch (data.kind) {
    case 'extent': {
      const step = 2 ** (inode.chunkBits - blockBits);
      for (let i = 0; i < inode.chunkCount; i++) entry(i, data.device, data.block + i * step);
      return;
    }
    case 'chunks':
      for (let i = 0; i < inode.chunkCount; i++) entry(i, data.device, data.blocks[i] < 0 ? null : data.blocks[i]);
      return;
    case 'tail':
      for (let i = 0; i < data.fullBlocks; i++) entry(i, data.device, data.block + i);
      entry(data.fullBlocks, 0, inode.dataBlock);
      return;
    default:
      return;
  }
}

function writeInode(buf: Buffer, inode: OutInode, blockBits: number): void {
  const bs = 1 << blockBits;
  const node = inode.node;
  const p = inode.pos;
  const icount = inode.xattrSize === 0 ? 0 : (inode.xattrSize - 12) / 4 + 1;
  let iu = 0;
  if (inode.layout === DATA_LAYOUT.CHUNK_BASED) iu = 0x20 | (inode.chunkBits - blockBits);
  else if (node.type === 'chr' || node.type === 'blk') iu = node.rdev;
  else if (node.type === 'fifo' || node.type === 'sock') iu = 0;
  else if (inode.dataBlocks > 0) iu = inode.dataBlock;
  else iu = NULL32;
  buf.writeUInt16LE(1 | (inode.layout << 1), p);
  buf.writeUInt16LE(icount, p + 2);
  buf.writeUInt16LE(node.mode, p + 4);
  buf.writeUInt16LE(0, p + 6);
  buf.writeUInt32LE(node.size % 2 ** 32, p + 8);
  buf.writeUInt32LE(Math.floor(node.size / 2 ** 32), p + 12);
  buf.writeUInt32LE(iu >>> 0, p + 16);
  buf.writeUInt32LE(inode.ino >>> 0, p + 20);
  buf.writeUInt32LE(node.uid >>> 0, p + 24);
  buf.writeUInt32LE(node.gid >>> 0, p + 28);
  buf.writeUInt32LE(node.mtimeLo, p + 32);
  buf.writeUInt32LE(node.mtimeHi, p + 36);
  buf.writeUInt32LE(node.mtimeNsec >>> 0, p + 40);
  buf.writeUInt32LE(inode.nlink >>> 0, p + 44);
  const head = p + INODE_SIZE;
  if (inode.xattrSize > 0) writeXattrs(buf, head, node);
  const inlineAt = head + inode.xattrSize;
  const dataAt = inode.dataBlock * bs;
  switch (node.type) {
    case 'dir':
      writeDirectory(buf, inode.layout === DATA_LAYOUT.FLAT_INLINE ? inlineAt : dataAt, inode, bs);
      break;
    case 'lnk':
      (node.target as Buffer).copy(buf, inode.layout === DATA_LAYOUT.FLAT_INLINE ? inlineAt : dataAt);
      break;
    case 'reg': {
      const data = node.data;
      if (inode.layout === DATA_LAYOUT.CHUNK_BASED) writeChunkIndexes(buf, align(head + inode.xattrSize, 8), inode, blockBits);
      if (data !== null && data.kind === 'tail') {
        data.tail.copy(buf, inode.layout === DATA_LAYOUT.FLAT_INLINE ? inlineAt : dataAt);
      }
      break;
    }
    default:
      break;
  }
}

function writeSuperblock(buf: Buffer, input: WriterInput, inodes: OutInode[], totalBlocks: number): void {
  const s = SUPERBLOCK_AT;
  const rootNid = inodes[0].pos / 32;
  const filters = inodes.some((i) => i.xattrSize > 0 && i.node.xattrFilter !== 0);
  buf.writeUInt32LE(EROFS_MAGIC, s);
  buf.writeUInt32LE(FEATURE_COMPAT.SB_CHKSUM | FEATURE_COMPAT.MTIME | (filters ? FEATURE_COMPAT.XATTR_FILTER : 0), s + 8);
  buf[s + 12] = input.blockBits;
  buf.writeUInt16LE(rootNid, s + 14);
  buf.writeBigUInt64LE(BigInt(inodes.length), s + 16);
  buf.writeUInt32LE(totalBlocks, s + 36);
  input.uuid.copy(buf, s + 48, 0, 16);
  buf.writeUInt32LE(FEATURE_INCOMPAT.DEVICE_TABLE | FEATURE_INCOMPAT.CHUNKED_FILE, s + 80);
  buf.writeUInt16LE(input.devices.length, s + 86);
  buf.writeUInt16LE(DEVICE_TABLE_AT / DEVICE_SLOT_SIZE, s + 88);
}

function writeDeviceTable(buf: Buffer, devices: DeviceSpec[], fsmetaBlocks: number): void {
  let uniaddr = fsmetaBlocks;
  devices.forEach((device, i) => {
    const at = DEVICE_TABLE_AT + i * DEVICE_SLOT_SIZE;
    device.tag.copy(buf, at, 0, Math.min(64, device.tag.length));
    if (device.blocks > MAX_U32 || uniaddr > MAX_U32) {
      throw new MergeError('too-large', `layer ${i + 1}: flat layout needs block addresses beyond 32 bits (uniaddr ${uniaddr}, ${device.blocks} blocks)`);
    }
    buf.writeUInt32LE(device.blocks, at + 64);
    buf.writeUInt32LE(uniaddr, at + 68);
    uniaddr += device.blocks;
  });
  if (uniaddr > MAX_U32) throw new MergeError('too-large', `the flat image would be ${uniaddr} blocks, beyond 32-bit block addresses`);
}

/** Lays out and writes the fsmeta image. */
export function writeFsmeta(input: WriterInput): Buffer {
  const { blockBits, devices } = input;
  const bs = 1 << blockBits;
  const inodes = collectInodes(input.root);
  planData(inodes, blockBits);
  const metaEnd = placeInodes(inodes, DEVICE_TABLE_AT + devices.length * DEVICE_SLOT_SIZE, bs);
  const rootNid = inodes[0].pos / 32;
  if (rootNid > MAX_ROOT_NID) {
    throw new MergeError('too-many-layers', `${devices.length} device slots push the root inode to nid ${rootNid} (must be <= ${MAX_ROOT_NID})`);
  }
  let block = Math.ceil(metaEnd / bs);
  for (const inode of inodes) {
    if (inode.dataBlocks > 0) {
      const data = inode.node.data;
      // A copied tail right after the file's last layer block, by number: in a
      // multi-device mount (device=) Linux 6.18's iomap readahead appends the tail
      // page to the bio of the previous chunk when the sectors are contiguous,
      // without checking that the chunks are on different devices, and reads the
      // tail from the layer. Never place a tail there (found by the fuzz test).
      if (inode.layout === DATA_LAYOUT.CHUNK_BASED && data?.kind === 'tail' && block === data.block + data.fullBlocks) block++;
      inode.dataBlock = block;
      block += inode.dataBlocks;
    }
  }
  const totalBlocks = block;
  if (totalBlocks > MAX_U32) throw new MergeError('too-large', `the fsmeta would be ${totalBlocks} blocks`);
  const buf = Buffer.alloc(totalBlocks * bs);
  for (const inode of inodes) writeInode(buf, inode, blockBits);
  writeDeviceTable(buf, devices, totalBlocks);
  writeSuperblock(buf, input, inodes, totalBlocks);
  writeSuperblockChecksum(buf, bs);
  return buf;
}
