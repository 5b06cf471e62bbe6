/**
 * The embedded backend's snapshot semantics (containerd's snapshot storage):
 * error kinds, Commit/Remove/Update rules, List filters, Usage, Cleanup.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type { Backend, SnapshotInfo } from '../../src/backend/backend';
import { unmountLegacyLayers } from '../../src/backend/embedded';
import { isKind, type ErrorKind } from '../../src/errdefs';
import { ctx, inconsistencies, isErofsImage, withBackend } from './helpers';

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(isKind(err, kind), `expected ${kind}, got ${err.name}: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

async function names(backend: Backend, ...filters: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const info of backend.list(ctx, filters)) out.push(info.name);
  return out.sort();
}

async function committed(backend: Backend, name: string, parent = ''): Promise<void> {
  await backend.prepare(ctx, `${name}-active`, parent, {});
  await backend.commit(ctx, name, `${name}-active`, {}, '');
}

test('a key exists once across kinds', async () => {
  await withBackend({}, async ({ backend }) => {
    await committed(backend, 'c');
    await rejectsWith(backend.prepare(ctx, 'c', '', {}), 'AlreadyExists', /"c" already exists/);
    await backend.prepare(ctx, 'a', 'c', {});
    await rejectsWith(backend.view(ctx, 'a', 'c', {}), 'AlreadyExists');
    await rejectsWith(backend.prepare(ctx, 'a', '', {}), 'AlreadyExists');
  });
});

test('a parent must exist and be committed', async () => {
  await withBackend({}, async ({ backend }) => {
    await rejectsWith(backend.prepare(ctx, 'x', 'missing', {}), 'NotFound', /parent snapshot "missing"/);
    await backend.prepare(ctx, 'active', '', {});
    await rejectsWith(backend.prepare(ctx, 'x', 'active', {}), 'InvalidArgument', /not a committed snapshot/);
    await backend.view(ctx, 'view', '', {});
    await rejectsWith(backend.view(ctx, 'y', 'view', {}), 'InvalidArgument');
  });
});

test('Commit: missing key is NotFound, a view is FailedPrecondition, a taken name AlreadyExists; labels are replaced', async () => {
  await withBackend({}, async ({ backend }) => {
    await rejectsWith(backend.commit(ctx, 'n', 'nope', {}, ''), 'NotFound', /"nope"/);
    await backend.view(ctx, 'v', '', {});
    await rejectsWith(backend.commit(ctx, 'n', 'v', {}, ''), 'FailedPrecondition', /view/);
    await committed(backend, 'taken');
    await backend.prepare(ctx, 'a', '', { old: '1' });
    await rejectsWith(backend.commit(ctx, 'taken', 'a', {}, ''), 'AlreadyExists');
    await backend.commit(ctx, 'n', 'a', { fresh: 'yes', empty: '' }, '');
    const info = await backend.stat(ctx, 'n');
    assert.equal(info.kind, 'committed');
    assert.deepEqual(info.labels, { fresh: 'yes' });
    await rejectsWith(backend.stat(ctx, 'a'), 'NotFound');
  });
});

test('Commit with a parent (containerd >= 2.2 rebase) sets the parent of a parentless active snapshot', async () => {
  await withBackend({}, async ({ backend }) => {
    await committed(backend, 'base');
    await backend.prepare(ctx, 'layer', '', {});
    await backend.commit(ctx, 'top', 'layer', {}, 'base');
    assert.equal((await backend.stat(ctx, 'top')).parent, 'base');
    await rejectsWith(backend.remove(ctx, 'base'), 'FailedPrecondition');
  });
});

test('Remove: with children FailedPrecondition (message says remove), missing NotFound, directory deleted', async () => {
  await withBackend({}, async ({ backend, root }) => {
    await committed(backend, 'p');
    await backend.prepare(ctx, 'child', 'p', {});
    await rejectsWith(backend.remove(ctx, 'p'), 'FailedPrecondition', /cannot remove snapshot "p": it has 1 child/);
    await rejectsWith(backend.remove(ctx, 'nope'), 'NotFound');
    await backend.remove(ctx, 'child');
    await backend.remove(ctx, 'p');
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots')), []);
  });
});

test('Update: field paths none / labels / labels.<k>; anything else InvalidArgument; immutable fields kept', async () => {
  await withBackend({}, async ({ backend }) => {
    await committed(backend, 'p');
    await backend.prepare(ctx, 'a', 'p', { keep: 'k', drop: 'd' });
    const before = await backend.stat(ctx, 'a');
    await new Promise((r) => setTimeout(r, 5));
    const forged: SnapshotInfo = { ...before, parent: 'other', kind: 'committed', createdAt: new Date(0), labels: { x: '1' } };
    const replaced = await backend.update(ctx, forged, []);
    assert.deepEqual(replaced.labels, { x: '1' });
    assert.equal(replaced.parent, 'p');
    assert.equal(replaced.kind, 'active');
    assert.equal(replaced.createdAt.getTime(), before.createdAt.getTime());
    assert.ok(replaced.updatedAt.getTime() > before.updatedAt.getTime());
    const one = await backend.update(ctx, { ...replaced, labels: { y: '2', x: 'ignored' } }, ['labels.y', 'labels.x']);
    assert.deepEqual(one.labels, { y: '2', x: 'ignored' });
    const removedOne = await backend.update(ctx, { ...one, labels: {} }, ['labels.x']);
    assert.deepEqual(removedOne.labels, { y: '2' });
    const all = await backend.update(ctx, { ...one, labels: { z: '3' } }, ['labels']);
    assert.deepEqual(all.labels, { z: '3' });
    for (const bad of ['parent', 'name', 'kind', 'created_at', 'labels.']) {
      await rejectsWith(backend.update(ctx, all, [bad]), 'InvalidArgument', /field path/);
    }
    await rejectsWith(backend.update(ctx, { ...all, name: 'missing' }, []), 'NotFound');
    assert.deepEqual((await backend.stat(ctx, 'a')).labels, { z: '3' });
  });
});

test('List: containerd filter syntax (AND with ",", OR across strings, presence, quoting, regex)', async () => {
  await withBackend({}, async ({ backend }) => {
    await backend.prepare(ctx, 'p-tmp', '', {});
    await backend.commit(ctx, 'p', 'p-tmp', { 'containerd.io/gc.root': 'r', 'a.b': 'dotted' }, '');
    await backend.prepare(ctx, 'a', 'p', { l: '2' });
    await backend.view(ctx, 'v', 'p', { l: '3', 'with space': 'x y' });
    assert.deepEqual(await names(backend), ['a', 'p', 'v']);
    assert.deepEqual(await names(backend, ''), ['a', 'p', 'v']);
    assert.deepEqual(await names(backend, 'kind==active'), ['a']);
    assert.deepEqual(await names(backend, 'kind==view', 'name==p'), ['p', 'v']);
    assert.deepEqual(await names(backend, 'parent==p,labels.l==3'), ['v']);
    assert.deepEqual(await names(backend, 'parent!=""'), ['a', 'v']);
    assert.deepEqual(await names(backend, 'parent'), ['a', 'v']);
    assert.deepEqual(await names(backend, 'labels.l'), ['a', 'v']);
    assert.deepEqual(await names(backend, 'labels."containerd.io/gc.root"==r'), ['p']);
    assert.deepEqual(await names(backend, 'labels.a.b==dotted'), ['p']);
    assert.deepEqual(await names(backend, 'labels."with space"=="x y"'), ['v']);
    assert.deepEqual(await names(backend, 'name~=^[av]$'), ['a', 'v']);
    assert.deepEqual(await names(backend, 'name~=/^p/'), ['p']);
    assert.deepEqual(await names(backend, 'labels.l!=2'), ['p', 'v']);
    for (const bad of ['kind==', '==x', 'kind=x', 'name=="unterminated', 'name~=(', 'a,,b', 'name==a b']) {
      await rejectsWith(names(backend, bad), 'InvalidArgument', /filters/);
    }
  });
});

test('Usage: disk usage of fs/ for active snapshots, the stored blob size for committed ones', async () => {
  await withBackend({ mountStyle: 'manager' }, async ({ backend }) => {
    const [m] = await backend.prepare(ctx, 'a', '', {});
    fs.writeFileSync(path.join(m.source, 'data'), Buffer.alloc(256 * 1024, 1));
    const active = await backend.usage(ctx, 'a');
    assert.ok(active.size >= 256 * 1024, `active usage ${active.size}`);
    assert.equal(active.inodes, 2);
    await backend.commit(ctx, 'c', 'a', {}, '');
    const c = await backend.usage(ctx, 'c');
    assert.equal(c.inodes, 1);
    assert.ok(c.size >= 256 * 1024);
    await rejectsWith(backend.usage(ctx, 'a'), 'NotFound');
  });
});

test('Mounts of a committed snapshot is FailedPrecondition; empty keys are InvalidArgument', async () => {
  await withBackend({}, async ({ backend }) => {
    await committed(backend, 'c');
    await rejectsWith(backend.mounts(ctx, 'c'), 'FailedPrecondition');
    await rejectsWith(backend.mounts(ctx, 'missing'), 'NotFound');
    await rejectsWith(backend.prepare(ctx, '', '', {}), 'InvalidArgument');
    await rejectsWith(backend.commit(ctx, '', 'c', {}, ''), 'InvalidArgument');
    await rejectsWith(backend.stat(ctx, ''), 'InvalidArgument');
  });
});

test('Commit converts fs/ with mkfs.erofs and empties fs/; a layer.erofs written by the EROFS differ is kept as is', async () => {
  await withBackend({ mountStyle: 'manager' }, async ({ backend, root }) => {
    const [m] = await backend.prepare(ctx, 'walking', '', {});
    fs.writeFileSync(path.join(m.source, 'hello'), 'world\n');
    await backend.commit(ctx, 'converted', 'walking', {}, '');
    const dir = path.dirname(m.source);
    assert.ok(isErofsImage(path.join(dir, 'layer.erofs')));
    assert.deepEqual(fs.readdirSync(m.source), []);

    // The differ finds the directory by the .erofslayer marker next to the bind source and writes layer.erofs.
    const [u] = await backend.prepare(ctx, 'default/1/extract-1 sha256:abc', '', {});
    const unpackDir = path.dirname(u.source);
    assert.ok(fs.existsSync(path.join(unpackDir, '.erofslayer')));
    const blob = fs.readFileSync(path.join(dir, 'layer.erofs'));
    fs.writeFileSync(path.join(unpackDir, 'layer.erofs'), blob);
    fs.writeFileSync(path.join(u.source, 'not-converted'), 'the differ wrote layer.erofs, fs/ is ignored');
    await backend.commit(ctx, 'sha256:abc', 'default/1/extract-1 sha256:abc', {}, '');
    assert.deepEqual(fs.readFileSync(path.join(unpackDir, 'layer.erofs')), blob);
    assert.deepEqual(inconsistencies(root, { noOrphans: true, legacyMounted: false }), []);
  });
});

test('Commit without mkfs.erofs fails with FailedPrecondition naming erofs-utils, and the snapshot stays active', async () => {
  await withBackend({ mountStyle: 'manager' }, async ({ backend }) => {
    await backend.prepare(ctx, 'a', '', {});
    const emptyBin = fs.mkdtempSync(path.join(os.tmpdir(), 'nobin-'));
    const savedPath = process.env.PATH;
    process.env.PATH = emptyBin;
    try {
      await rejectsWith(backend.commit(ctx, 'c', 'a', {}, ''), 'FailedPrecondition', /mkfs\.erofs not found.*erofs-utils/);
    } finally {
      process.env.PATH = savedPath;
      fs.rmSync(emptyBin, { recursive: true, force: true });
    }
    assert.equal((await backend.stat(ctx, 'a')).kind, 'active');
    await backend.commit(ctx, 'c', 'a', {}, '');
  });
});

test('Cleanup removes directories no snapshot owns and keeps every owned one', async () => {
  await withBackend({}, async ({ backend, root }) => {
    await committed(backend, 'c');
    await backend.prepare(ctx, 'a', 'c', {});
    const snapshots = path.join(root, 'snapshots');
    fs.mkdirSync(path.join(snapshots, '999', 'fs'), { recursive: true });
    fs.mkdirSync(path.join(snapshots, '.tmp-erofs-vmdk-new-leftover'));
    assert.equal(inconsistencies(root, { noOrphans: true, legacyMounted: true }).length, 2);
    await backend.cleanup({});
    assert.deepEqual(inconsistencies(root, { noOrphans: true, legacyMounted: true }), []);
    assert.equal(fs.readdirSync(snapshots).length, 2);
  });
});

test('legacy style: committed layers are mounted read-only on fs/, and mounted again after a restart', async () => {
  await withBackend({ mountStyle: 'legacy' }, async (t) => {
    const [m] = await t.backend.prepare(ctx, 'a', '', {});
    fs.writeFileSync(path.join(m.source, 'file'), 'content\n');
    await t.backend.commit(ctx, 'c', 'a', {}, '');
    const mounts = await t.backend.prepare(ctx, 'b', 'c', {});
    const lower = path.join(t.root, 'snapshots', '1', 'fs');
    assert.deepEqual(mounts, [
      {
        type: 'overlay',
        source: 'overlay',
        target: '',
        options: [`workdir=${path.join(t.root, 'snapshots', '2', 'work')}`, `upperdir=${path.join(t.root, 'snapshots', '2', 'fs')}`, `lowerdir=${lower}`],
      },
    ]);
    assert.equal(fs.readFileSync(path.join(lower, 'file'), 'utf8'), 'content\n');
    assert.throws(() => fs.writeFileSync(path.join(lower, 'x'), ''), /EROFS|read-only/);
    // A reboot loses the mounts: restart must bring them back.
    await t.backend.close();
    unmountLegacyLayers(t.root);
    assert.throws(() => fs.readFileSync(path.join(lower, 'file')));
    await t.reopen();
    assert.equal(fs.readFileSync(path.join(lower, 'file'), 'utf8'), 'content\n');
    assert.deepEqual(inconsistencies(t.root, { noOrphans: true, legacyMounted: true }), []);
    await t.backend.remove(ctx, 'b');
    await t.backend.remove(ctx, 'c');
    assert.deepEqual(fs.readdirSync(path.join(t.root, 'snapshots')), []);
  });
});

test('legacy style refuses block mode (default_size)', async () => {
  await assert.rejects(withBackend({ mountStyle: 'legacy', defaultSize: 1 << 20 }, async () => undefined), /mount_style = "manager"/);
});

test('start-up finishes or undoes what a crash interrupted (each state of the protocol, made by hand)', async () => {
  await withBackend({ mountStyle: 'legacy' }, async (t) => {
    const [a] = await t.backend.prepare(ctx, 'active', '', {});
    fs.writeFileSync(path.join(a.source, 'file'), 'v1\n');
    await t.backend.prepare(ctx, 'c-active', '', {});
    await t.backend.commit(ctx, 'committed', 'c-active', {}, '');
    await t.backend.close();
    unmountLegacyLayers(t.root);
    const snapshots = path.join(t.root, 'snapshots');
    const activeDir = path.dirname(a.source);
    const committedDir = path.join(snapshots, '2');
    // Crash during Prepare: a temp dir, and a placed dir whose insert was rolled back.
    fs.mkdirSync(path.join(snapshots, '.tmp-erofs-vmdk-new-abc', 'fs'), { recursive: true });
    fs.mkdirSync(path.join(snapshots, '77', 'fs'), { recursive: true });
    // Crash during Commit of "active", after our conversion was renamed in but before the row changed.
    fs.copyFileSync(path.join(committedDir, 'layer.erofs'), path.join(activeDir, 'layer.erofs'));
    fs.writeFileSync(path.join(activeDir, '.erofs-vmdk-converted'), '');
    fs.writeFileSync(path.join(activeDir, '.tmp-erofs-vmdk-layer.erofs.123'), 'partial');
    // Crash right after the Commit of "committed": fs/ not emptied yet, marker still there.
    fs.writeFileSync(path.join(committedDir, 'fs', 'stale'), 'converted upper');
    fs.writeFileSync(path.join(committedDir, '.erofs-vmdk-converted'), '');

    await t.reopen();
    assert.deepEqual(fs.readdirSync(snapshots).sort(), ['1', '2']);
    assert.deepEqual(fs.readdirSync(activeDir).sort(), ['.erofslayer', 'fs', 'work']);
    assert.equal(fs.existsSync(path.join(committedDir, '.erofs-vmdk-converted')), false);
    assert.deepEqual(inconsistencies(t.root, { noOrphans: true, legacyMounted: true }), []);
    // The committed layer is mounted again (and its stale upper content gone below the mount).
    assert.equal(fs.existsSync(path.join(committedDir, 'fs', 'stale')), false);
    // The interrupted Commit is redone from fs/, not from the leftover blob.
    fs.writeFileSync(path.join(a.source, 'file'), 'v2\n');
    await t.backend.commit(ctx, 'redone', 'active', {}, '');
    const [v] = await t.backend.view(ctx, 'check', 'redone', {});
    assert.equal(fs.readFileSync(path.join(v.source, 'file'), 'utf8'), 'v2\n');
  });
});
