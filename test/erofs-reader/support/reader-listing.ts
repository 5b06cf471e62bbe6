/**
 * Lists an EROFS image through OUR reader in exactly the format of the
 * fixtures' erofs-listing.py (expected.tsv), so the reader can be compared
 * byte for byte with the kernel's view of the same image.
 */
import { createHash } from 'node:crypto';
import {
  closeReaderImage,
  decodeRdev,
  inodeMtime,
  mapData,
  openReaderImage,
  readDataBlock,
  readDirectory,
  readInode,
  readSmallData,
  readXattrs,
  type Inode,
  type ReaderImage,
} from '../../../src/erofs/reader';

/** Python's surrogateescape UTF-8 decoding + the lister's escaping rules. */
export function esc(bytes: Buffer, extra = ''): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let cp = -1;
    let len = 1;
    if (b < 0x80) cp = b;
    else {
      len = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 0;
      if (len > 0 && i + len <= bytes.length) {
        let v = b & (len === 2 ? 0x1f : len === 3 ? 0x0f : 0x07);
        let ok = true;
        for (let k = 1; k < len; k++) {
          const c = bytes[i + k];
          if ((c & 0xc0) !== 0x80) ok = false;
          v = (v << 6) | (c & 0x3f);
        }
        const min = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000;
        if (ok && v >= min && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff)) cp = v;
      }
      if (cp < 0) len = 1;
    }
    if (cp < 0) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else {
      const ch = String.fromCodePoint(cp);
      if (ch === '\\') out += '\\\\';
      else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || extra.includes(ch)) {
        for (const x of Buffer.from(ch, 'utf8')) out += `\\x${x.toString(16).padStart(2, '0')}`;
      } else out += ch;
    }
    i += len;
  }
  return out;
}

const TYPE_CHAR: Record<string, string> = { reg: 'f', dir: 'd', lnk: 'l', fifo: 'p', chr: 'c', blk: 'b', sock: 's' };

function sha256(image: ReaderImage, inode: Inode): string {
  const map = mapData(image, inode);
  const h = createHash('sha256');
  const n = Math.ceil(inode.size / image.blockSize);
  for (let i = 0; i < n; i++) h.update(readDataBlock(image, inode, map, i));
  return h.digest('hex');
}

function xattrColumn(image: ReaderImage, inode: Inode): string {
  const items = readXattrs(image, inode)
    .map((x) => ({ name: Buffer.from(x.name, 'latin1'), value: x.value }))
    .filter((x) => !x.name.toString('latin1').startsWith('trusted.overlay.'))
    .sort((a, b) => Buffer.compare(a.name, b.name) || Buffer.compare(a.value, b.value));
  if (items.length === 0) return '-';
  return items.map((x) => `${esc(x.name, ';=')}=${esc(x.value, ';=')}`).join(';');
}

function mtimeColumn(inode: Inode): string {
  const sec = inodeMtime(inode);
  return inode.mtimeNsec === 0 ? `${sec}` : `${sec}.${String(inode.mtimeNsec).padStart(9, '0')}`;
}

/** The listing of `path` as erofs-listing.py would print it for the mounted image. */
export function listWithReader(path: string): string {
  const image = openReaderImage(path);
  try {
    const entries: { rel: string; inode: Inode }[] = [];
    const root = readInode(image, image.sb.rootNid);
    entries.push({ rel: '.', inode: root });
    const stack: { rel: string; inode: Inode }[] = [{ rel: '', inode: root }];
    while (stack.length > 0) {
      const dir = stack.pop() as { rel: string; inode: Inode };
      for (const e of readDirectory(image, dir.inode)) {
        if (e.name === '.' || e.name === '..') continue;
        const rel = dir.rel ? `${dir.rel}/${e.name}` : e.name;
        const inode = readInode(image, e.nid);
        entries.push({ rel, inode });
        if (inode.type === 'dir') stack.push({ rel, inode });
      }
    }
    const key = (r: string): Buffer => Buffer.from(r, 'latin1');
    entries.sort((a, b) => (a.rel === '.' ? -1 : b.rel === '.' ? 1 : Buffer.compare(key(a.rel), key(b.rel))));
    const groups = new Map<number, string[]>();
    for (const e of entries) {
      if (e.inode.type !== 'dir' && e.inode.nlink > 1) groups.set(e.inode.nid, [...(groups.get(e.inode.nid) ?? []), e.rel]);
    }
    const lines = ['#path\ttype\tmode\tuid\tgid\tsize\tsha256\ttarget\trdev\txattrs\thardlink\tmtime'];
    for (const { rel, inode } of entries) {
      const t = TYPE_CHAR[inode.type];
      const size = t === 'f' || t === 'l' ? String(inode.size) : '-';
      const digest = t === 'f' ? sha256(image, inode) : '-';
      const target = t === 'l' ? esc(readSmallData(image, inode, mapData(image, inode))) : '-';
      let rdev = '-';
      if (t === 'c' || t === 'b') {
        const { major, minor } = decodeRdev(inode.rdev);
        rdev = `${major}:${minor}`;
      }
      let hl = '-';
      const g = groups.get(inode.nid);
      if (inode.type !== 'dir' && inode.nlink > 1 && g && g.length > 1) {
        hl = esc(key(g.reduce((m, r) => (Buffer.compare(key(r), key(m)) < 0 ? r : m))));
      }
      lines.push(
        [esc(key(rel)), t, (inode.mode & 0o7777).toString(8).padStart(4, '0'), String(inode.uid), String(inode.gid), size, digest, target, rdev, xattrColumn(image, inode), hl, mtimeColumn(inode)].join('\t'),
      );
    }
    return `${lines.join('\n')}\n`;
  } finally {
    closeReaderImage(image);
  }
}
