/**
 * Where an inode's bytes are (erofs-format.md §4), resolved to flat blocks of
 * the image file and checked against the image's extent, so that a merged
 * image that points at the same blocks can never read outside this layer.
 *
 * Supported: FLAT_PLAIN, FLAT_INLINE (tail packing), CHUNK_BASED with block
 * maps or chunk indexes (device ids resolved through the layer's own device
 * table, as the kernel does for a single-device mount). Compressed layouts are
 * refused: their data cannot be referenced block for block.
 */
import { DATA_LAYOUT, failInode, layoutName, NULL_ADDR_32, type Inode } from './inode';
import type { ReaderImage } from './image';

/** A hostile size could ask for billions of chunk entries; no real file needs this many. */
export const MAX_CHUNKS_PER_FILE = 1 << 24;

const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
const CHUNK_FORMAT_INDEXES = 0x20;
const CHUNK_FORMAT_48BIT = 0x40;

export type DataMap =
  /** i_size 0: nothing to read. */
  | { kind: 'empty' }
  /** `blocks` contiguous flat blocks from `block`. */
  | { kind: 'extent'; block: number; blocks: number }
  /** FLAT_INLINE: `fullBlocks` contiguous blocks from `block`, then a tail stored right after the inode. */
  | { kind: 'inline'; block: number; fullBlocks: number; tailOffset: number; tailLength: number }
  /** CHUNK_BASED: chunk i starts at flat block `blocks[i]`, or is a hole when -1. */
  | { kind: 'chunks'; chunkBits: number; blocks: Float64Array };

function checkRange(image: ReaderImage, inode: Inode, block: number, blocks: number, what: string): void {
  if (block + blocks > image.extentBlocks) {
    failInode(
      image,
      inode.nid,
      'data-out-of-bounds',
      `${what} blocks ${block}..${block + blocks} lie outside the image's ${image.extentBlocks} blocks`,
    );
  }
}

/** Resolves the data layout of `inode` into flat blocks; throws on anything the kernel would not read back. */
export function mapData(image: ReaderImage, inode: Inode): DataMap {
  const { layout, size } = inode;
  if (layout === DATA_LAYOUT.COMPRESSED_FULL || layout === DATA_LAYOUT.COMPRESSED_COMPACT) {
    failInode(image, inode.nid, 'compressed-layout', `uses the compressed layout ${layoutName(layout)}; compressed layers cannot be merged (their data cannot be referenced block for block)`);
  }
  if (size === 0) return { kind: 'empty' };
  const bs = image.blockSize;
  const nblocks = Math.ceil(size / bs);
  if (layout === DATA_LAYOUT.FLAT_PLAIN) {
    if (inode.startBlock === null) failInode(image, inode.nid, 'unmapped-data', `FLAT_PLAIN data of ${size} bytes has no start block`);
    checkRange(image, inode, inode.startBlock, nblocks, 'data');
    return { kind: 'extent', block: inode.startBlock, blocks: nblocks };
  }
  if (layout === DATA_LAYOUT.FLAT_INLINE) {
    const fullBlocks = nblocks - 1;
    const tailLength = size - fullBlocks * bs;
    let block = 0;
    if (fullBlocks > 0) {
      if (inode.startBlock === null) failInode(image, inode.nid, 'unmapped-data', `FLAT_INLINE data of ${size} bytes has no start block`);
      block = inode.startBlock;
      checkRange(image, inode, block, fullBlocks, 'data');
    }
    if ((inode.dataOffset % bs) + tailLength > bs) {
      failInode(image, inode.nid, 'inline-data-across-blocks', `inline tail of ${tailLength} bytes at byte ${inode.dataOffset} crosses a block boundary`);
    }
    if (!image.file.contains(inode.dataOffset, tailLength)) {
      failInode(image, inode.nid, 'out-of-bounds', `inline tail at byte ${inode.dataOffset} runs past the end of the file`);
    }
    return { kind: 'inline', block, fullBlocks, tailOffset: inode.dataOffset, tailLength };
  }
  return mapChunks(image, inode);
}

function mapChunks(image: ReaderImage, inode: Inode): DataMap {
  const format = inode.rawU & 0xffff;
  if (format & ~0x7f) failInode(image, inode.nid, 'unsupported-chunk-format', `chunk format 0x${format.toString(16)} has unknown bits`);
  if (format & CHUNK_FORMAT_48BIT) failInode(image, inode.nid, 'unsupported-chunk-format', '48-bit chunk indexes are not supported');
  const bs = image.blockSize;
  const chunkBits = image.blockBits + (format & CHUNK_FORMAT_BLKBITS_MASK);
  const chunkSize = 2 ** chunkBits;
  const count = Math.ceil(inode.size / chunkSize);
  if (count > MAX_CHUNKS_PER_FILE) failInode(image, inode.nid, 'too-many-chunks', `${count} chunks (at most ${MAX_CHUNKS_PER_FILE} are supported)`);
  const indexes = (format & CHUNK_FORMAT_INDEXES) !== 0;
  const unit = indexes ? 8 : 4;
  const start = Math.ceil(inode.dataOffset / unit) * unit;
  if (!image.file.contains(start, count * unit)) {
    failInode(image, inode.nid, 'out-of-bounds', `${count} chunk entries at byte ${start} run past the end of the file`);
  }
  const raw = image.file.read(start, count * unit, `chunk entries of nid ${inode.nid}`);
  const blocks = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const length = Math.min(chunkSize, inode.size - i * chunkSize);
    const lenBlocks = Math.ceil(length / bs);
    let flat: number;
    if (indexes) {
      const lo = raw.readUInt32LE(i * 8 + 4);
      if (lo === NULL_ADDR_32) {
        blocks[i] = -1;
        continue;
      }
      const device = raw.readUInt16LE(i * 8 + 2) & image.deviceIdMask;
      if (device > image.extraDevices) {
        failInode(image, inode.nid, 'bad-device-id', `chunk ${i} is on device ${device}, but the image has ${image.extraDevices} extra devices`);
      }
      if (device > 0 && !image.embeddedDevices[device - 1]) {
        failInode(
          image,
          inode.nid,
          'external-device',
          `chunk ${i} is on device ${device} (tag ${JSON.stringify(image.slots[device - 1].tag)}), which is not inside the image file: a layer whose data lives on other devices cannot be merged`,
        );
      }
      flat = device === 0 ? lo : image.slots[device - 1].uniaddr + lo;
    } else {
      const lo = raw.readUInt32LE(i * 4);
      if (lo === NULL_ADDR_32) {
        blocks[i] = -1;
        continue;
      }
      flat = lo;
    }
    checkRange(image, inode, flat, lenBlocks, `chunk ${i}`);
    blocks[i] = flat;
  }
  return { kind: 'chunks', chunkBits, blocks };
}

/**
 * Bytes of logical block `index` of the inode's data (the last block is short:
 * only up to i_size). Holes read as zeros, as in the kernel.
 */
export function readDataBlock(image: ReaderImage, inode: Inode, map: DataMap, index: number): Buffer {
  const bs = image.blockSize;
  const length = Math.min(bs, inode.size - index * bs);
  if (length <= 0) return Buffer.alloc(0);
  const what = `data block ${index} of nid ${inode.nid}`;
  switch (map.kind) {
    case 'empty':
      return Buffer.alloc(0);
    case 'extent':
      return image.file.read((map.block + index) * bs, length, what);
    case 'inline':
      if (index < map.fullBlocks) return image.file.read((map.block + index) * bs, length, what);
      return image.file.read(map.tailOffset, map.tailLength, what);
    case 'chunks': {
      const perChunk = 2 ** (map.chunkBits - image.blockBits);
      const chunk = Math.floor(index / perChunk);
      const start = map.blocks[chunk];
      if (start < 0) return Buffer.alloc(length);
      return image.file.read((start + (index - chunk * perChunk)) * bs, length, what);
    }
  }
}

/** The whole data of a small inode (symlink targets); callers bound i_size first. */
export function readSmallData(image: ReaderImage, inode: Inode, map: DataMap): Buffer {
  const parts: Buffer[] = [];
  const n = Math.ceil(inode.size / image.blockSize);
  for (let i = 0; i < n; i++) parts.push(Buffer.from(readDataBlock(image, inode, map, i)));
  return Buffer.concat(parts);
}
