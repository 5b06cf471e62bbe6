import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SPLIT_SECTORS,
  VmdkError,
  contentCid,
  lintDescriptor,
  parseDescriptor,
  renderDescriptor,
  type Extent,
} from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';

const basicExtents: Extent[] = [
  { path: '/data/fsmeta.erofs', sectors: 16, offset: 0 },
  { path: '/data/layer1.erofs', sectors: 712, offset: 0 },
  { path: '/data/layer2.erofs', sectors: 32, offset: 0 },
];

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VmdkError, String(err));
    assert.doesNotMatch(err.message, /[\r\n]/);
    return err.code;
  }
  return 'no error';
}

test('renders exactly the design §5 text', () => {
  const text = renderDescriptor(basicExtents);
  const cid = contentCid(['RW 16 FLAT "/data/fsmeta.erofs" 0', 'RW 712 FLAT "/data/layer1.erofs" 0', 'RW 32 FLAT "/data/layer2.erofs" 0']);
  assert.equal(
    text,
    [
      '# Disk DescriptorFile',
      'version=1',
      `CID=${cid}`,
      'parentCID=ffffffff',
      'createType="twoGbMaxExtentFlat"',
      '',
      '# Extent description',
      'RW 16 FLAT "/data/fsmeta.erofs" 0',
      'RW 712 FLAT "/data/layer1.erofs" 0',
      'RW 32 FLAT "/data/layer2.erofs" 0',
      '',
      '# The Disk Data Base',
      '#DDB',
      '',
      'ddb.virtualHWVersion = "4"',
      'ddb.geometry.cylinders = "1"',
      'ddb.geometry.heads = "16"',
      'ddb.geometry.sectors = "63"',
      'ddb.adapterType = "ide"',
      '',
    ].join('\n'),
  );
});

test('same layout as mkfs.erofs --vmdk-desc apart from CID and paths (basic/merged.vmdk)', () => {
  const mkfs = fs.readFileSync(fixture('basic', 'merged.vmdk'), 'utf8');
  const ours = renderDescriptor(
    ['fsmeta', 'layer1', 'layer2', 'layer3', 'layer4'].map((n, i) => ({ path: `/${n}.erofs`, sectors: [16, 712, 32, 24, 24][i], offset: 0 })),
  );
  const normalise = (t: string) => t.replace(/^CID=.*$/m, 'CID=x').replace(/"\/?([^"/]+\.erofs)"/g, '"$1"');
  assert.equal(normalise(ours), normalise(mkfs));
});

test('CID: 8 lowercase hex, deterministic, content-dependent, never ffffffff/fffffffe', () => {
  const a = renderDescriptor(basicExtents);
  assert.equal(renderDescriptor(basicExtents), a);
  const cidOf = (t: string) => /^CID=(.*)$/m.exec(t)![1];
  assert.match(cidOf(a), /^[0-9a-f]{8}$/);
  assert.notEqual(cidOf(renderDescriptor([{ ...basicExtents[0], sectors: 17 }])), cidOf(a));
  for (let i = 0; i < 2000; i++) {
    const cid = contentCid([`RW ${i} FLAT "/x" 0`]);
    assert.ok(cid !== 'ffffffff' && cid !== 'fffffffe');
  }
});

test('geometry cylinders = min(16383, ceil(sectors/1008))', () => {
  const cyl = (sectors: number) => /cylinders = "(\d+)"/.exec(renderDescriptor([{ path: '/a', sectors, offset: 0 }]))![1];
  assert.equal(cyl(1008), '1');
  assert.equal(cyl(1009), '2');
  assert.equal(cyl(1008 * 20000), '16383');
});

test('split2g: pieces of 4194304 sectors with increasing offsets; default is one line per file', () => {
  const big = [{ path: '/big', sectors: SPLIT_SECTORS * 2 + 5, offset: 0 }];
  assert.equal(parseDescriptor(renderDescriptor(big)).extents.length, 1);
  const split = parseDescriptor(renderDescriptor(big, { split2g: true })).extents;
  assert.deepEqual(split.map((e) => [e.sectors, e.offset]), [[SPLIT_SECTORS, 0], [SPLIT_SECTORS, SPLIT_SECTORS], [5, SPLIT_SECTORS * 2]]);
});

test('refuses unsafe paths and bad sizes with typed errors, never escapes', () => {
  const one = (p: string) => () => renderDescriptor([{ path: p, sectors: 8, offset: 0 }]);
  assert.equal(codeOf(one('relative.erofs')), 'relative-path');
  assert.equal(codeOf(one('/a"b')), 'path-has-quote');
  assert.equal(codeOf(one('/a\nb')), 'path-has-newline');
  assert.equal(codeOf(one('/a\rb')), 'path-has-newline');
  assert.equal(codeOf(one('/a b')), 'path-has-whitespace');
  assert.equal(codeOf(one('/a\tb')), 'path-has-whitespace');
  assert.equal(codeOf(one('/x/parentFileNameHint')), 'path-has-parent-hint');
  assert.equal(codeOf(one(`/${'a'.repeat(511)}`)), 'path-too-long');
  assert.equal(codeOf(one(`/${'é'.repeat(300)}`)), 'path-too-long'); // bytes, not characters
  assert.doesNotThrow(one(`/${'a'.repeat(510)}`));
  assert.equal(codeOf(one('/a/../b')), 'path-not-normalized');
  assert.equal(codeOf(() => renderDescriptor([{ path: '/a', sectors: 0, offset: 0 }])), 'bad-extent-size');
  assert.equal(codeOf(() => renderDescriptor([{ path: '/a', sectors: 1.5, offset: 0 }])), 'bad-extent-size');
  assert.equal(codeOf(() => renderDescriptor([{ path: '/a', sectors: 8, offset: -1 }])), 'bad-extent-offset');
  assert.equal(codeOf(() => renderDescriptor([])), 'no-extents');
});

test('refuses descriptors of 1100 lines or more', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `/l${i}`, sectors: 8, offset: 0 }));
  assert.equal(parseDescriptor(renderDescriptor(many(1083))).lines.length, 1099);
  assert.equal(codeOf(() => renderDescriptor(many(1084))), 'too-many-extents');
});

test('a rendered descriptor parses back to its extents and lints clean', async () => {
  await withTempDir((dir) => {
    const extents = ['a', 'b'].map((n, i) => {
      const p = path.join(fs.realpathSync(dir), `${n}.erofs`);
      fs.writeFileSync(p, Buffer.alloc(4096 * (i + 1)));
      return { path: p, sectors: 8 * (i + 1), offset: 0 };
    });
    const parsed = parseDescriptor(renderDescriptor(extents));
    assert.deepEqual(parsed.extents.map((e) => ({ path: e.path, sectors: e.sectors, offset: e.offset })), extents);
    assert.deepEqual(lintDescriptor(parsed, { baseDir: dir }), []);
  });
});

function lintCodes(text: string, options = {}): string[] {
  return lintDescriptor(parseDescriptor(text), options).map((f) => f.code);
}

const good = renderDescriptor([{ path: '/a', sectors: 8, offset: 0 }]);

test('lint flags every §5 rule', () => {
  assert.deepEqual(lintCodes(good), []);
  assert.deepEqual(lintCodes(good.replace('RW 8', 'RDONLY 8')), ['extent-access']);
  assert.deepEqual(lintCodes(good.replace('RW 8', 'NOACCESS 8')), ['extent-access']);
  assert.deepEqual(lintCodes(good.replace('RW 8 FLAT "/a" 0', 'RW 8 ZERO')), ['extent-type', 'extent-short-line']);
  assert.deepEqual(lintCodes(good.replace('RW 8 FLAT "/a" 0', 'RW 8 SPARSE "/a" 0')), ['extent-type']);
  assert.deepEqual(lintCodes(good.replace('"/a" 0', '"/a"')), ['extent-missing-offset']);
  assert.deepEqual(lintCodes(good.replace('"/a" 0', '"/a" 7')), ['extent-nonzero-offset']);
  assert.deepEqual(lintCodes(good.replace('"/a"', '"a"')), ['relative-path']);
  assert.deepEqual(lintCodes(good.replace('"/a"', '"/a b"')), ['unsafe-path']);
  assert.deepEqual(lintCodes(good.replace('"/a"', '"/parentFileNameHint"')), ['unsafe-path']);
  assert.deepEqual(lintCodes(good.replace('RW 8 FLAT', 'RW  8 FLAT')), ['whitespace']);
  assert.deepEqual(lintCodes(good.replace('version=1', 'version=1\nencoding="UTF-8"')), ['header-key-unknown']);
  assert.deepEqual(lintCodes(good.replace('version=1\n', '')), ['header-key-missing']);
  assert.deepEqual(lintCodes(good.replace('version=1', 'version=2')), ['header-version']);
  assert.deepEqual(lintCodes(good.replace(/CID=\w+/, 'CID=ffffffff')), ['cid-reserved']);
  assert.deepEqual(lintCodes(good.replace(/CID=\w+/, 'CID=XYZ')), ['cid-invalid']);
  assert.deepEqual(lintCodes(good.replace('parentCID=ffffffff', 'parentCID=12345678')), ['has-parent']);
  assert.deepEqual(lintCodes(good.replace('twoGbMaxExtentFlat', 'monolithicSparse')), ['create-type']);
  assert.deepEqual(lintCodes(good.replace(/\n/g, '\r\n')), ['cr-line-ending']);
  assert.deepEqual(lintCodes(good.replace('"ide"', '"ide"\ngarbage line')), ['malformed-line']);
  assert.deepEqual(lintCodes(good.replace('cylinders = "1"', 'cylinders = "9"')), ['ddb-geometry']);
  const long = good.replace('RW 8 FLAT "/a" 0', Array.from({ length: 1100 }, () => 'RW 8 FLAT "/a" 0').join('\n'));
  assert.ok(lintCodes(long).includes('too-many-lines'));
});

test('lint checks the files: missing, shorter than the extent, reached through a symlink', async () => {
  await withTempDir((dir) => {
    const real = path.join(fs.realpathSync(dir), 'real.erofs');
    fs.writeFileSync(real, Buffer.alloc(2048));
    const link = path.join(fs.realpathSync(dir), 'link.erofs');
    fs.symlinkSync(real, link);
    const one = (p: string, sectors: number) => renderDescriptor([{ path: p, sectors, offset: 0 }]);
    assert.deepEqual(lintCodes(one(real, 4), { baseDir: dir }), []);
    assert.deepEqual(lintCodes(one(real, 5), { baseDir: dir }), ['extent-file-short']);
    assert.deepEqual(lintCodes(one(link, 4), { baseDir: dir }), ['path-not-resolved']);
    assert.deepEqual(lintCodes(one(path.join(dir, 'gone'), 4), { baseDir: dir }), ['extent-file-missing']);
  });
});

test('lint against a device layout: order and sizes must follow the table', () => {
  const layout = { blockSize: 4096, primaryBlocks: 2, devices: [{ uniaddr: 2, blocks: 89, dataOffset: 0 }, { uniaddr: 91, blocks: 4, dataOffset: 0 }] };
  const ok = renderDescriptor([{ path: '/m', sectors: 16, offset: 0 }, { path: '/a', sectors: 712, offset: 0 }, { path: '/b', sectors: 32, offset: 0 }]);
  assert.deepEqual(lintCodes(ok, { deviceLayout: layout }), []);
  const shifted = renderDescriptor([{ path: '/m', sectors: 24, offset: 0 }, { path: '/a', sectors: 712, offset: 0 }, { path: '/b', sectors: 32, offset: 0 }]);
  assert.deepEqual(lintCodes(shifted, { deviceLayout: layout }), ['layout-mismatch', 'layout-mismatch']);
  const short = renderDescriptor([{ path: '/m', sectors: 16, offset: 0 }, { path: '/a', sectors: 712, offset: 0 }, { path: '/b', sectors: 31, offset: 0 }]);
  assert.deepEqual(lintCodes(short, { deviceLayout: layout }), ['layout-mismatch']);
  const missing = renderDescriptor([{ path: '/m', sectors: 16, offset: 0 }, { path: '/a', sectors: 712, offset: 0 }]);
  assert.deepEqual(lintCodes(missing, { deviceLayout: layout }), ['layout-extent-count']);
  // 2 GiB split pieces of one file count as one device
  const split = renderDescriptor([{ path: '/m', sectors: 16, offset: 0 }, { path: '/a', sectors: 712, offset: 0 }, { path: '/b', sectors: 32, offset: 0 }], { split2g: true });
  assert.deepEqual(lintCodes(split, { deviceLayout: layout }), []);
});

test('lint: tar-index extent offsets (taridx variant a) match a table that counts tar data only', () => {
  const text = fs.readFileSync(fixture('taridx', 'merged.vmdk'), 'utf8');
  const layout = {
    blockSize: 512,
    primaryBlocks: 11,
    devices: [
      { uniaddr: 11, blocks: 671, dataOffset: 5120 },
      { uniaddr: 682, blocks: 13, dataOffset: 2560 },
      { uniaddr: 695, blocks: 20, dataOffset: 2560 },
      { uniaddr: 715, blocks: 14, dataOffset: 2048 },
    ],
  };
  const found = lintCodes(text, { deviceLayout: layout });
  assert.ok(!found.includes('layout-mismatch'), found.join(','));
  assert.ok(found.includes('extent-nonzero-offset'));
});

test('parser is total: random text never throws', () => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const alphabet = 'RW FLAT ZERO "/\r\n=#0123456789abcdefCIDversionddb. \t';
  for (let i = 0; i < 3000; i++) {
    const len = next() % 400;
    let s = '';
    for (let k = 0; k < len; k++) s += alphabet[next() % alphabet.length];
    const mixed = i % 2 ? good.slice(0, next() % good.length) + s : s;
    lintDescriptor(parseDescriptor(mixed), { baseDir: '/nonexistent', deviceLayout: { blockSize: 4096, primaryBlocks: 1, devices: [{ uniaddr: 1, blocks: 1, dataOffset: 0 }] } });
  }
});
