/**
 * Mount shapes, as the backend returns them for real snapshots: manager style
 * must be exactly containerd >= 2.2's EROFS snapshotter (plugins/snapshots/erofs),
 * legacy style plain host mounts for containerd < 2.2.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { Backend } from '../../src/backend/backend';
import { ctx, withBackend } from './helpers';

async function chain(backend: Backend, n: number): Promise<string> {
  let parent = '';
  for (let i = 0; i < n; i++) {
    await backend.prepare(ctx, `l${i}-active`, parent, {});
    await backend.commit(ctx, `l${i}`, `l${i}-active`, {}, '');
    parent = `l${i}`;
  }
  return parent;
}

const m = (type: string, source: string, options: string[]) => ({ type, source, target: '', options });

test('manager style: containerd EROFS snapshotter shapes for directory mode', async () => {
  await withBackend({ mountStyle: 'manager' }, async ({ backend, root }) => {
    const s = (id: number, f: string) => path.join(root, 'snapshots', String(id), f);
    assert.deepEqual(await backend.prepare(ctx, 'lone', '', {}), [m('bind', s(1, 'fs'), ['rw', 'rbind'])]);
    assert.deepEqual(await backend.view(ctx, 'lone-view', '', {}), [m('bind', s(2, 'fs'), ['ro', 'rbind'])]);
    await backend.remove(ctx, 'lone');
    await backend.remove(ctx, 'lone-view');
    await chain(backend, 3); // ids 3, 4, 5 (l0 bottom .. l2 top)
    assert.deepEqual(await backend.view(ctx, 'v1', 'l0', {}), [m('erofs', s(3, 'layer.erofs'), ['ro', 'loop'])]);
    assert.deepEqual(await backend.prepare(ctx, 'a1', 'l0', {}), [
      m('erofs', s(3, 'layer.erofs'), ['ro', 'loop']),
      m('format/mkdir/overlay', 'overlay', [`workdir=${s(7, 'work')}`, `upperdir=${s(7, 'fs')}`, 'lowerdir={{ mount 0 }}']),
    ]);
    assert.deepEqual(await backend.prepare(ctx, 'a3', 'l2', {}), [
      m('erofs', s(5, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(4, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(3, 'layer.erofs'), ['ro', 'loop']),
      m('format/mkdir/overlay', 'overlay', [`workdir=${s(8, 'work')}`, `upperdir=${s(8, 'fs')}`, 'lowerdir={{ overlay 0 2 }}']),
    ]);
    assert.deepEqual(await backend.view(ctx, 'v3', 'l2', {}), [
      m('erofs', s(5, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(4, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(3, 'layer.erofs'), ['ro', 'loop']),
      m('format/mkdir/overlay', 'overlay', ['lowerdir={{ overlay 0 2 }}']),
    ]);

    // A non-empty fsmeta.erofs in a parent replaces that parent and every layer below it.
    fs.writeFileSync(s(4, 'fsmeta.erofs'), 'merged');
    fs.writeFileSync(s(5, 'fsmeta.erofs'), ''); // empty = a placeholder being generated: ignored
    assert.deepEqual(await backend.prepare(ctx, 'a-fsmeta', 'l2', {}), [
      m('erofs', s(5, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(4, 'fsmeta.erofs'), ['ro', 'loop', `device=${s(3, 'layer.erofs')}`, `device=${s(4, 'layer.erofs')}`]),
      m('format/mkdir/overlay', 'overlay', [`workdir=${s(10, 'work')}`, `upperdir=${s(10, 'fs')}`, 'lowerdir={{ overlay 0 1 }}']),
    ]);
    fs.writeFileSync(s(5, 'fsmeta.erofs'), 'merged');
    // A view whose lowers collapse to the one fsmeta mount: overlayfs needs two lowers, so a read-only bind.
    assert.deepEqual(await backend.view(ctx, 'v-fsmeta', 'l2', {}), [
      m('erofs', s(5, 'fsmeta.erofs'), ['ro', 'loop', `device=${s(3, 'layer.erofs')}`, `device=${s(4, 'layer.erofs')}`, `device=${s(5, 'layer.erofs')}`]),
      m('format/bind', '{{ mount 0 }}', ['ro', 'rbind']),
    ]);
    assert.deepEqual(await backend.mounts(ctx, 'v-fsmeta'), await backend.mounts(ctx, 'v-fsmeta'));
  });
});

test('manager style: a fsmeta generated after a container started is used within a second; answers never outlive their snapshot', async () => {
  await withBackend({ mountStyle: 'manager' }, async ({ backend, root }) => {
    const s = (id: number, f: string) => path.join(root, 'snapshots', String(id), f);
    await chain(backend, 2); // ids 1, 2
    await backend.prepare(ctx, 'ctr', 'l1', {});
    const perLayer = await backend.mounts(ctx, 'ctr');
    assert.deepEqual(perLayer.map((x) => x.source), [s(2, 'layer.erofs'), s(1, 'layer.erofs'), 'overlay']);
    assert.equal(await backend.mounts(ctx, 'ctr'), await backend.mounts(ctx, 'ctr'), 'a warm Mounts reuses the built answer');
    fs.writeFileSync(s(2, 'fsmeta.erofs'), 'merged'); // containerd 2.2's differ finished its fsmeta
    await new Promise((r) => setTimeout(r, 1100));
    const merged = await backend.mounts(ctx, 'ctr');
    assert.deepEqual(merged[0], m('erofs', s(2, 'fsmeta.erofs'), ['ro', 'loop', `device=${s(1, 'layer.erofs')}`, `device=${s(2, 'layer.erofs')}`]));
    // The same key on another parent after Remove: a new snapshot, a new answer.
    await backend.remove(ctx, 'ctr');
    await backend.prepare(ctx, 'ctr', 'l0', {});
    assert.deepEqual((await backend.mounts(ctx, 'ctr')).map((x) => x.source), [s(1, 'layer.erofs'), 'overlay']);
  });
});

test('manager style, block mode (default_size): mkfs/ext4 writable layer first, upper and work inside it', async () => {
  const size = 64 << 20;
  await withBackend({ mountStyle: 'manager', defaultSize: size }, async ({ backend, root }) => {
    const s = (id: number, f: string) => path.join(root, 'snapshots', String(id), f);
    const mkfs = (id: number, flag: string) => m('mkfs/ext4', s(id, 'rwlayer.img'), ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${size}`, flag, 'loop']);
    assert.deepEqual(await backend.prepare(ctx, 'lone', '', {}), [
      mkfs(1, 'rw'),
      m('format/mkdir/bind', '{{ mount 0 }}/upper', ['X-containerd.mkdir.path={{ mount 0 }}/upper:0755', 'rw', 'rbind']),
    ]);
    assert.equal(fs.existsSync(s(1, 'work')), false, 'block mode has no work/ directory');
    await backend.commit(ctx, 'l0', 'lone', {}, '');
    await backend.prepare(ctx, 'l1-active', 'l0', {});
    await backend.commit(ctx, 'l1', 'l1-active', {}, '');
    assert.deepEqual(await backend.prepare(ctx, 'c', 'l1', {}), [
      mkfs(3, 'rw'),
      m('erofs', s(2, 'layer.erofs'), ['ro', 'loop']),
      m('erofs', s(1, 'layer.erofs'), ['ro', 'loop']),
      m('format/mkdir/overlay', 'overlay', [
        'X-containerd.mkdir.path={{ mount 0 }}/upper:0755',
        'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
        'workdir={{ mount 0 }}/work',
        'upperdir={{ mount 0 }}/upper',
        'lowerdir={{ overlay 1 2 }}',
      ]),
    ]);
  });
});

test('legacy style: bind for parentless, plain overlay with absolute lowerdir (top first), read-only bind for a one-layer view', async () => {
  await withBackend({ mountStyle: 'legacy' }, async ({ backend, root }) => {
    const s = (id: number, f: string) => path.join(root, 'snapshots', String(id), f);
    await chain(backend, 2); // ids 1, 2
    assert.deepEqual(await backend.prepare(ctx, 'lone', '', {}), [m('bind', s(3, 'fs'), ['rw', 'rbind'])]);
    assert.deepEqual(await backend.view(ctx, 'v1', 'l0', {}), [m('bind', s(1, 'fs'), ['ro', 'rbind'])]);
    assert.deepEqual(await backend.view(ctx, 'v2', 'l1', {}), [m('overlay', 'overlay', [`lowerdir=${s(2, 'fs')}:${s(1, 'fs')}`])]);
    assert.deepEqual(await backend.prepare(ctx, 'a2', 'l1', {}), [
      m('overlay', 'overlay', [`workdir=${s(6, 'work')}`, `upperdir=${s(6, 'fs')}`, `lowerdir=${s(2, 'fs')}:${s(1, 'fs')}`]),
    ]);
  });
});
