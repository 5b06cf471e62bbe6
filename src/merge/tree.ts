/**
 * The merged tree: overlayfs semantics over per-layer EROFS trees, computed the
 * way the kernel's overlayfs resolves a read-only stack of lowers (the oracle).
 *
 * Layers are walked top first. A name is owned by the top-most layer that has
 * it. A directory keeps merging lower layers until one of them is opaque
 * (`trusted.overlay.opaque` = "y") or, below it, the name is a whiteout
 * (char device 0:0) or any other non-directory: overlayfs stops its lookup
 * there, so nothing further down shows through. Whiteouts never appear in the
 * result; they only hide. A directory takes its attributes and xattrs from the
 * top-most layer that has it; the root from the top layer's root.
 *
 * Only what is visible is read: a subtree hidden by an upper entry is never
 * visited. Directory walks use an explicit stack (no recursion, so depth cannot
 * overflow the JS stack) and every directory inode may be visited once per
 * layer, so a cycle or a hard-linked directory is refused instead of looping.
 */
import {
  FILE_TYPE,
  DATA_LAYOUT,
  mapData,
  readDirectory,
  readInode,
  readSmallData,
  readXattrFilter,
  readXattrs,
  type Inode,
  type InodeType,
  type ReaderImage,
  type Xattr,
} from '../erofs/reader';
import { ErofsFormatError } from '../erofs/errors';
import { MergeError } from './errors';

/** An xattr as it will be written: short index, name suffix, value. */
export interface OutXattr {
  index: number;
  suffix: Buffer;
  value: Buffer;
}

/** Where a regular file's bytes are, as (device id, flat block in that layer blob). */
export type FileData =
  | { kind: 'none' }
  | { kind: 'extent'; device: number; block: number }
  | { kind: 'chunks'; device: number; chunkBits: number; blocks: Float64Array }
  /** FLAT_INLINE source: full blocks in the layer, then a tail that must be copied. */
  | { kind: 'tail'; device: number; block: number; fullBlocks: number; tail: Buffer };

export type NodeType = InodeType | 'whiteout';

export interface MergedNode {
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  /** mtime seconds (signed 64-bit) in u32 halves, copied from the source inode. */
  mtimeLo: number;
  mtimeHi: number;
  mtimeNsec: number;
  size: number;
  /** Directory-entry file type (FT_*). */
  fileType: number;
  xattrs: OutXattr[];
  /** The source inode's xattr name filter, copied so getxattr answers exactly as on the layer. */
  xattrFilter: number;
  /** Non-directories: the source inode's link count (what overlayfs reports for a lower file). */
  nlink: number;
  /** Directories: children by name (latin1). Whiteout nodes stay here to hide lower entries. */
  children: Map<string, MergedNode> | null;
  /** Directories: lower layers no longer merge into this one. */
  sealed: boolean;
  target: Buffer | null;
  rdev: number;
  data: FileData | null;
  /** Index of this node's inode in the writer's inode list (-1 until placed); saves a Map of 50k nodes. */
  outIndex: number;
}

/** Symlink targets longer than this are not valid on Linux (PATH_MAX - 1). */
const MAX_SYMLINK = 4095;
/** Bound on chunk entries of the whole merged image (8 bytes each in the output). */
export const MAX_TOTAL_CHUNKS = 1 << 26;

const WHITEOUT: MergedNode = {
  type: 'whiteout',
  mode: 0,
  uid: 0,
  gid: 0,
  mtimeLo: 0,
  mtimeHi: 0,
  mtimeNsec: 0,
  size: 0,
  fileType: 3, // FT_CHRDEV (never written: whiteouts only hide)
  xattrs: [],
  xattrFilter: 0,
  nlink: 0,
  children: null,
  sealed: true,
  target: null,
  rdev: 0,
  data: null,
  outIndex: -1,
};

const OPAQUE = 'trusted.overlay.opaque';
const ORIGIN = 'trusted.overlay.origin';
/** Overlay xattrs whose meaning we cannot reproduce in a plain EROFS tree. */
const UNSUPPORTED_OVERLAY = new Set(['trusted.overlay.redirect', 'trusted.overlay.metacopy']);

export interface MergeBudget {
  chunks: number;
}

function formatError(image: ReaderImage, code: string, message: string): ErofsFormatError {
  return new ErofsFormatError(code, `${image.path}: ${message}`, image.path);
}

const NO_XATTRS = { keep: [] as OutXattr[], opaque: false };

/** Splits an inode's xattrs into what is written and whether the directory is opaque. */
function overlayXattrs(image: ReaderImage, inode: Inode, xattrs: Xattr[]): { keep: OutXattr[]; opaque: boolean } {
  if (xattrs.length === 0) return NO_XATTRS;
  const keep: OutXattr[] = [];
  let opaque = false;
  for (const x of xattrs) {
    if (x.name === OPAQUE) {
      const v = x.value.toString('latin1');
      if (v === 'x') {
        throw formatError(image, 'unsupported-overlay-xattr', `nid ${inode.nid}: ${OPAQUE}=x (directory with xattr whiteouts) is not supported`);
      }
      if (inode.type === 'dir' && v === 'y') opaque = true;
      continue;
    }
    if (x.name === ORIGIN && x.value.length === 0) continue;
    if (UNSUPPORTED_OVERLAY.has(x.name)) {
      throw formatError(image, 'unsupported-overlay-xattr', `nid ${inode.nid}: ${x.name} is not supported (overlayfs would redirect or metacopy this entry)`);
    }
    keep.push({ index: x.index, suffix: x.suffix, value: x.value });
  }
  return { keep, opaque };
}

function isWhiteout(inode: Inode): boolean {
  return inode.type === 'chr' && inode.rdev === 0;
}

/** Builds merged nodes from one layer; `device` is the layer's device id (1 = bottom). */
class LayerWalker {
  /** Non-directory nodes with nlink > 1 by source nid: a second dirent for the same nid is a hard link. */
  private readonly byNid = new Map<number, MergedNode>();
  private readonly visitedDirs = new Set<number>();
  private readonly stack: { node: MergedNode; dir: Inode }[] = [];

  constructor(
    private readonly image: ReaderImage,
    private readonly device: number,
    private readonly budget: MergeBudget,
  ) {}

  /** Merges this layer under `root` (built by upper layers, or fresh for the top layer). */
  walk(root: MergedNode, rootInode: Inode): void {
    this.visitedDirs.add(rootInode.nid);
    this.stack.push({ node: root, dir: rootInode });
    for (let item = this.stack.pop(); item; item = this.stack.pop()) this.mergeDirectory(item.node, item.dir);
  }

  private mergeDirectory(node: MergedNode, dir: Inode): void {
    const children = node.children as Map<string, MergedNode>;
    for (const entry of readDirectory(this.image, dir)) {
      if (entry.name === '.' || entry.name === '..') continue;
      const existing = children.get(entry.name);
      // Upper non-directories and sealed directories hide everything below.
      if (existing !== undefined && (existing.type !== 'dir' || existing.sealed)) continue;
      const inode = this.readChild(entry.name, entry.nid, entry.fileType);
      if (existing !== undefined) {
        if (inode.type !== 'dir') {
          // Lookup stops at a lower non-directory (whiteouts included).
          existing.sealed = true;
          continue;
        }
        this.enterDirectory(inode);
        if (overlayXattrs(this.image, inode, readXattrs(this.image, inode)).opaque) existing.sealed = true;
        this.stack.push({ node: existing, dir: inode });
        continue;
      }
      if (inode.type === 'dir') {
        this.enterDirectory(inode);
        const fresh = this.directory(inode);
        children.set(entry.name, fresh);
        this.stack.push({ node: fresh, dir: inode });
        continue;
      }
      children.set(entry.name, this.nonDirectory(inode));
    }
  }

  /** A node for a non-directory; dirents sharing a nid (nlink > 1) share one node: a hard link. */
  private nonDirectory(inode: Inode): MergedNode {
    if (inode.nlink > 1) {
      const seen = this.byNid.get(inode.nid);
      if (seen !== undefined) return seen;
    }
    const node = isWhiteout(inode) ? WHITEOUT : this.leaf(inode);
    if (inode.nlink > 1) this.byNid.set(inode.nid, node);
    return node;
  }

  private enterDirectory(inode: Inode): void {
    if (this.visitedDirs.has(inode.nid)) {
      throw formatError(this.image, 'directory-cycle', `directory nid ${inode.nid} is reachable twice (a cycle or a hard-linked directory)`);
    }
    this.visitedDirs.add(inode.nid);
  }

  private checkType(name: string, fileType: number, type: InodeType, nid: number): void {
    if (FILE_TYPE[type] !== fileType) {
      throw formatError(
        this.image,
        'dirent-type-mismatch',
        `entry ${JSON.stringify(name)} (nid ${nid}) has file type ${fileType} but the inode is a ${type}`,
      );
    }
  }

  private readChild(name: string, nid: number, fileType: number): Inode {
    const inode = readInode(this.image, nid);
    this.checkType(name, fileType, inode.type, nid);
    return inode;
  }

  /** A fresh directory node with this layer's attributes. */
  directory(inode: Inode): MergedNode {
    const { keep, opaque } = overlayXattrs(this.image, inode, readXattrs(this.image, inode));
    const node = this.attributes(inode, keep);
    node.children = new Map();
    node.sealed = opaque;
    return node;
  }

  private attributes(inode: Inode, xattrs: OutXattr[]): MergedNode {
    return {
      type: inode.type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      mtimeLo: inode.mtimeLo,
      mtimeHi: inode.mtimeHi,
      mtimeNsec: inode.mtimeNsec,
      size: 0,
      fileType: FILE_TYPE[inode.type],
      xattrs,
      xattrFilter: xattrs.length > 0 ? readXattrFilter(this.image, inode) : 0,
      nlink: inode.nlink,
      children: null,
      sealed: false,
      target: null,
      rdev: 0,
      data: null,
      outIndex: -1,
    };
  }

  private leaf(inode: Inode): MergedNode {
    const { keep } = overlayXattrs(this.image, inode, readXattrs(this.image, inode));
    const node = this.attributes(inode, keep);
    switch (inode.type) {
      case 'reg':
        node.size = inode.size;
        node.data = this.fileData(inode);
        break;
      case 'lnk': {
        if (inode.size === 0 || inode.size > MAX_SYMLINK) {
          throw formatError(this.image, 'bad-symlink', `symlink nid ${inode.nid} has a ${inode.size}-byte target (1..${MAX_SYMLINK})`);
        }
        node.size = inode.size;
        node.target = readSmallData(this.image, inode, mapData(this.image, inode));
        break;
      }
      case 'chr':
      case 'blk':
      case 'fifo':
      case 'sock':
        if (inode.layout !== DATA_LAYOUT.FLAT_PLAIN && inode.layout !== DATA_LAYOUT.FLAT_INLINE) {
          throw formatError(this.image, 'bad-special-file', `special file nid ${inode.nid} has data layout ${inode.layout}`);
        }
        node.rdev = inode.rdev;
        break;
      default:
        break;
    }
    return node;
  }

  private fileData(inode: Inode): FileData {
    const map = mapData(this.image, inode);
    const device = this.device;
    switch (map.kind) {
      case 'empty':
        return { kind: 'none' };
      case 'extent':
        this.spend(Math.ceil(inode.size / 2 ** (this.image.blockBits + 31)));
        return { kind: 'extent', device, block: map.block };
      case 'inline': {
        this.spend(map.fullBlocks + 1);
        const tail = Buffer.from(this.image.file.read(map.tailOffset, map.tailLength, `inline tail of nid ${inode.nid}`));
        return { kind: 'tail', device, block: map.block, fullBlocks: map.fullBlocks, tail };
      }
      case 'chunks':
        this.spend(map.blocks.length);
        return { kind: 'chunks', device, chunkBits: map.chunkBits, blocks: map.blocks };
    }
  }

  private spend(chunks: number): void {
    this.budget.chunks += chunks;
    if (this.budget.chunks > MAX_TOTAL_CHUNKS) {
      throw new MergeError('too-large', `the merged image would need more than ${MAX_TOTAL_CHUNKS} chunk entries`);
    }
  }
}

/** The merged root: attributes of the top layer's root, no opaque marker. */
export function createRoot(topImage: ReaderImage, rootInode: Inode, budget: MergeBudget): MergedNode {
  const root = new LayerWalker(topImage, 0, budget).directory(rootInode);
  root.sealed = false;
  return root;
}

/** Merges one layer (device id `device`, walked after every layer above it) into `root`. */
export function mergeLayerInto(root: MergedNode, image: ReaderImage, rootInode: Inode, device: number, budget: MergeBudget): void {
  new LayerWalker(image, device, budget).walk(root, rootInode);
}
