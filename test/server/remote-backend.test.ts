/** The remote backend against the test upstream over a real unix socket. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createRemoteBackend } from '../../src/backend/remote';
import type { Backend } from '../../src/backend/backend';
import { SnapshotterError } from '../../src/errdefs';
import { fixture } from '../support/fixtures';
import { LAYER_LABEL, startUpstream, type TestUpstream } from '../support/upstream';

const ctx = { namespace: 'default' };

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('remote backend', () => {
  let up: TestUpstream;
  let backend: Backend;
  before(async () => {
    up = await startUpstream();
    backend = createRemoteBackend({ address: up.address, snapshotter: 'erofs-upstream', connectTimeoutMs: 1500 });
  });
  after(async () => {
    await backend.close();
    await up.close();
  });

  test('puts the upstream snapshotter name in requests and forwards the namespace', async () => {
    await backend.prepare({ namespace: 'ns1' }, 'ns1/1/a', '', {});
    await backend.stat({}, 'ns1/1/a');
    const [prep, stat] = up.calls.slice(-2);
    assert.deepEqual(prep, { rpc: 'Prepare', snapshotter: 'erofs-upstream', key: 'ns1/1/a', namespace: 'ns1' });
    assert.deepEqual(stat, { rpc: 'Stat', snapshotter: 'erofs-upstream', key: 'ns1/1/a', namespace: undefined }, 'GC-style calls carry no namespace');
  });

  test('returns the upstream mounts and infos unchanged', async () => {
    const layer = fixture('basic', 'layer1.erofs');
    await backend.prepare(ctx, 'default/2/extract-1 sha256:x', '', {});
    await backend.commit(ctx, 'default/3/sha256:x', 'default/2/extract-1 sha256:x', { [LAYER_LABEL]: layer }, '');
    const mounts = await backend.view(ctx, 'default/4/v', 'default/3/sha256:x', { a: 'b' });
    assert.deepEqual(mounts, [{ type: 'erofs', source: layer, target: '', options: ['ro', 'loop'] }]);
    const info = await backend.stat(ctx, 'default/3/sha256:x');
    assert.equal(info.kind, 'committed');
    assert.equal(info.labels[LAYER_LABEL], layer);
    assert.ok(info.createdAt instanceof Date && info.createdAt.getTime() > 0);
    const updated = await backend.update(ctx, { ...info, labels: { x: 'y' } }, ['labels.x']);
    assert.equal(updated.labels.x, 'y');
    assert.equal(updated.labels[LAYER_LABEL], layer);
    const usage = await backend.usage(ctx, 'default/3/sha256:x');
    assert.equal(usage.size, (await import('node:fs')).statSync(layer).size);
  });

  test('List streams every info across several response messages and applies filters upstream', async () => {
    for (let i = 0; i < 7; i++) await backend.prepare(ctx, `list/${i}`, '', { group: 'L' });
    const all = await collect(backend.list(ctx, ['labels.group==L']));
    assert.deepEqual(all.map((i) => i.name).sort(), [0, 1, 2, 3, 4, 5, 6].map((i) => `list/${i}`));
    assert.equal(up.calls.at(-1)?.rpc, 'List');
  });

  test('passes errors through with their codes and messages', async () => {
    await assert.rejects(backend.stat(ctx, 'missing'), (e: SnapshotterError) => e.kind === 'NotFound' && /missing/.test(e.message));
    await assert.rejects(backend.prepare(ctx, 'list/0', '', {}), (e: SnapshotterError) => e.kind === 'AlreadyExists');
    up.failNext('Mounts', status.PERMISSION_DENIED, 'upstream says no');
    await assert.rejects(backend.mounts(ctx, 'list/0'), (e: SnapshotterError & { grpcCode?: number }) => e.grpcCode === status.PERMISSION_DENIED && e.message === 'upstream says no');
    up.failNext('List', status.FAILED_PRECONDITION, 'list broke');
    await assert.rejects(collect(backend.list(ctx, [])), (e: SnapshotterError) => e.kind === 'FailedPrecondition' && e.message === 'list broke');
  });

  test('fails fast with Unavailable naming the socket while the upstream is down, then recovers by itself', async () => {
    await up.stop();
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      await assert.rejects(backend.mounts(ctx, 'list/0'), (e: SnapshotterError) => e.kind === 'Unavailable' && e.message.includes(up.address));
      assert.ok(Date.now() - t0 < 2000, `Unavailable took ${Date.now() - t0} ms`);
    }
    await assert.rejects(collect(backend.list(ctx, [])), (e: SnapshotterError) => e.kind === 'Unavailable');
    await up.start();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal((await backend.mounts(ctx, 'list/0'))[0].type, 'bind');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });

  test('a call whose context is already cancelled is not sent upstream', async () => {
    const abort = new AbortController();
    abort.abort();
    const before = up.calls.length;
    await assert.rejects(backend.mounts({ signal: abort.signal }, 'list/0'));
    assert.equal(up.calls.length, before);
  });
});

describe('remote backend: remembered Mounts answers', () => {
  let up: TestUpstream;
  let backend: Backend;
  const results: string[] = [];
  const upstreamMounts = () => up.calls.filter((c) => c.rpc === 'Mounts').length;

  before(async () => {
    up = await startUpstream();
    backend = createRemoteBackend({ address: up.address, snapshotter: '', mountsCacheTtlMs: 60_000, onMountsCache: (r) => results.push(r) });
    await backend.prepare(ctx, 'default/1/extract', '', {});
    await backend.commit(ctx, 'default/2/layer-a', 'default/1/extract', { [LAYER_LABEL]: fixture('basic', 'layer1.erofs') }, '');
    await backend.prepare(ctx, 'default/3/extract', '', {});
    await backend.commit(ctx, 'default/4/layer-b', 'default/3/extract', { [LAYER_LABEL]: fixture('basic', 'layer2.erofs') }, '');
  });
  after(async () => {
    await backend.close();
    await up.close();
  });

  test('a second Mounts of a key is answered from memory, identical to the first', async () => {
    await backend.prepare(ctx, 'default/5/ctr', 'default/2/layer-a', {});
    const asked = upstreamMounts();
    const first = await backend.mounts(ctx, 'default/5/ctr');
    const second = await backend.mounts(ctx, 'default/5/ctr');
    assert.deepEqual(second, first);
    assert.equal(upstreamMounts(), asked + 1, 'only the first Mounts reached the upstream');
    assert.deepEqual(results.slice(-2), ['miss', 'hit']);
  });

  test('a Remove without namespace (containerd\'s garbage collector) forgets the answer; a new Prepare of the key gets a new one', async () => {
    const before = await backend.mounts(ctx, 'default/5/ctr');
    assert.equal(before[0].source, fixture('basic', 'layer1.erofs'));
    await backend.remove({}, 'default/5/ctr');
    await assert.rejects(backend.mounts(ctx, 'default/5/ctr'), (e: SnapshotterError) => e.kind === 'NotFound');
    await backend.prepare(ctx, 'default/5/ctr', 'default/4/layer-b', {});
    const after = await backend.mounts(ctx, 'default/5/ctr');
    assert.equal(after[0].source, fixture('basic', 'layer2.erofs'));
  });

  test('View, Update and Commit of a key forget its answer', async () => {
    await backend.view(ctx, 'default/6/view', 'default/2/layer-a', {});
    await backend.mounts(ctx, 'default/6/view');
    let asked = upstreamMounts();
    const info = await backend.stat(ctx, 'default/6/view');
    await backend.update(ctx, { ...info, labels: { 'containerd.io/snapshot/max-size': '1' } }, ['labels.containerd.io/snapshot/max-size']);
    await backend.mounts(ctx, 'default/6/view');
    assert.equal(upstreamMounts(), asked + 1, 'Update made the next Mounts ask again');

    await backend.prepare(ctx, 'default/7/active', 'default/2/layer-a', {});
    await backend.mounts(ctx, 'default/7/active');
    asked = upstreamMounts();
    await backend.commit(ctx, 'default/8/committed', 'default/7/active', {}, '');
    await assert.rejects(backend.mounts(ctx, 'default/7/active'), (e: SnapshotterError) => e.kind === 'NotFound');
    assert.equal(upstreamMounts(), asked + 1);
  });

  test('losing the upstream forgets every answer: Unavailable within 2 s, then asked again once it is back', async () => {
    await backend.prepare(ctx, 'default/9/ctr', 'default/2/layer-a', {});
    await backend.mounts(ctx, 'default/9/ctr');
    await backend.mounts(ctx, 'default/9/ctr');
    assert.equal(results.at(-1), 'hit');
    await up.stop();
    try {
      // The backend learns of the loss from the connection closing (an I/O event, one
      // event-loop turn later); a Mounts in between gets the answer that was right a moment ago.
      const t0 = Date.now();
      for (;;) {
        const outcome = await backend.mounts(ctx, 'default/9/ctr').then(
          () => undefined,
          (e: SnapshotterError) => e,
        );
        if (outcome !== undefined) {
          assert.ok(outcome.kind === 'Unavailable' && outcome.message.includes(up.address), String(outcome));
          break;
        }
        assert.ok(Date.now() - t0 < 2000, 'still answering from memory 2 s after the upstream went away');
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(Date.now() - t0 < 2000, `Unavailable after ${Date.now() - t0} ms`);
    } finally {
      await up.start();
    }
    const asked = upstreamMounts();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal((await backend.mounts(ctx, 'default/9/ctr'))[0].source, fixture('basic', 'layer1.erofs'));
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.equal(upstreamMounts(), asked + 1, 'the answer came from the upstream, not from memory');
  });

  test('with mountsCacheTtlMs 0 every Mounts asks the upstream', async () => {
    const uncached = createRemoteBackend({ address: up.address, snapshotter: '' });
    try {
      const asked = upstreamMounts();
      for (let i = 0; i < 3; i++) await uncached.mounts(ctx, 'default/9/ctr');
      assert.equal(upstreamMounts(), asked + 3);
    } finally {
      await uncached.close();
    }
  });
});

describe('test upstream mount shapes (containerd >= 2.2 EROFS snapshotter)', () => {
  test('fsmeta lower with device= options bottom first, then format/mkdir/overlay', async () => {
    const up = await startUpstream();
    const b = createRemoteBackend({ address: up.address, snapshotter: '' });
    try {
      const l = (n: number) => fixture('basic', `layer${n}.erofs`);
      let parent = '';
      for (const n of [1, 2, 3, 4]) {
        await b.prepare(ctx, `e${n}`, parent, {});
        const labels: Record<string, string> = { [LAYER_LABEL]: l(n) };
        if (n === 4) labels['containerd.io/snapshot/erofs-vmdk.test.fsmeta'] = fixture('basic', 'fsmeta.erofs');
        await b.commit(ctx, `c${n}`, `e${n}`, labels, '');
        parent = `c${n}`;
      }
      const active = await b.prepare(ctx, 'ctr', 'c4', {});
      const dir = path.join(up.root, 'snapshots', '5');
      assert.deepEqual(active, [
        { type: 'erofs', source: fixture('basic', 'fsmeta.erofs'), target: '', options: ['ro', 'loop', `device=${l(1)}`, `device=${l(2)}`, `device=${l(3)}`, `device=${l(4)}`] },
        { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: [`workdir=${dir}/work`, `upperdir=${dir}/fs`, 'lowerdir={{ mount 0 }}'] },
      ]);
      const view = await b.view(ctx, 'v', 'c4', {});
      assert.deepEqual(view[1], { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] });
      const plain = await b.view(ctx, 'v3', 'c3', {});
      assert.deepEqual(plain.map((m) => m.source), [l(3), l(2), l(1), 'overlay']);
      assert.deepEqual(plain[3].options, ['lowerdir={{ overlay 0 2 }}']);
    } finally {
      await b.close();
      await up.close();
    }
  });

  test('block mode: leading mkfs/ext4 and {{ mount 0 }}/upper|work', async () => {
    const up = await startUpstream({ blockSize: 64 << 20 });
    const b = createRemoteBackend({ address: up.address, snapshotter: '' });
    try {
      await b.prepare(ctx, 'e1', '', {});
      await b.commit(ctx, 'c1', 'e1', { [LAYER_LABEL]: fixture('single', 'layer1.erofs') }, '');
      const m = await b.prepare(ctx, 'ctr', 'c1', {});
      assert.equal(m[0].type, 'mkfs/ext4');
      assert.deepEqual(m[0].options, ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${64 << 20}`, 'rw', 'loop']);
      assert.deepEqual(m[1], { type: 'erofs', source: fixture('single', 'layer1.erofs'), target: '', options: ['ro', 'loop'] });
      assert.deepEqual(m[2].options, [
        'X-containerd.mkdir.path={{ mount 0 }}/upper:0755',
        'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
        'workdir={{ mount 0 }}/work',
        'upperdir={{ mount 0 }}/upper',
        'lowerdir={{ mount 1 }}',
      ]);
    } finally {
      await b.close();
      await up.close();
    }
  });
});
