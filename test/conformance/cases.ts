/**
 * containerd's snapshotter conformance cases (core/snapshots/testsuite:
 * testsuite.go, issues.go, helpers.go), re-implemented case by case with the
 * same snapshots, the same file operations and the same checks, against real
 * host mounts of the mount lists the snapshotter returns.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import type { SnapshotInfo } from '../../src/backend/backend';
import type { Mount } from '../../src/mount';
import { mountAll } from './activator';
import {
  apply,
  chown,
  createDir,
  createFile,
  checkDirectoryEqual,
  checkDirectoryEqualWithApplier,
  link,
  removeAll,
  rename,
  type Applier,
} from './fstest';
import { errorKind, type Snapshotter } from './snapshotter-client';

export type Case = (sn: Snapshotter, work: string) => Promise<void>;

const opt = () => ({ 'containerd.io/gc.root': new Date().toISOString().replace(/\.\d+Z$/, 'Z') });

/** Mounts `mounts` on target, runs fn, always unmounts. */
async function withMounts<T>(mounts: Mount[], target: string, work: string, fn: () => T | Promise<T>): Promise<T> {
  const activation = await mountAll(mounts, target, work);
  try {
    return await fn();
  } finally {
    activation.release();
  }
}

async function rejects(p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail(`${what} should have failed`);
}

// ---- helpers.go ---------------------------------------------------------------------

async function applyToMounts(m: Mount[], work: string, a: Applier): Promise<void> {
  const td = fs.mkdtempSync(path.join(work, 'prepare'));
  try {
    await withMounts(m, td, work, () => a(td));
  } finally {
    fs.rmSync(td, { recursive: true, force: true });
  }
}

async function createSnapshot(sn: Snapshotter, parent: string, work: string, a: Applier): Promise<string> {
  const n = `snap-${randomInt(1 << 30)}`;
  const prepare = `${n}-prepare`;
  const m = await sn.prepare(prepare, parent, opt());
  await applyToMounts(m, work, a);
  await sn.commit(n, prepare, opt());
  return n;
}

async function checkSnapshot(sn: Snapshotter, work: string, name: string, check: string): Promise<void> {
  const td = fs.mkdtempSync(path.join(work, 'check'));
  const view = `${name}-view`;
  try {
    const m = await sn.view(view, name, opt());
    try {
      await withMounts(m, td, work, () => checkDirectoryEqual(check, td));
    } finally {
      await sn.remove(view);
    }
  } finally {
    fs.rmSync(td, { recursive: true, force: true });
  }
}

/** A chain of snapshots from the appliers, each checked in a view against one flat directory. */
async function checkSnapshots(sn: Snapshotter, work: string, ...as: Applier[]): Promise<void> {
  const flat = fs.mkdtempSync(path.join(work, 'flat'));
  try {
    let parent = '';
    for (const [i, a] of as.entries()) {
      const s = await createSnapshot(sn, parent, work, a);
      a(flat);
      try {
        await checkSnapshot(sn, work, s, flat);
      } catch (err) {
        throw new Error(`snapshot check failed on snapshot ${i + 1}: ${(err as Error).message}`);
      }
      parent = s;
    }
  } finally {
    fs.rmSync(flat, { recursive: true, force: true });
  }
}

function checkInfo(a: SnapshotInfo, b: SnapshotInfo): void {
  assert.equal(a.kind, b.kind);
  assert.equal(a.name, b.name);
  assert.equal(a.parent, b.parent);
  assert.deepEqual(a.labels, b.labels);
  assert.equal(a.createdAt.getTime(), b.createdAt.getTime());
  assert.equal(a.updatedAt.getTime(), b.updatedAt.getTime());
}

async function prepareMount(sn: Snapshotter, work: string, name: string, parent: string): Promise<{ dir: string; release: () => void }> {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  const mounts = await sn.prepare(dir, parent, opt());
  assert.ok(mounts.length >= 1, 'expected mounts to have entries');
  const activation = await mountAll(mounts, dir, work);
  return { dir, release: activation.release };
}

// ---- testsuite.go -------------------------------------------------------------------

export const basic: Case = async (sn, work) => {
  const initial = apply(createFile('/foo', 'foo\n', 0o777), createDir('/a', 0o755), createDir('/a/b', 0o755), createDir('/a/b/c', 0o755));
  const diff = apply(createFile('/bar', 'bar\n', 0o777), createFile('/foo', 'bar\n', 0o777), removeAll('/a/b'));

  const preparing = path.join(work, 'preparing');
  fs.mkdirSync(preparing);
  let mounts = await sn.prepare(preparing, '', opt());
  assert.ok(mounts.length >= 1);
  await withMounts(mounts, preparing, work, () => initial(preparing));

  const committed = path.join(work, 'committed');
  await sn.commit(committed, preparing, opt());
  const si = await sn.stat(committed);
  assert.equal(si.parent, '');
  assert.equal(si.kind, 'committed');
  await rejects(sn.stat(preparing), `${preparing} should no longer be available after Commit`);

  const next = path.join(work, 'nextlayer');
  fs.mkdirSync(next);
  mounts = await sn.prepare(next, committed, opt());
  await withMounts(mounts, next, work, () => {
    checkDirectoryEqualWithApplier(next, initial, work);
    diff(next);
  });
  const ni = await sn.stat(next);
  assert.equal(ni.parent, committed);
  assert.equal(ni.kind, 'active');

  const nextCommitted = path.join(work, 'committed-next');
  await sn.commit(nextCommitted, next, opt());
  const si2 = await sn.stat(nextCommitted);
  assert.equal(si2.parent, committed);
  assert.equal(si2.kind, 'committed');
  await rejects(sn.stat(next), `${next} should no longer be available after Commit`);

  const walked = new Map((await sn.walk()).map((i) => [i.name, i]));
  for (const expected of [si, si2]) {
    const got = walked.get(expected.name);
    assert.ok(got, `missing stat for ${expected.name}`);
    checkInfo(expected, got);
  }

  const nextnext = path.join(work, 'nextnextlayer');
  fs.mkdirSync(nextnext);
  mounts = await sn.view(nextnext, nextCommitted, opt());
  await withMounts(mounts, nextnext, work, () => checkDirectoryEqualWithApplier(nextnext, apply(initial, diff), work));
  await sn.remove(nextnext);

  const err = await rejects(sn.remove(committed), 'removing a snapshot with a child');
  assert.match(String((err as Error).message), /remove/);
  await sn.remove(nextCommitted);
  await sn.remove(committed);
};

export const statActive: Case = async (sn, work) => {
  const { dir, release } = await prepareMount(sn, work, 'preparing', '');
  try {
    fs.writeFileSync(path.join(dir, 'foo'), 'foo\n', { mode: 0o777 });
    const si = await sn.stat(dir);
    assert.equal(si.name, dir);
    assert.equal(si.kind, 'active');
    assert.equal(si.parent, '');
  } finally {
    release();
  }
};

export const statCommitted: Case = async (sn, work) => {
  const { dir, release } = await prepareMount(sn, work, 'preparing', '');
  try {
    fs.writeFileSync(path.join(dir, 'foo'), 'foo\n', { mode: 0o777 });
  } finally {
    release();
  }
  const committed = path.join(work, 'committed');
  await sn.commit(committed, dir, opt());
  const si = await sn.stat(committed);
  assert.equal(si.name, committed);
  assert.equal(si.kind, 'committed');
  assert.equal(si.parent, '');
};

export const transitivity: Case = async (sn, work) => {
  const a = await prepareMount(sn, work, 'preparing', '');
  try {
    fs.writeFileSync(path.join(a.dir, 'foo'), 'foo\n', { mode: 0o777 });
  } finally {
    a.release();
  }
  const snapA = path.join(work, 'snapA');
  await sn.commit(snapA, a.dir, opt());
  const b = await prepareMount(sn, work, 'next', snapA);
  try {
    fs.writeFileSync(path.join(b.dir, 'foo'), 'foo bar\n', { mode: 0o777 });
  } finally {
    b.release();
  }
  const snapB = path.join(work, 'snapB');
  await sn.commit(snapB, b.dir, opt());
  const siA = await sn.stat(snapA);
  const siB = await sn.stat(snapB);
  const siParentB = await sn.stat(siB.parent);
  assert.equal(siA.parent, '');
  assert.equal(siB.parent, snapA);
  assert.equal(siParentB.parent, '');
};

export const prepareViewFailing: Case = async (sn, work) => {
  const a = await prepareMount(sn, work, 'preparing', '');
  a.release();
  const snapA = path.join(work, 'snapA');
  await sn.commit(snapA, a.dir, opt());

  const newLayer = path.join(work, 'newlayer');
  await sn.prepare(newLayer, snapA, opt());
  await rejects(sn.view(newLayer, snapA, opt()), 'View with the key of an active snapshot');

  const prepLayer = path.join(work, 'prepLayer');
  await sn.prepare(prepLayer, snapA, opt());
  await rejects(sn.prepare(prepLayer, snapA, opt()), 'a second Prepare with the same key');

  const viewLayer = path.join(work, 'viewLayer');
  await sn.view(viewLayer, snapA, opt());
  await rejects(sn.view(viewLayer, snapA, opt()), 'a second View with the same key');
};

async function baseTestSnapshots(sn: Snapshotter): Promise<void> {
  await sn.prepare('c1-a', '', opt());
  await sn.commit('c1', 'c1-a', opt());
  await sn.prepare('c2-a', 'c1', opt());
  await sn.commit('c2', 'c2-a', opt());
  await sn.prepare('a1', 'c2', opt());
  await sn.prepare('a2', '', opt());
  await sn.view('v1', 'c2', opt());
  await sn.view('v2', '', opt());
}

export const update: Case = async (sn) => {
  const t1 = Date.now();
  await baseTestSnapshots(sn);
  const t2 = Date.now();
  const cases: { name: string; kind: SnapshotInfo['kind']; parent: string }[] = [
    { name: 'c1', kind: 'committed', parent: '' },
    { name: 'c2', kind: 'committed', parent: 'c1' },
    { name: 'a1', kind: 'active', parent: 'c2' },
    { name: 'a2', kind: 'active', parent: '' },
    { name: 'v1', kind: 'view', parent: 'c2' },
    { name: 'v2', kind: 'view', parent: '' },
  ];
  for (const tc of cases) {
    let st = await sn.stat(tc.name);
    assert.ok(st.createdAt.getTime() >= t1 && st.createdAt.getTime() <= t2, `(${tc.name}) created time out of range`);
    assert.equal(st.createdAt.getTime(), st.updatedAt.getTime(), `(${tc.name}) updated != created`);
    assert.equal(st.kind, tc.kind);
    assert.equal(st.parent, tc.parent);
    assert.equal(st.name, tc.name);

    const createdAt = st.createdAt.getTime();
    const rootTime = new Date().toISOString();
    let expected: Record<string, string> = { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': rootTime };
    st = { ...st, parent: 'doesnotexist', labels: expected };
    const u1 = Date.now();
    st = await sn.update(st);
    const u2 = Date.now();
    assert.equal(st.createdAt.getTime(), createdAt, `(${tc.name}) created time changed`);
    assert.ok(st.updatedAt.getTime() >= u1 && st.updatedAt.getTime() <= u2 + 1, `(${tc.name}) updated time out of range`);
    assert.equal(st.kind, tc.kind);
    assert.equal(st.parent, tc.parent, `(${tc.name}) parent must be immutable`);
    assert.equal(st.name, tc.name);
    assert.deepEqual(st.labels, expected);

    expected = { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': rootTime };
    st = await sn.update({ ...st, labels: { l1: 'updated', l4: 'v4' } }, 'labels.l1', 'labels.l2');
    assert.deepEqual(st.labels, expected);

    expected = { l4: 'v4', 'containerd.io/gc.root': rootTime };
    st = await sn.update({ ...st, labels: expected }, 'labels');
    assert.deepEqual(st.labels, expected);

    const err = await rejects(sn.update({ ...st, parent: 'doesnotexist' }, 'parent'), 'update of an immutable field path');
    assert.equal(errorKind(err), 'InvalidArgument', `(${tc.name}) immutable field path: ${String(err)}`);
  }
};

export const remove: Case = async (sn) => {
  await sn.prepare('committed-a', '', opt());
  await sn.commit('committed-1', 'committed-a', opt());
  await sn.prepare('reuse-1', 'committed-1', opt());
  await sn.remove('reuse-1');
  await sn.view('reuse-1', 'committed-1', opt());
  await sn.remove('reuse-1');
  await sn.prepare('reuse-1', '', opt());
  await sn.remove('committed-1');
  await sn.commit('committed-1', 'reuse-1', opt());
};

export const viewReadonly: Case = async (sn, work) => {
  const preparing = path.join(work, 'preparing');
  await sn.prepare(preparing, '', opt());
  const committed = path.join(work, 'committed');
  await sn.commit(committed, preparing, opt());
  const view = path.join(work, 'view');
  const m = await sn.view(view, committed, opt());
  const mountPoint = path.join(work, 'view-mount');
  fs.mkdirSync(mountPoint);
  let writeError: unknown;
  await withMounts(m, mountPoint, work, () => {
    try {
      fs.writeFileSync(path.join(mountPoint, 'testfile'), 'testcontent', { mode: 0o777 });
    } catch (err) {
      writeError = err;
    }
  });
  assert.ok(writeError, 'write to a view should fail (EROFS)');
  await sn.remove(view);
  await sn.remove(committed);
};

export const closeTwice: Case = async (sn) => {
  const n = `closeTwice-${randomInt(1 << 30)}`;
  const prepare = `${n}-prepare`;
  await sn.prepare(prepare, '', opt());
  await sn.commit(n, prepare, opt());
  await sn.remove(n);
  await sn.close();
  await sn.close();
};

export const rootPermission: Case = async (sn, work) => {
  const { dir, release } = await prepareMount(sn, work, 'preparing', '');
  try {
    const mode = fs.statSync(dir).mode & 0o777;
    assert.equal(mode.toString(8), '755');
  } finally {
    release();
  }
};

export const layers128Mount: Case = async (sn, work) => {
  const appliers: Applier[] = [
    apply(
      createFile('/bottom', 'way at the bottom\n', 0o777),
      createFile('/overwriteme', 'FIRST!\n', 0o777),
      createDir('/addhere', 0o755),
      createDir('/onlyme', 0o755),
      createFile('/onlyme/bottom', 'bye!\n', 0o777),
    ),
  ];
  for (let i = 1; i <= 127; i++) {
    appliers.push(
      apply(
        createFile('/overwriteme', `${i} WAS HERE!\n`, 0o777),
        createFile(`/addhere/file-${i}`, 'same\n', 0o755),
        removeAll('/onlyme'),
        createDir('/onlyme', 0o755),
        createFile(`/onlyme/file-${i}`, 'only me!\n', 0o777),
      ),
    );
  }
  const flat = path.join(work, 'flat');
  fs.mkdirSync(flat);
  let parent = '';
  for (const [i, applier] of appliers.entries()) {
    const preparing = path.join(work, `prepare-layer-${i}`);
    fs.mkdirSync(preparing);
    const mounts = await sn.prepare(preparing, parent, opt());
    await withMounts(mounts, preparing, work, () => {
      try {
        checkDirectoryEqual(flat, preparing);
      } catch (err) {
        throw new Error(`[layer ${i}] preparing doesn't equal to flat before apply: ${(err as Error).message}`);
      }
      applier(flat);
      applier(preparing);
      try {
        checkDirectoryEqual(flat, preparing);
      } catch (err) {
        throw new Error(`[layer ${i}] preparing doesn't equal to flat after apply: ${(err as Error).message}`);
      }
    });
    parent = path.join(work, `committed-${i}`);
    await sn.commit(parent, preparing, opt());
  }
  const view = path.join(work, 'fullview');
  fs.mkdirSync(view);
  const mounts = await sn.view(view, parent, opt());
  await withMounts(mounts, view, work, () => checkDirectoryEqual(flat, view));
};

export const walk: Case = async (sn) => {
  const root = { 'containerd.io/gc.root': 'check-walk' };
  await sn.prepare('a-np', '', root);
  await sn.prepare('p-tmp', '', root);
  await sn.commit('p', 'p-tmp', root);
  await sn.prepare('a', 'p', root);
  await sn.view('v', 'p', root);
  await sn.prepare('p-wl-tmp', '', root);
  await sn.commit('p-wl', 'p-wl-tmp', { l: '1', ...root });
  await sn.prepare('a-wl', 'p-wl', { l: '2', ...root });
  await sn.view('v-wl', 'p-wl', { l: '3', ...root });
  await sn.prepare('a-np-wl', '', { l: '2', ...root });

  const cases: { matches: string[]; filters: string[] }[] = [
    { matches: ['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl'], filters: ['labels."containerd.io/gc.root"==check-walk'] },
    { matches: ['a-np', 'a', 'a-wl', 'a-np-wl'], filters: ['kind==active,labels."containerd.io/gc.root"==check-walk'] },
    { matches: ['v', 'v-wl'], filters: ['kind==view,labels."containerd.io/gc.root"==check-walk'] },
    { matches: ['p', 'p-wl'], filters: ['kind==committed,labels."containerd.io/gc.root"==check-walk'] },
    { matches: ['p', 'a-np-wl'], filters: ['name==p', 'name==a-np-wl'] },
    { matches: ['a-wl'], filters: ['name==a-wl,labels.l'] },
    { matches: ['a', 'v'], filters: ['parent==p'] },
    { matches: ['a', 'v', 'a-wl', 'v-wl'], filters: ['parent!="",labels."containerd.io/gc.root"==check-walk'] },
    { matches: ['p-wl', 'a-wl', 'v-wl', 'a-np-wl'], filters: ['labels.l'] },
    { matches: ['a-wl', 'a-np-wl'], filters: ['labels.l==2'] },
  ];
  for (const [i, tc] of cases.entries()) {
    const actual = (await sn.walk(...tc.filters)).map((s) => s.name).sort();
    assert.deepEqual(actual, [...tc.matches].sort(), `[${i}] filters ${JSON.stringify(tc.filters)}`);
  }
};

// ---- issues.go ----------------------------------------------------------------------

export const layerFileUpdate: Case = async (sn, work) => {
  const l1 = apply(createDir('/etc', 0o700), createFile('/etc/hosts', 'mydomain 10.0.0.1', 0o644), createFile('/etc/profile', 'PATH=/usr/bin', 0o644));
  const l2 = apply(
    createFile('/etc/hosts', 'mydomain 10.0.0.2', 0o644),
    createFile('/etc/profile', 'PATH=/usr/bin', 0o666),
    createDir('/root', 0o700),
    createFile('/root/.bashrc', 'PATH=/usr/sbin:/usr/bin', 0o644),
  );
  // containerd runs this 5 times across second boundaries to catch mtime-based caching bugs.
  for (let i = 0; i < 5; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
    await checkSnapshots(sn, work, l1, l2);
  }
};

export const removeDirectoryInLowerLayer: Case = async (sn, work) => {
  await checkSnapshots(
    sn,
    work,
    apply(createDir('/lib', 0o700), createFile('/lib/hidden', '', 0o644)),
    apply(removeAll('/lib'), createDir('/lib', 0o700), createFile('/lib/not-hidden', '', 0o644)),
    apply(createFile('/lib/newfile', '', 0o644)),
  );
};

export const chownCase: Case = async (sn, work) => {
  await checkSnapshots(
    sn,
    work,
    apply(createDir('/opt', 0o700), createDir('/opt/a', 0o700), createDir('/opt/a/b', 0o700), createFile('/opt/a/b/file.txt', 'hello', 0o644)),
    apply(chown('/opt', 1, 1), chown('/opt/a', 1, 1), chown('/opt/a/b', 1, 1), chown('/opt/a/b/file.txt', 1, 1)),
  );
};

/**
 * containerd skips the directory rename for snapshotters whose mounts are
 * overlayfs without redirect_dir (it names "overlayfs"): renaming a lower
 * directory through such an overlay fails with EXDEV. Our mounts are overlayfs
 * with the kernel's default redirect_dir; `dirRename` says whether to include it.
 */
export function renameCase(dirRename: boolean): Case {
  return async (sn, work) => {
    const l1 = apply(
      createDir('/dir1', 0o700),
      createDir('/somefiles', 0o700),
      createFile('/somefiles/f1', 'was here first!', 0o644),
      createFile('/somefiles/f2', 'nothing interesting', 0o644),
    );
    const l2: Applier[] = dirRename ? [rename('/dir1', '/dir2')] : [];
    l2.push(createFile('/somefiles/f1-overwrite', 'new content 1', 0o644), rename('/somefiles/f1-overwrite', '/somefiles/f1'), rename('/somefiles/f2', '/somefiles/f3'));
    await checkSnapshots(sn, work, l1, apply(...l2));
  };
}

export const directoryPermissionOnCommit: Case = async (sn, work) => {
  await checkSnapshots(
    sn,
    work,
    apply(
      createDir('/dir1', 0o700),
      createDir('/dir2', 0o700),
      createDir('/dir3', 0o700),
      createDir('/dir4', 0o700),
      createFile('/dir4/f1', '...', 0o644),
      createDir('/dir5', 0o700),
      createFile('/dir5/f1', '...', 0o644),
      chown('/dir1', 1, 1),
      chown('/dir2', 1, 1),
      chown('/dir3', 1, 1),
      chown('/dir5', 1, 1),
      chown('/dir5/f1', 1, 1),
    ),
    apply(chown('/dir2', 0, 0), removeAll('/dir3'), chown('/dir4', 1, 1), chown('/dir4/f1', 1, 1)),
    apply(createDir('/dir3', 0o700), chown('/dir3', 1, 1), removeAll('/dir5'), createDir('/dir5', 0o700), chown('/dir5', 1, 1)),
  );
};

export const removeIntermediateSnapshot: Case = async (sn, work) => {
  const base = await prepareMount(sn, work, 'base', '');
  base.release();
  const committedBase = path.join(work, 'committed-base');
  await sn.commit(committedBase, base.dir, opt());
  const intermediate = path.join(work, 'intermediate');
  await sn.prepare(intermediate, committedBase, opt());
  const committedInter = path.join(work, 'committed-inter');
  await sn.commit(committedInter, intermediate, opt());
  const topLayer = path.join(work, 'toplayer');
  await sn.prepare(topLayer, committedInter, opt());
  await rejects(sn.remove(committedInter), 'intermediate layer removal');
  await sn.remove(topLayer);
  await sn.remove(committedInter);
  await sn.remove(committedBase);
};

export const deletedFilesInChildSnapshot: Case = async (sn, work) => {
  await checkSnapshots(sn, work, apply(createFile('/foo', 'foo\n', 0o777), createFile('/foobar', 'foobar\n', 0o777)), apply(removeAll('/foobar')), apply());
};

export const moveFileFromLowerLayer: Case = async (sn, work) => {
  await checkSnapshots(
    sn,
    work,
    apply(createDir('/dir1', 0o700), createFile('/dir1/f1', 'Hello', 0o644), createDir('dir2', 0o700), createFile('dir2/f2', '...', 0o644)),
    apply(createDir('/dir3', 0o700), createFile('/dir3/f1', 'Hello', 0o644), removeAll('/dir1'), link('dir2/f2', 'dir3/f2'), removeAll('dir2/f2')),
  );
};

export const statInWalk: Case = async (sn) => {
  const prefix = 'stats-in-walk-';
  const c1 = `${prefix}c1`;
  const c2 = `${prefix}c2`;
  await sn.prepare(`${c1}-a`, '', opt());
  await sn.commit(c1, `${c1}-a`, opt());
  await sn.prepare(`${c2}-a`, c1, opt());
  await sn.commit(c2, `${c2}-a`, opt());
  await sn.prepare(`${prefix}a1`, c2, opt());
  await sn.view(`${prefix}v1`, c2, opt());
  let seen = 0;
  for (const si of await sn.walk()) {
    if (!si.name.startsWith(prefix)) continue;
    checkInfo(si, await sn.stat(si.name));
    seen++;
  }
  assert.equal(seen, 4);
};

/** The 21 cases, in containerd's order, under the names the issue uses. */
export function allCases(options: { dirRename: boolean }): [string, Case][] {
  return [
    ['Basic', basic],
    ['StatActive', statActive],
    ['StatCommitted', statCommitted],
    ['Transitivity', transitivity],
    ['PrepareViewFailing', prepareViewFailing],
    ['Update', update],
    ['Remove', remove],
    ['Walk', walk],
    ['LayerFileUpdate', layerFileUpdate],
    ['RemoveDirectoryInLowerLayer', removeDirectoryInLowerLayer],
    ['Chown', chownCase],
    ['DirectoryPermissionOnCommit', directoryPermissionOnCommit],
    ['RemoveIntermediateSnapshot', removeIntermediateSnapshot],
    ['DeletedFilesInChildSnapshot', deletedFilesInChildSnapshot],
    ['MoveFileFromLowerLayer', moveFileFromLowerLayer],
    ['ViewReadonly', viewReadonly],
    ['StatInWalk', statInWalk],
    ['CloseTwice', closeTwice],
    ['RootPermission', rootPermission],
    ['Rename', renameCase(options.dirRename)],
    ['128LayersMount', layers128Mount],
  ];
}
