/**
 * A small re-implementation of containerd's continuity fstest: appliers that
 * change a tree, and a directory comparison (type, permission bits, owner,
 * size, content, symlink target, device numbers, extended attributes).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Applier = (root: string) => void;

const inRoot = (root: string, name: string) => path.join(root, name.replace(/^\/+/, ''));

export function createFile(name: string, content: string | Buffer, perm: number): Applier {
  return (root) => {
    const p = inRoot(root, name);
    fs.writeFileSync(p, content, { mode: perm });
    fs.chmodSync(p, perm);
  };
}

export function createDir(name: string, perm: number): Applier {
  return (root) => {
    const p = inRoot(root, name);
    fs.mkdirSync(p, { recursive: true, mode: perm });
    fs.chmodSync(p, perm);
  };
}

export function removeAll(name: string): Applier {
  return (root) => fs.rmSync(inRoot(root, name), { recursive: true, force: true });
}

export function chown(name: string, uid: number, gid: number): Applier {
  return (root) => fs.lchownSync(inRoot(root, name), uid, gid);
}

export function link(oldname: string, newname: string): Applier {
  return (root) => fs.linkSync(inRoot(root, oldname), inRoot(root, newname));
}

export function rename(oldname: string, newname: string): Applier {
  return (root) => fs.renameSync(inRoot(root, oldname), inRoot(root, newname));
}

export function apply(...appliers: Applier[]): Applier {
  return (root) => appliers.forEach((a) => a(root));
}

interface Entry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  content?: string;
  target?: string;
  rdev?: number;
  xattrs: string;
}

/** xattrs of every path under root (getfattr -R); overlay's private trusted.overlay.* never shows through. */
function xattrsOf(root: string): Map<string, string> {
  const out = new Map<string, string>();
  let text = '';
  try {
    text = execFileSync('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    text = String((err as { stdout?: string }).stdout ?? '');
  }
  let current = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = path.relative(root, line.slice('# file: '.length)) || '.';
      out.set(current, '');
    } else if (line && current && !line.startsWith('security.') && !line.startsWith('trusted.overlay.')) {
      out.set(current, `${out.get(current)}${line};`);
    }
  }
  return out;
}

function snapshotTree(root: string): Map<string, Entry> {
  const xattrs = xattrsOf(root);
  const entries = new Map<string, Entry>();
  const visit = (rel: string) => {
    const p = rel === '.' ? root : path.join(root, rel);
    const st = fs.lstatSync(p);
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'socket';
    const entry: Entry = {
      type,
      mode: (st.mode & 0o7777).toString(8),
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      xattrs: xattrs.get(rel) ?? '',
    };
    if (type === 'file') entry.content = fs.readFileSync(p).toString('base64');
    if (type === 'symlink') entry.target = fs.readlinkSync(p);
    if (type === 'char' || type === 'block') entry.rdev = st.rdev;
    entries.set(rel, entry);
    if (type === 'dir') for (const name of fs.readdirSync(p).sort()) visit(rel === '.' ? name : path.join(rel, name));
  };
  visit('.');
  return entries;
}

/**
 * Throws with a readable list of differences when the trees differ. The root
 * directory itself is not compared (continuity's manifests leave it out).
 */
export function checkDirectoryEqual(expected: string, actual: string): void {
  const a = snapshotTree(expected);
  const b = snapshotTree(actual);
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    if (p === '.') continue; // like continuity's manifests, the root itself is not compared
    const eb = b.get(p);
    if (!eb) {
      diffs.push(`missing ${p}`);
      continue;
    }
    for (const k of Object.keys(ea) as (keyof Entry)[]) {
      if (ea[k] !== eb[k]) diffs.push(`${p}: ${k} expected ${String(ea[k]).slice(0, 60)} got ${String(eb[k]).slice(0, 60)}`);
    }
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`unexpected ${p}`);
  if (diffs.length > 0) throw new Error(`directories ${expected} and ${actual} differ:\n  ${diffs.slice(0, 20).join('\n  ')}`);
}

/** Applies to a fresh temp dir and compares: fstest.CheckDirectoryEqualWithApplier. */
export function checkDirectoryEqualWithApplier(actual: string, applier: Applier, scratch: string): void {
  const dir = fs.mkdtempSync(path.join(scratch, 'expected-'));
  try {
    applier(dir);
    checkDirectoryEqual(dir, actual);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
