/**
 * Native fsmerge: builds the metadata-only EROFS image (fsmeta) that merges
 * per-layer EROFS blobs with overlay semantics (design §7).
 *
 * mergeLayers([bottom … top]) reads each layer's metadata (never its file
 * data), merges the trees like a read-only overlayfs over the layers would
 * show them, and writes an fsmeta whose regular files are chunk-based inodes
 * pointing at (device id, block) inside the layer blobs. Device k (1-based,
 * bottom first) is layer k; its slot carries the layer's tag, its extent in
 * blocks and `uniaddr` for the flat layout `fsmeta ‖ layer1 ‖ … ‖ layerN`
 * (whole layer files, each starting at offset 0 of its extent).
 */
import { createHash } from 'node:crypto';
import { ErofsFormatError } from '../erofs/errors';
import { checkImageHeader, readImageHead } from '../erofs/image';
import { closeReaderImage, openReaderImage, readInode, type ReaderImage } from '../erofs/reader';
import { MergeError } from './errors';
import { writeFsmeta, type DeviceSpec } from './fsmeta-writer';
import { createRoot, mergeLayerInto, type MergeBudget, type MergedNode } from './tree';

export { MergeError } from './errors';

export interface MergeLayer {
  /** Path of the layer's EROFS blob. */
  path: string;
  /** Device-table tag for this layer's slot (default: the layer's UUID as 32 hex digits). */
  tag?: string;
}

/** Device ids are u16 and every slot pushes the root inode further; far beyond any real image. */
export const MAX_LAYERS = 4096;
const MAX_TAG_BYTES = 64;

/** Where each layer sits in the flat image the merged fsmeta describes. */
export interface MergedDevice {
  path: string;
  tag: string;
  /** Blocks of the layer's extent (what a descriptor extent for it must cover). */
  blocks: number;
  /** First block of the layer in `fsmeta ‖ layer1 ‖ …`. */
  uniaddr: number;
}

export interface MergeResult {
  fsmeta: Buffer;
  blockSize: number;
  /** fsmeta size in blocks (= uniaddr of device 1). */
  fsmetaBlocks: number;
  devices: MergedDevice[];
}

function layerName(index: number, count: number, path: string): string {
  return `layer ${index + 1} of ${count} (${path})`;
}

/** Turns reader and file-system errors into MergeError naming the layer. */
function asMergeError(err: unknown, index: number, count: number, path: string): unknown {
  if (err instanceof MergeError) return err;
  if (err instanceof ErofsFormatError) {
    // Reader messages start with the file name, which layerName already gives.
    const what = err.message.startsWith(`${path}: `) ? err.message.slice(path.length + 2) : err.message;
    return new MergeError(err.code, `${layerName(index, count, path)}: ${what}`);
  }
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) {
    return new MergeError('layer-unreadable', `${layerName(index, count, path)}: ${(err as Error).message}`);
  }
  return err;
}

function tagBytes(layer: MergeLayer, image: ReaderImage, index: number, count: number): Buffer {
  if (layer.tag !== undefined) {
    const tag = Buffer.from(layer.tag, 'utf8');
    if (tag.length === 0 || tag.length > MAX_TAG_BYTES || tag.includes(0)) {
      throw new MergeError('bad-tag', `${layerName(index, count, layer.path)}: tag must be 1..${MAX_TAG_BYTES} bytes without NUL`);
    }
    return tag;
  }
  // Like mkfs.erofs: a layer that itself has one extra device (a tar-index layer) lends that slot's tag.
  if (image.extraDevices === 1 && image.slots[0].tag.length > 0) return Buffer.from(image.slots[0].tag, 'latin1');
  const uuid = Buffer.from(image.sb.uuidBytes);
  if (uuid.every((b) => b === 0)) return Buffer.from(`layer${index + 1}`, 'latin1');
  return Buffer.from(uuid.toString('hex'), 'latin1');
}

/** Header checks of every layer first, so a bad block size is refused before any tree work. */
function checkHeaders(layers: MergeLayer[]): number {
  let blockBits = -1;
  layers.forEach((layer, i) => {
    try {
      const header = checkImageHeader(readImageHead(layer.path));
      if (header.problems.length > 0) throw new ErofsFormatError(header.problems[0].code, header.problems[0].message, layer.path);
      const bits = header.sb?.blockSizeBits as number;
      if (blockBits < 0) blockBits = bits;
      else if (bits !== blockBits) {
        throw new MergeError(
          'mixed-block-sizes',
          `${layerName(i, layers.length, layer.path)} has ${1 << bits}-byte blocks but layer 1 has ${1 << blockBits}-byte blocks; all layers of a merged image must share one block size`,
        );
      }
    } catch (err) {
      throw asMergeError(err, i, layers.length, layer.path);
    }
  });
  return blockBits;
}

function deterministicUuid(devices: DeviceSpec[], blockBits: number): Buffer {
  const h = createHash('sha256').update(`erofs-vmdk fsmerge v1 bs=${blockBits}\n`);
  for (const d of devices) h.update(`${d.tag.toString('hex')} ${d.blocks}\n`);
  const uuid = h.digest().subarray(0, 16);
  uuid[6] = (uuid[6] & 0x0f) | 0x50; // RFC 4122 version 5 (name-based, SHA)
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
  return Buffer.from(uuid);
}

/** Like mergeLayers, plus the flat layout of the result. */
export function mergeLayersWithLayout(layers: MergeLayer[]): MergeResult {
  if (!Array.isArray(layers) || layers.length === 0) throw new MergeError('no-layers', 'nothing to merge: no layers given');
  if (layers.length > MAX_LAYERS) throw new MergeError('too-many-layers', `${layers.length} layers (at most ${MAX_LAYERS})`);
  const count = layers.length;
  const blockBits = checkHeaders(layers);
  const budget: MergeBudget = { chunks: 0 };
  const devices: DeviceSpec[] = new Array(count);
  let root: MergedNode | null = null;
  for (let i = count - 1; i >= 0; i--) {
    const layer = layers[i];
    let image: ReaderImage | null = null;
    try {
      image = openReaderImage(layer.path);
      if (image.blockBits !== blockBits) {
        throw new MergeError('layer-changed', `${layerName(i, count, layer.path)}: block size changed while merging`);
      }
      const rootInode = readInode(image, image.sb.rootNid);
      if (rootInode.type !== 'dir') {
        throw new ErofsFormatError('bad-root', `${layer.path}: root inode nid ${rootInode.nid} is not a directory`, layer.path);
      }
      if (root === null) root = createRoot(image, rootInode, budget);
      mergeLayerInto(root, image, rootInode, i + 1, budget);
      devices[i] = { tag: tagBytes(layer, image, i, count), blocks: image.extentBlocks };
    } catch (err) {
      throw asMergeError(err, i, count, layer.path);
    } finally {
      if (image) closeReaderImage(image);
    }
  }
  const fsmeta = writeFsmeta({ root: root as MergedNode, blockBits, devices, uuid: deterministicUuid(devices, blockBits) });
  const blockSize = 1 << blockBits;
  const fsmetaBlocks = fsmeta.length / blockSize;
  let uniaddr = fsmetaBlocks;
  const placed = devices.map((d, i) => {
    const out: MergedDevice = { path: layers[i].path, tag: d.tag.toString('latin1'), blocks: d.blocks, uniaddr };
    uniaddr += d.blocks;
    return out;
  });
  return { fsmeta, blockSize, fsmetaBlocks, devices: placed };
}

/** Layers bottom first (like mkfs.erofs and device= order). Returns the fsmeta bytes. */
export function mergeLayers(layers: MergeLayer[]): Buffer {
  return mergeLayersWithLayout(layers).fsmeta;
}
