/**
 * Read-only access to the tree of an uncompressed EROFS image: superblock and
 * device table (via ../superblock), inodes, directories, xattrs, data layouts.
 * Every function either returns validated values or throws ErofsFormatError.
 */
export { ImageFile } from './image-file';
export { openReaderImage, closeReaderImage, type ReaderImage, type LongXattrPrefix } from './image';
export {
  readInode,
  inodeMtime,
  decodeRdev,
  layoutName,
  DATA_LAYOUT,
  FILE_TYPE,
  NULL_ADDR_32,
  NULL_ADDR_48,
  type Inode,
  type InodeType,
} from './inode';
export { readXattrs, readXattrFilter, XATTR_PREFIXES, type Xattr } from './xattr';
export { readDirectory, DIRENT_SIZE, MAX_NAME_LEN, type DirEntry } from './dir';
export { mapData, readDataBlock, readSmallData, MAX_CHUNKS_PER_FILE, type DataMap } from './data';
