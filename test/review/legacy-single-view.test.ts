/**
 * containerd < 2.2 shape (embedded `legacy` mount style): a read-only view of
 * ONE layer is `{bind, <dir>/fs, [ro, rbind]}` (overlayfs refuses a single
 * lower without an upper). It used to pass through unchanged, so a VM runtime
 * got a bind of a host directory instead of the one vmdk disk every other
 * root filesystem gets. It must become the vmdk mount of that layer's blob
 * (through the daemon: the default contract v2 entry, read-only, whose
 * descriptor is that blob alone).
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { planRewrite, renderMounts, type RewriteEnv } from '../../src/rewrite';
import type { Mount } from '../../src/mount';
import { fixture } from '../support/fixtures';
import { assertContractV2 } from '../support/contract';
import { startDaemon, unpackFixture } from '../support/daemon';

const R = '/var/lib/ev/embedded/snapshots';
const env: RewriteEnv = { legacyLayerOf: (d) => (d === `${R}/1/fs` ? `${R}/1/layer.erofs` : undefined) };
const plan = (mounts: Mount[]) => planRewrite({ key: 'default/9/view', profile: 'erofs-vmdk', rewrite: true, mounts }, env);
const bind = (source: string, options: string[]): Mount => ({ type: 'bind', source, target: '', options });

describe('planRewrite: legacy read-only view of one layer', () => {
  it('becomes the vmdk mount of that blob alone', () => {
    const p = plan([bind(`${R}/1/fs`, ['ro', 'rbind'])]);
    assert.equal(p.kind, 'flat');
    if (p.kind !== 'flat') return;
    assert.deepEqual({ source: p.source, shape: p.shape, layers: p.layers }, { source: 'single', shape: 'legacy', layers: [`${R}/1/layer.erofs`] });
    assert.deepEqual(renderMounts(p, '/s/vmdk/d.vmdk').map((m) => m.type), ['vmdk']);
  });

  it('a writable bind (parentless active) and a bind without a layer beside it pass through', () => {
    assert.deepEqual(plan([bind(`${R}/1/fs`, ['rw', 'rbind'])]), { kind: 'passthrough', reason: 'no-erofs-lower' });
    assert.deepEqual(plan([bind(`${R}/2/fs`, ['ro', 'rbind'])]), { kind: 'passthrough', reason: 'not-erofs-layers' });
  });

  it('an option the vmdk mount cannot carry is refused, not dropped', () => {
    assert.throws(() => plan([bind(`${R}/1/fs`, ['ro', 'rbind', 'nosuid'])]), (err: { kind?: string; message?: string }) =>
      err.kind === 'FailedPrecondition' && /nosuid/.test(err.message ?? ''));
  });
});

test('embedded legacy daemon: View of a single-layer image answers one read-only contract v2 entry whose descriptor is that layer alone', { timeout: 120_000 }, async () => {
  const d = await startDaemon({ backend: 'embedded' });
  try {
    const image = await unpackFixture(d.client, { snapshotter: 'erofs-vmdk', caseDir: fixture('single'), differ: 'copy' });
    const mounts = await d.client.view({ snapshotter: 'erofs-vmdk', key: 'default/50/view-single', parent: image.top });
    const descriptor = assertContractV2(mounts, { kind: 'view' });
    const extents = fs.readFileSync(descriptor, 'utf8').split('\n').filter((l) => l.startsWith('RW '));
    assert.equal(extents.length, 1);
    assert.match(extents[0], /\/layer\.erofs" 0$/);
  } finally {
    await d.close();
  }
});
