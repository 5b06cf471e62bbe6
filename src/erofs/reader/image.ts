/**
 * Opening an EROFS image for reading its tree: header checks (shared with the
 * layout validator), device table, long xattr prefixes, and the layer's own flat
 * address space.
 *
 * "Flat block" below means a block number in the image file itself: device 0
 * block b is flat block b; device d >= 1 block b is flat block uniaddr[d] + b.
 * That is exactly how the kernel reads the image when it is mounted on its own
 * (one block device, no device= options), which is how the overlay oracle and
 * containerd mount a layer. Tar-index layers (an index plus the raw tar appended,
 * described as device 1) are thereby addressed inside their own file.
 */
import { ErofsFormatError } from '../errors';
import { checkImageHeader, readImageHead } from '../image';
import { FEATURE_COMPAT, FEATURE_INCOMPAT, type DeviceSlot, type Superblock } from '../superblock';
import { ImageFile } from './image-file';

export interface LongXattrPrefix {
  /** Short prefix index (1 user., 4 trusted., 6 security., ...) the infix extends. */
  baseIndex: number;
  infix: Buffer;
}

export interface ReaderImage {
  path: string;
  file: ImageFile;
  sb: Superblock;
  slots: DeviceSlot[];
  blockBits: number;
  blockSize: number;
  /** Byte where nid 0 lives. */
  metaBase: number;
  /** Extra devices the kernel honours (0 without the DEVICE_TABLE feature). */
  extraDevices: number;
  /** The kernel ANDs chunk device ids with this. */
  deviceIdMask: number;
  longPrefixes: LongXattrPrefix[];
  /** Superblock epoch (base of compact-inode mtimes) in u32 halves. */
  epochLo: number;
  epochHi: number;
  /** The kernel consults per-inode xattr name filters (compat XATTR_FILTER, xattr_filter_reserved 0). */
  xattrFilterActive: boolean;
  /**
   * Blocks of the image's own flat extent: the primary device and every extra
   * device that lies inside the file. All data the image references must lie
   * below this; it is the slot size the image gets in a merged device table.
   */
  extentBlocks: number;
  /** Per extra device (index = device id - 1): its blocks lie inside this image file. */
  embeddedDevices: boolean[];
}

function roundupPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Opens `path` and runs the header checks; throws ErofsFormatError on the first problem. */
export function openReaderImage(path: string): ReaderImage {
  const head = readImageHead(path);
  const header = checkImageHeader(head);
  if (header.problems.length > 0) {
    const p = header.problems[0];
    throw new ErofsFormatError(p.code, p.message, path);
  }
  const sb = header.sb as Superblock;
  if (sb.sbSize > 4096 - 1024) {
    throw new ErofsFormatError('bad-superblock-size', `${path}: superblock of ${sb.sbSize} bytes (sb_extslots ${sb.sbExtSlots}) does not fit in a page`, path);
  }
  if (sb.blocks * sb.blockSize < 1024 + sb.sbSize) {
    // The image's own size must at least cover its superblock; a merged device slot of 0 blocks is not a layout.
    throw new ErofsFormatError('bad-block-count', `${path}: superblock says ${sb.blocks} blocks, too few to hold the superblock itself`, path);
  }
  const file = ImageFile.open(path);
  try {
    const blockSize = sb.blockSize;
    const fileBlocks = Math.floor(file.size / blockSize);
    const extraDevices = sb.hasDeviceTable ? sb.extraDevices : 0;
    let extentBlocks = sb.blocks;
    const embeddedDevices = header.slots.slice(0, extraDevices).map((slot) => {
      const end = slot.uniaddr + slot.blocks;
      const inside = slot.uniaddr > 0 && end <= fileBlocks;
      if (inside) extentBlocks = Math.max(extentBlocks, end);
      return inside;
    });
    const image: ReaderImage = {
      path,
      file,
      sb,
      slots: header.slots,
      blockBits: sb.blockSizeBits,
      blockSize,
      metaBase: sb.metaBlkAddr * blockSize,
      extraDevices,
      deviceIdMask: roundupPow2(extraDevices + 1) - 1,
      longPrefixes: [],
      epochLo: Number(sb.epoch & 0xffffffffn),
      epochHi: Number((sb.epoch >> 32n) & 0xffffffffn),
      xattrFilterActive:
        (sb.featureCompat & FEATURE_COMPAT.XATTR_FILTER) !== 0 && file.read(1024 + 104, 1, 'xattr_filter_reserved')[0] === 0,
      extentBlocks,
      embeddedDevices,
    };
    if (!file.contains(image.metaBase, 0)) {
      throw new ErofsFormatError('bad-meta-blkaddr', `${path}: meta_blkaddr ${sb.metaBlkAddr} lies outside the file`, path);
    }
    image.longPrefixes = readLongPrefixes(image);
    return image;
  } catch (err) {
    file.close();
    throw err;
  }
}

export function closeReaderImage(image: ReaderImage): void {
  image.file.close();
}

/** Long xattr name prefixes (incompat XATTR_PREFIXES), when stored plainly on the primary device. */
function readLongPrefixes(image: ReaderImage): LongXattrPrefix[] {
  const { sb, path, file } = image;
  if ((sb.featureIncompat & FEATURE_INCOMPAT.XATTR_PREFIXES) === 0 || sb.xattrPrefixCount === 0) return [];
  if (sb.packedNid !== 0n && (sb.featureCompat & FEATURE_COMPAT.PLAIN_XATTR_PFX) === 0) {
    throw new ErofsFormatError('unsupported-feature', `${path}: long xattr prefixes stored in the packed inode are not supported`, path);
  }
  const out: LongXattrPrefix[] = [];
  let pos = sb.xattrPrefixStart * 4;
  for (let i = 0; i < sb.xattrPrefixCount; i++) {
    const len = file.read(pos, 2, `long xattr prefix ${i}`).readUInt16LE(0);
    if (len < 1 || len > 256) {
      throw new ErofsFormatError('bad-xattr-prefix', `${path}: long xattr prefix ${i} has length ${len} (1..256)`, path);
    }
    const body = file.read(pos + 2, len, `long xattr prefix ${i}`);
    out.push({ baseIndex: body[0], infix: Buffer.from(body.subarray(1)) });
    pos += (2 + len + 3) & ~3;
  }
  return out;
}
