/**
 * The EROFS tree reader, checked against the kernel: listing an image through
 * the reader (types, modes, owners, sizes, file contents, symlink targets,
 * device numbers, xattrs, hard links, mtimes) must give exactly the listing of
 * the same image mounted by Linux. Hostile images give typed errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture } from '../support/fixtures';
import { listErofsImage, makeTempDir } from '../support/kernel-mounts';
import { ErofsFormatError } from '../../src/erofs/errors';
import { closeReaderImage, mapData, openReaderImage, readDirectory, readInode, readXattrs } from '../../src/erofs/reader';
import { mergeLayersWithLayout } from '../../src/merge';
import { buildLayer } from '../merge/support/build-layer';
import { buildFeatureLayers } from '../merge/support/layer-sets';
import { patchImage } from '../merge/support/patch-image';
import { listWithReader } from './support/reader-listing';

let work = '';
let features: string[] = [];
let small = '';
let chunked = '';

before(() => {
  work = makeTempDir('erofs-vmdk-reader-');
  features = buildFeatureLayers(work);
  // mkfs.erofs --chunksize: CHUNK_BASED files with 4-byte block maps (no device ids), deduplicated zero chunks
  chunked = buildLayer(
    work,
    'chunked',
    { 'd/a': { type: 'file', size: 20000 }, b: { type: 'file', size: 5000 }, zeros: { type: 'file', content: Buffer.alloc(50000) } },
    { extraArgs: ['--chunksize=4096'] },
  );
  small = buildLayer(work, 'small', { aa: { type: 'dir' }, bb: { type: 'dir' }, f: { type: 'file', size: 10, xattrs: { 'user.k': 'value' } } });
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function expectFormatError(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => err instanceof ErofsFormatError && err.code === code);
}

test('fixture layers (mkfs.erofs 1.9.3: tar layers, tar-index layers with 512-byte blocks) read exactly as the kernel shows them', async () => {
  const images = [
    ...[1, 2, 3, 4].map((i) => fixture('basic', `layer${i}.erofs`)),
    fixture('taridx', 'layer1.erofs'),
    fixture('taridx', 'layer3.erofs'),
    fixture('single', 'layer1.erofs'),
  ];
  for (const image of images) assert.equal(listWithReader(image), await listErofsImage(image), image);
});

test('mkfs.erofs 1.5 layers (extended and compact inodes, inline tails, shared xattrs, every file type) read exactly as the kernel shows them', async () => {
  for (const image of features) assert.equal(listWithReader(image), await listErofsImage(image), image);
});

test('chunk-based files with block maps (mkfs.erofs --chunksize) read exactly as the kernel shows them', async () => {
  const image = openReaderImage(chunked);
  try {
    const b = readDirectory(image, readInode(image, image.sb.rootNid)).find((e) => e.name === 'b');
    const map = mapData(image, readInode(image, b?.nid as number));
    assert.equal(map.kind, 'chunks');
  } finally {
    closeReaderImage(image);
  }
  assert.equal(listWithReader(chunked), await listErofsImage(chunked));
});

test('our merged image, concatenated with its layers, reads back as the overlay oracle', () => {
  for (const name of ['basic', 'taridx']) {
    const layers = [1, 2, 3, 4].map((i) => fixture(name, `layer${i}.erofs`));
    const result = mergeLayersWithLayout(layers.map((p) => ({ path: p })));
    const flat = path.join(work, `${name}-flat.img`);
    fs.writeFileSync(flat, result.fsmeta);
    for (const d of result.devices) fs.appendFileSync(flat, fs.readFileSync(d.path).subarray(0, d.blocks * result.blockSize));
    assert.equal(listWithReader(flat), fs.readFileSync(fixture(name, 'expected.tsv'), 'utf8'), name);
  }
});

test('a nid outside the image is an out-of-bounds error, not a short read', () => {
  const image = openReaderImage(small);
  try {
    expectFormatError(() => readInode(image, image.file.size / 32 + 10), 'out-of-bounds');
    expectFormatError(() => readInode(image, 2 ** 60), 'bad-nid');
  } finally {
    closeReaderImage(image);
  }
});

test('an unsorted directory is refused (the kernel could not look its names up)', () => {
  const swapped = patchImage(small, path.join(work, 'unsorted.erofs'), (bytes, at) => {
    const block = at.rootDirBlock;
    const names = bytes.subarray(block, block + 4096).toString('latin1');
    const a = block + names.indexOf('aa');
    const b = block + names.indexOf('bb');
    bytes.write('bb', a, 'latin1');
    bytes.write('aa', b, 'latin1');
  });
  const image = openReaderImage(swapped);
  try {
    expectFormatError(() => readDirectory(image, readInode(image, image.sb.rootNid)), 'unsorted-directory');
  } finally {
    closeReaderImage(image);
  }
});

test('a name with a slash is refused', () => {
  const slashed = patchImage(small, path.join(work, 'slash.erofs'), (bytes, at) => {
    const block = at.rootDirBlock;
    const i = bytes.subarray(block, block + 4096).toString('latin1').indexOf('bb');
    bytes.write('b/', block + i, 'latin1');
  });
  const image = openReaderImage(slashed);
  try {
    expectFormatError(() => readDirectory(image, readInode(image, image.sb.rootNid)), 'bad-dirent');
  } finally {
    closeReaderImage(image);
  }
});

test('an xattr entry running past its inline area is refused', () => {
  const overrun = patchImage(small, path.join(work, 'xattr.erofs'), (bytes, at) => {
    const f = at.child('f');
    // first inline entry after the 12-byte header (no shared ids in this image): e_value_size
    bytes.writeUInt16LE(0xffff, f.offset + f.inodeSize + 12 + 2);
  });
  const image = openReaderImage(overrun);
  try {
    const root = readInode(image, image.sb.rootNid);
    const f = readDirectory(image, root).find((e) => e.name === 'f');
    expectFormatError(() => readXattrs(image, readInode(image, f?.nid as number)), 'bad-xattr');
  } finally {
    closeReaderImage(image);
  }
});

test('file data pointing past the end of the image is refused', () => {
  const far = patchImage(fixture('basic', 'layer4.erofs'), path.join(work, 'far.erofs'), (bytes, at) => {
    // /bin/blob-4096 of layer 4 is FLAT_PLAIN: move its start block beyond the file
    const bin = at.child('bin');
    const image = at.image;
    const entry = readDirectory(image, bin).find((e) => e.name === 'blob-4096');
    const inode = readInode(image, entry?.nid as number);
    bytes.writeUInt32LE(1000, inode.offset + 16);
  });
  const image = openReaderImage(far);
  try {
    const bin = readDirectory(image, readInode(image, image.sb.rootNid)).find((e) => e.name === 'bin');
    const blob = readDirectory(image, readInode(image, bin?.nid as number)).find((e) => e.name === 'blob-4096');
    expectFormatError(() => mapData(image, readInode(image, blob?.nid as number)), 'data-out-of-bounds');
  } finally {
    closeReaderImage(image);
  }
});

test('a truncated image is refused when opened', () => {
  const cut = path.join(work, 'cut.erofs');
  fs.writeFileSync(cut, fs.readFileSync(fixture('basic', 'layer1.erofs')).subarray(0, 100000));
  expectFormatError(() => openReaderImage(cut), 'file-short');
});

test('a directory claiming a huge size is refused at once, not walked', () => {
  const huge = patchImage(small, path.join(work, 'huge-dir.erofs'), (bytes, at) => {
    const aa = at.child('aa');
    if (aa.compact) bytes.writeUInt32LE(0xffffffff, aa.offset + 8);
    else bytes.writeUInt32LE(0x7fff, aa.offset + 12);
  });
  const image = openReaderImage(huge);
  try {
    const aa = readDirectory(image, readInode(image, image.sb.rootNid)).find((e) => e.name === 'aa');
    const inode = readInode(image, aa?.nid as number);
    assert.ok(inode.size > 2 ** 31);
    assert.throws(() => readDirectory(image, inode), ErofsFormatError);
  } finally {
    closeReaderImage(image);
  }
});
