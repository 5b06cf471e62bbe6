/**
 * What mergeLayers refuses, and how: always a MergeError with a stable code and
 * a message naming the layer; never a partial result.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { MergeError, mergeLayers } from '../../src/merge';
import { buildLayer } from './support/build-layer';
import { patchImage } from './support/patch-image';

let work = '';
let plain = '';

before(() => {
  work = makeTempDir('erofs-vmdk-refuse-');
  plain = buildLayer(work, 'plain', { sub: { type: 'dir' }, 'sub/x': { type: 'file', size: 10 }, aa: { type: 'dir' }, bb: { type: 'dir' } });
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function refusal(layers: { path: string; tag?: string }[], code: string, message?: RegExp): void {
  assert.throws(
    () => mergeLayers(layers),
    (err: unknown) => {
      assert.ok(err instanceof MergeError, `expected MergeError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

test('no layers', () => refusal([], 'no-layers'));

test('a missing layer file names the layer', () => {
  const missing = path.join(work, 'nope.erofs');
  refusal([{ path: plain }, { path: missing }], 'layer-unreadable', /layer 2 of 2 \(.*nope\.erofs\)/);
});

test('a file that is not EROFS', () => {
  const junk = path.join(work, 'junk.erofs');
  fs.writeFileSync(junk, Buffer.alloc(8192, 0x41));
  refusal([{ path: junk }], 'bad-magic');
});

test('header problems of the corpus bad inputs (checksum, truncated superblock)', () => {
  refusal([{ path: fixture('bad-inputs', 'bad-checksum.erofs') }], 'bad-checksum');
  refusal([{ path: fixture('bad-inputs', 'truncated-sb.erofs') }], 'truncated-superblock');
});

test('a truncated layer (superblock says more blocks than the file has)', () => {
  const cut = path.join(work, 'cut.erofs');
  fs.writeFileSync(cut, fs.readFileSync(fixture('basic', 'layer1.erofs')).subarray(0, 8192));
  refusal([{ path: cut }], 'file-short');
});

test('compressed layers are recognised and refused with the reason', () => {
  const lz4 = buildLayer(work, 'lz4', { big: { type: 'file', content: 'compress me '.repeat(20000) } }, { extraArgs: ['-zlz4'] });
  refusal([{ path: lz4 }], 'compressed-layout', /compressed layout COMPRESSED_(FULL|COMPACT).*cannot be merged/);
});

test('a layer whose data lives on another device (mkfs.erofs --blobdev) is refused', () => {
  const dir = path.join(work, 'blobdev.d');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'f'), Buffer.alloc(9000, 7));
  const image = path.join(work, 'blobdev.erofs');
  execFileSync('mkfs.erofs', ['--quiet', '--chunksize=4096', `--blobdev=${path.join(work, 'blob.img')}`, image, dir]);
  refusal([{ path: image }], 'external-device', /not inside the image file/);
});

test('overlay redirects, metacopy and xattr-whiteout directories are refused, not silently flattened', () => {
  const redirect = buildLayer(work, 'redirect', { d: { type: 'dir', xattrs: { 'trusted.overlay.redirect': '/elsewhere' } } });
  refusal([{ path: redirect }], 'unsupported-overlay-xattr', /trusted\.overlay\.redirect/);
  const xwh = buildLayer(work, 'xwhiteouts', { d: { type: 'dir', xattrs: { 'trusted.overlay.opaque': 'x' } } });
  refusal([{ path: xwh }], 'unsupported-overlay-xattr', /opaque=x/);
});

test('a directory entry that leads back to the root (cycle) is refused instead of looping', () => {
  const cyclic = patchImage(plain, path.join(work, 'cycle.erofs'), (bytes, at) => {
    const d = at.direntOf('sub');
    bytes.writeUInt32LE(at.root.nid, d);
    bytes.writeUInt32LE(0, d + 4);
  });
  refusal([{ path: cyclic }], 'directory-cycle');
});

test('a dirent whose file type disagrees with its inode', () => {
  const lying = patchImage(plain, path.join(work, 'ftype.erofs'), (bytes, at) => {
    bytes[at.direntOf('sub') + 10] = 1; // says regular file, inode is a directory
  });
  refusal([{ path: lying }], 'dirent-type-mismatch');
});

test('a tag that cannot be stored in a device slot', () => {
  refusal([{ path: plain, tag: 'x'.repeat(65) }], 'bad-tag');
  refusal([{ path: plain, tag: '' }], 'bad-tag');
});
