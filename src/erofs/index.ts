/**
 * EROFS metadata: superblock, device table, checksum, and the flat-device
 * layout (validate / repair-to-copy / descriptor extents). The inode reader
 * lives in ./reader (separate owner).
 */
export { ErofsFormatError } from './errors';
export {
  CHECKSUM_FIELD_OFFSET,
  SUPERBLOCK_OFFSET,
  checksumWindowEnd,
  checksumWindowLength,
  computeSuperblockChecksum,
  crc32c,
  verifySuperblockChecksum,
  writeSuperblockChecksum,
  type ChecksumStatus,
} from './checksum';
export {
  DEVICE_SLOT_SIZE,
  EROFS_MAGIC,
  FEATURE_COMPAT,
  FEATURE_INCOMPAT,
  KNOWN_INCOMPAT_MASK,
  SUPERBLOCK_SIZE,
  deviceTableRange,
  featureNames,
  formatUuid,
  parseDeviceTable,
  parseSuperblock,
  type DeviceSlot,
  type Superblock,
} from './superblock';
export { checkImageHeader, readImage, readImageHead, readImageHeadFd, type ImageHeader, type ImageInput, type LayoutProblem } from './image';
export {
  FlatLayoutError,
  MAX_EXTENTS,
  REPAIRABLE_CODES,
  declaredDeviceLayout,
  prepareFlatDisk,
  openResolvedImage,
  resolveImagePath,
  repairFlatLayout,
  sameFile,
  repairedFsmetaBytes,
  validateFlatLayout,
  validateSingleImage,
  type BlobLayout,
  type FlatDisk,
  type FlatDiskInput,
  type FlatLayout,
  type FlatLayoutReport,
  type RepairResult,
} from './flat-layout';
