import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDescriptor } from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { caseLayers, NS, nextKey, startHarness, unpack } from './helpers';

const extentsOf = (descriptor: string) => parseDescriptor(fs.readFileSync(descriptor, 'utf8')).extents.map((e) => [e.path, e.sectors]);

describe('proxy core: warm-path cache', () => {
  it('a layer file replaced in place is noticed once the cached answer is older than the revalidation window', async () => {
    const h = startHarness({ revalidateMs: 0 });
    try {
      const layer = path.join(h.root, 'upstream-layer.erofs');
      fs.copyFileSync(fixture('single', 'layer1.erofs'), layer);
      const top = await unpack(h, [layer]);
      const key = nextKey('view');
      const first = await h.proxy.view(NS, 'erofs-vmdk', key, top, {});
      assert.deepEqual(extentsOf(first[0].source), [[layer, 64]]);

      // Replaced by a different (bigger) image at the same path: new identity, new extents.
      fs.rmSync(layer);
      fs.copyFileSync(fixture('basic', 'layer1.erofs'), layer);
      const second = await h.proxy.mounts(NS, 'erofs-vmdk', key);
      assert.notEqual(second[0].source, first[0].source);
      assert.deepEqual(extentsOf(second[0].source), [[layer, 712]]);
      assert.deepEqual(h.proxy.store.references('erofs-vmdk', key)?.files, [path.relative(h.proxy.store.root, second[0].source)]);
    } finally {
      await h.close();
    }
  });

  it('within the window the cached answer is served, but a deleted descriptor is still rebuilt', async () => {
    const h = startHarness({ revalidateMs: 60_000 });
    try {
      const top = await unpack(h, caseLayers('single'));
      const key = nextKey('view');
      const first = await h.proxy.view(NS, 'erofs-vmdk', key, top, {});
      fs.rmSync(first[0].source);
      assert.deepEqual(await h.proxy.mounts(NS, 'erofs-vmdk', key), first);
      assert.ok(fs.existsSync(first[0].source));
      const cached = h.logs.filter((l) => l.msg === 'mounts rewritten to a flat vmdk').map((l) => l.cached);
      assert.deepEqual(cached, [false, false], 'the vanished file forced a rebuild, not a cache hit');
      await h.proxy.mounts(NS, 'erofs-vmdk', key);
      const hit = h.logs.filter((l) => l.msg === 'mounts rewritten to a flat vmdk').at(-1);
      assert.equal(hit?.cached, true);
      assert.equal(hit?.level, 20, 'a cache hit is logged at debug; info holds one line per rewrite');
    } finally {
      await h.close();
    }
  });

  it('Cleanup racing with Prepares never deletes a descriptor that ends up referenced', async () => {
    const h = startHarness();
    try {
      const top = await unpack(h, caseLayers('basic'));
      const keys = [nextKey('a'), nextKey('b'), nextKey('c')];
      const results = await Promise.all([
        ...keys.map((k) => h.proxy.prepare(NS, 'erofs-vmdk', k, top, {})),
        h.proxy.cleanup({}, 'erofs-vmdk'),
        h.proxy.cleanup({}, 'erofs-vmdk'),
      ]);
      await h.proxy.cleanup({}, 'erofs-vmdk');
      const descriptor = (results[0] as { source: string }[])[0].source;
      assert.ok(fs.existsSync(descriptor));
      const extents = parseDescriptor(fs.readFileSync(descriptor, 'utf8')).extents.map((e) => e.path as string);
      for (const f of extents) assert.ok(fs.existsSync(f), `${f} exists`);
      for (const k of keys) assert.ok(h.proxy.store.references('erofs-vmdk', k), `${k} references its files`);
    } finally {
      await h.close();
    }
  });
});
