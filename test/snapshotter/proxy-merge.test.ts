import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mergeLayers, type MergeLayer } from '../../src/merge';
import { mergedFsmetaDigest } from '../../src/snapshotter/merged-fsmeta';
import { parseDescriptor } from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { listFlatDescriptor } from '../support/kernel-mounts';
import { FakeBackend } from './fake-backend';
import { caseLayers, NS, nextKey, startHarness, unpack } from './helpers';

const expected = (c: string) => fs.readFileSync(fixture(c, 'expected.tsv'), 'utf8');

/** The real native merge, counting how often it runs. */
function countingMerge() {
  const calls: string[][] = [];
  return { calls, mergeLayers: (layers: MergeLayer[]) => { calls.push(layers.map((l) => l.path)); return mergeLayers(layers); } };
}

describe('proxy core: layers without an fsmeta are merged (native merge)', () => {
  it('four plain lowers: one merged fsmeta, built once under concurrent requests, flat tree = expected.tsv', async () => {
    const merge = countingMerge();
    const h = startHarness({ deps: { mergeLayers: merge.mergeLayers } });
    try {
      const top = await unpack(h, caseLayers('basic'));
      const keys = [nextKey('c1'), nextKey('c2'), nextKey('c3'), nextKey('c4')];
      const results = await Promise.all(keys.map((k) => h.proxy.prepare(NS, 'erofs-vmdk', k, top, {})));
      assert.equal(merge.calls.length, 1, 'single-flight: one merge for four concurrent Prepares');
      assert.deepEqual(merge.calls[0], caseLayers('basic'), 'layers handed to the merge bottom first');
      for (const r of results) assert.deepEqual(r[0], results[0][0], 'same descriptor for every container of the image');
      assert.ok(results[0][1].options.includes('lowerdir={{ mount 0 }}'));

      const merged = path.join(h.proxy.store.root, 'fsmeta', `${mergedFsmetaDigest(caseLayers('basic'))}.erofs`);
      const extents = parseDescriptor(fs.readFileSync(results[0][0].source, 'utf8')).extents.map((e) => e.path);
      assert.deepEqual(extents, [merged, ...caseLayers('basic')]);
      assert.equal(await listFlatDescriptor(results[0][0].source), expected('basic'));

      // A restart finds the merged fsmeta by the layers' identity: no second merge.
      h.restart();
      assert.deepEqual(await h.proxy.mounts(NS, 'erofs-vmdk', keys[0]), results[0]);
      assert.equal(merge.calls.length, 1);

      // The merged fsmeta is garbage-collected with the descriptor.
      for (const k of keys) await h.proxy.remove(NS, 'erofs-vmdk', k);
      await h.proxy.cleanup({}, 'erofs-vmdk');
      assert.ok(!fs.existsSync(merged));
      assert.deepEqual(h.proxy.storeCounts(), { descriptors: 0, fsmeta: 0 });
    } finally {
      await h.close();
    }
  });

  it('plain lowers above an fsmeta: all layers are merged', async () => {
    const merge = countingMerge();
    const h = startHarness({ deps: { mergeLayers: merge.mergeLayers } });
    try {
      const layers = caseLayers('basic');
      const top = await unpack(h, layers);
      const key = nextKey();
      // Layers 4 and 3 plain above an fsmeta of layers 1-2 (containerd stops at
      // the first parent with an fsmeta). The corpus has no fsmeta of exactly
      // 1-2, and none is needed: the merge is built from the layer blobs, the
      // backend's fsmeta only tells which layers lie below it.
      h.backend.overrides.set(`erofs-vmdk/${key}`, [
        { type: 'erofs', source: layers[3], target: '', options: ['ro', 'loop'] },
        { type: 'erofs', source: layers[2], target: '', options: ['ro', 'loop'] },
        { type: 'erofs', source: fixture('basic', 'fsmeta.erofs'), target: '', options: ['ro', 'loop', `device=${layers[0]}`, `device=${layers[1]}`] },
        { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: ['workdir=/w', 'upperdir=/u', 'lowerdir={{ overlay 0 2 }}'] },
      ]);
      const mounts = await h.proxy.prepare(NS, 'erofs-vmdk', key, top, {});
      assert.deepEqual(merge.calls, [layers]);
      assert.deepEqual(mounts[1].options, ['workdir=/w', 'upperdir=/u', 'lowerdir={{ mount 0 }}']);
      assert.equal(await listFlatDescriptor(mounts[0].source), expected('basic'));
    } finally {
      await h.close();
    }
  });

  it('legacy overlay of <dir>/fs lowerdirs with layer.erofs beside them', async () => {
    const backend = new FakeBackend('legacy');
    const h = startHarness({ backend });
    backend.legacyRoot = path.join(h.root, 'upstream');
    try {
      const top = await unpack(h, caseLayers('basic'));
      const key = nextKey();
      const mounts = await h.proxy.prepare(NS, 'erofs-vmdk', key, top, {});
      assert.deepEqual(mounts.map((m) => m.type), ['vmdk', 'format/overlay']);
      assert.ok(mounts[1].options.includes('lowerdir={{ mount 0 }}'));
      assert.ok(mounts[1].options.some((o) => o.startsWith('upperdir=')));
      assert.equal(await listFlatDescriptor(mounts[0].source), expected('basic'));
    } finally {
      await h.close();
    }
  });
});
