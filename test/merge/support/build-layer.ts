/**
 * Builds real EROFS layer blobs for tests: a declarative tree is materialised
 * in a directory (regular files, dirs, symlinks, hard links, fifos, sockets,
 * device nodes, overlay whiteouts `mknod c 0 0`, opaque dirs via
 * `setfattr -n trusted.overlay.opaque -v y`, xattrs, exact mtimes) and packed
 * with Debian's mkfs.erofs (1.5), by default with `-Enoinline_data` the way
 * containerd builds layers.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Common {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds; nanoseconds via mtimeNs. */
  mtime?: number;
  mtimeNs?: number;
  xattrs?: Record<string, string>;
}

export type LayerNode =
  | (Common & { type: 'file'; content?: string | Buffer; size?: number; seed?: string })
  | (Common & { type: 'dir'; opaque?: boolean })
  | (Common & { type: 'symlink'; target: string })
  | { type: 'hardlink'; to: string }
  | { type: 'whiteout' }
  | (Common & { type: 'fifo' | 'socket' })
  | (Common & { type: 'chr' | 'blk'; major: number; minor: number });

/** Relative path (no leading slash) → node. "." sets the root's attributes. */
export type LayerTree = Record<string, LayerNode>;

export interface BuildOptions {
  /** Let mkfs.erofs pack file tails inline (FLAT_INLINE); default false (-Enoinline_data). */
  inlineData?: boolean;
  /** mkfs.erofs -T: one fixed timestamp for every inode (gives compact inodes). */
  fixedTime?: number;
  /** Extra mkfs.erofs arguments (e.g. -zlz4, -b512 is not supported by 1.5). */
  extraArgs?: string[];
}

export const DEFAULT_MTIME = 1700000000;

/** Deterministic content: SHA-256 in counter mode over `seed`. */
export function detBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, off = 0; off < size; i++, off += 32) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off, 0, Math.min(32, size - off));
  }
  return out;
}

function uuidFor(name: string): string {
  const h = createHash('sha256').update(`erofs-vmdk-test-layer:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function setXattrs(p: string, xattrs: Record<string, string> | undefined): void {
  for (const [name, value] of Object.entries(xattrs ?? {})) execFileSync('setfattr', ['-h', '-n', name, '-v', value, p]);
}

function ensureParents(root: string, rel: string, made: Set<string>): void {
  const parent = path.dirname(rel);
  if (parent === '.' || made.has(parent)) return;
  ensureParents(root, parent, made);
  if (!fs.existsSync(path.join(root, parent))) fs.mkdirSync(path.join(root, parent), { mode: 0o755 });
  made.add(parent);
}

/** Materialises `tree` under `dir` (which must not exist). */
export function materialise(dir: string, tree: LayerTree): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  const made = new Set<string>();
  // Directories first (sorted so parents precede children), then everything else, links last.
  const paths = Object.keys(tree).filter((p) => p !== '.').sort();
  const order = [
    ...paths.filter((p) => tree[p].type === 'dir'),
    ...paths.filter((p) => tree[p].type !== 'dir' && tree[p].type !== 'hardlink'),
    ...paths.filter((p) => tree[p].type === 'hardlink'),
  ];
  for (const rel of order) {
    const node = tree[rel];
    const p = path.join(dir, rel);
    ensureParents(dir, rel, made);
    switch (node.type) {
      case 'dir':
        fs.mkdirSync(p, { recursive: true });
        made.add(rel);
        if (node.opaque) execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p]);
        break;
      case 'file': {
        const content =
          node.content !== undefined ? Buffer.from(node.content) : detBytes(node.seed ?? rel, node.size ?? 0);
        fs.writeFileSync(p, content);
        break;
      }
      case 'symlink':
        fs.symlinkSync(node.target, p);
        break;
      case 'hardlink':
        fs.linkSync(path.join(dir, node.to), p);
        break;
      case 'whiteout':
        execFileSync('mknod', [p, 'c', '0', '0']);
        break;
      case 'fifo':
        execFileSync('mkfifo', [p]);
        break;
      case 'socket':
        execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p]);
        break;
      case 'chr':
      case 'blk':
        execFileSync('mknod', [p, node.type === 'chr' ? 'c' : 'b', String(node.major), String(node.minor)]);
        break;
    }
  }
  // Attributes deepest first, so setting a child's times never disturbs its parent's.
  const all = ['.', ...Object.keys(tree).filter((p) => p !== '.'), ...made]
    .filter((p, i, a) => a.indexOf(p) === i)
    .sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? 1 : -1));
  for (const rel of all) {
    const node: LayerNode = tree[rel] ?? { type: 'dir' };
    if (node.type === 'hardlink' || node.type === 'whiteout') continue;
    const p = rel === '.' ? dir : path.join(dir, rel);
    if (node.type !== 'symlink') {
      if (node.mode !== undefined) fs.chmodSync(p, node.mode);
      if (node.uid !== undefined || node.gid !== undefined) fs.chownSync(p, node.uid ?? 0, node.gid ?? 0);
    } else if (node.uid !== undefined || node.gid !== undefined) {
      fs.lchownSync(p, node.uid ?? 0, node.gid ?? 0);
    }
    setXattrs(p, node.xattrs);
    const mtime = (node.mtime ?? DEFAULT_MTIME) + (node.mtimeNs ?? 0) / 1e9;
    fs.lutimesSync(p, mtime, mtime);
  }
}

/** Packs a materialised directory with mkfs.erofs; returns the image path. */
export function mkfsErofs(srcDir: string, out: string, name: string, options: BuildOptions = {}): string {
  const args = ['--quiet', '-U', uuidFor(name)];
  if (!options.inlineData) args.push('-Enoinline_data');
  if (options.fixedTime !== undefined) args.push(`-T${options.fixedTime}`);
  args.push(...(options.extraArgs ?? []), out, srcDir);
  execFileSync('mkfs.erofs', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

/** Materialises `tree` under `<workDir>/<name>.d` and packs it into `<workDir>/<name>.erofs`. */
export function buildLayer(workDir: string, name: string, tree: LayerTree, options: BuildOptions = {}): string {
  const src = path.join(workDir, `${name}.d`);
  materialise(src, tree);
  const out = mkfsErofs(src, path.join(workDir, `${name}.erofs`), name, options);
  fs.rmSync(src, { recursive: true, force: true });
  return out;
}
