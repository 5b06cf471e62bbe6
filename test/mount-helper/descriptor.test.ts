/** The helper's strict descriptor parser against what the project's renderer writes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlatDescriptor } from '../../src/mount-helper/descriptor';
import { HelperError } from '../../src/mount-helper/errors';
import { renderDescriptor, SPLIT_SECTORS } from '../../src/vmdk';

const extents = [
  { path: '/var/lib/erofs-vmdk/fsmeta/a.erofs', sectors: 16, offset: 0 },
  { path: '/var/lib/erofs-vmdk/snapshots/1/layer.erofs', sectors: 712, offset: 0 },
  { path: '/var/lib/erofs-vmdk/snapshots/2/layer.erofs', sectors: 32, offset: 0 },
];

function refusal(text: string): string {
  try {
    parseFlatDescriptor(text, '/r/d.vmdk');
  } catch (err) {
    assert.ok(err instanceof HelperError);
    assert.doesNotMatch(err.message, /[\r\n]/);
    return err.message;
  }
  assert.fail('accepted');
}

test('accepts every descriptor the renderer writes without --split-2g (1 and many extents)', () => {
  for (const list of [extents.slice(0, 1), extents, Array.from({ length: 1000 }, (_, i) => ({ path: `/r/l${i}.erofs`, sectors: 8, offset: 0 }))]) {
    const parsed = parseFlatDescriptor(renderDescriptor(list), '/r/d.vmdk');
    assert.deepEqual(parsed.map((e) => ({ path: e.path, sectors: e.sectors, offset: 0 })), list);
  }
  assert.equal(parseFlatDescriptor(renderDescriptor(extents), '/r/d.vmdk')[1].line, 9);
});

test('refuses split extents (non-zero offsets), other access/types, stray keys and text', () => {
  const big = [{ path: '/r/big.erofs', sectors: SPLIT_SECTORS + 8, offset: 0 }];
  assert.match(refusal(renderDescriptor(big, { split2g: true })), /line 9: not an extent line .*big\.erofs\\" 4194304"$/);
  const good = renderDescriptor(extents);
  assert.match(refusal(good.replace('RW 712', 'RDONLY 712')), /line 9: not an extent line/);
  assert.match(refusal(good.replace('RW 712 FLAT', 'RW 712 SPARSE')), /line 9: not an extent line/);
  assert.match(refusal(good.replace(/"\/var\/lib\/erofs-vmdk\/fsmeta\/a\.erofs" 0/, '"/x" 0 extra')), /line 8: not an extent line/);
  assert.match(refusal(good.replace('version=1', 'version=1\nparentFileNameHint="/x"')), /line 3: not an extent line/);
  assert.match(refusal(good.replace('version=1', 'version=3')), /line 2: unexpected version value "3"/);
  assert.match(refusal(good.replace('CID=', 'CID=ffffffff\nCID=')), /line 4: header key CID given twice/);
  assert.match(refusal(good.replace('#DDB\n', '#DDB\nRW 8 FLAT "/x" 0\n')), /line \d+: extent line outside the extent section/);
  assert.match(refusal(good.replace(/\n/g, '\r\n')), /has CR line endings/);
  assert.match(refusal(good.replace('RW 16', 'RW 0')), /line 8: not an extent line/);
  assert.match(refusal('# Disk DescriptorFile\nversion=1\ncreateType="twoGbMaxExtentFlat"\n'), /has no extent$/);
  assert.match(refusal('# Disk DescriptorFile\nRW 1 FLAT "/x" 0\n'), /extent line outside the extent section/);
  assert.match(refusal(`# Disk DescriptorFile\n${'\n'.repeat(1200)}`), /lines \(at most 1099\)/);
});
