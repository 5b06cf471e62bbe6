import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { TEMP_PREFIX } from '../../src/atomic/write-file-atomic';
import { sha256, Store } from '../../src/store';

const DESCRIPTOR = '# Disk DescriptorFile\nversion=1\n';

function tempRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'erofs-vmdk-store-'));
}

function rows(root: string): { profile: string; key: string; file: string }[] {
  const db = new Database(path.join(root, 'state.db'), { readonly: true });
  try {
    return db.prepare('SELECT profile, key, file FROM refs ORDER BY profile, key, file').all() as { profile: string; key: string; file: string }[];
  } finally {
    db.close();
  }
}

describe('Store', () => {
  let root: string;
  let store: Store;
  before(() => {
    root = tempRoot();
    store = Store.open(root);
  });
  after(() => {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('creates vmdk/, fsmeta/ and state.db under the root, private to the daemon', () => {
    for (const dir of ['vmdk', 'fsmeta']) {
      const st = fs.statSync(path.join(root, dir));
      assert.ok(st.isDirectory());
      assert.equal(st.mode & 0o777, 0o700);
    }
    assert.ok(fs.existsSync(path.join(root, 'state.db')));
  });

  it('uses WAL journaling in state.db', () => {
    const db = new Database(path.join(root, 'state.db'), { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  it('names a descriptor by the sha256 of its text', () => {
    const file = store.putDescriptor(DESCRIPTOR);
    assert.equal(file, path.join(fs.realpathSync(root), 'vmdk', `${sha256(DESCRIPTOR)}.vmdk`));
    assert.equal(fs.readFileSync(file, 'utf8'), DESCRIPTOR);
  });

  it('does not rewrite an identical existing file (same inode)', () => {
    const file = store.putDescriptor(DESCRIPTOR);
    const ino = fs.statSync(file).ino;
    assert.equal(store.putDescriptor(DESCRIPTOR), file);
    assert.equal(fs.statSync(file).ino, ino);
  });

  it('replaces a damaged file whose name promises other bytes', () => {
    const file = store.putDescriptor(DESCRIPTOR);
    fs.writeFileSync(file, DESCRIPTOR.slice(0, 5));
    store.putDescriptor(DESCRIPTOR);
    assert.equal(fs.readFileSync(file, 'utf8'), DESCRIPTOR);
  });

  it('names an fsmeta copy by the sha256 of its bytes, or by a given digest', () => {
    const bytes = Buffer.from('fsmeta bytes');
    assert.equal(path.basename(store.putFsmeta(bytes)), `${sha256(bytes)}.erofs`);
    const id = sha256('identity of some layers');
    assert.equal(path.basename(store.putFsmetaAs(id, bytes)), `${id}.erofs`);
    assert.throws(() => store.putFsmetaAs('../escape', bytes), /not a sha256/);
  });

  it('records references idempotently and replaces a key\'s set as a whole', () => {
    const d = store.putDescriptor('ref test');
    const f = store.putFsmeta(Buffer.from('ref test fsmeta'));
    store.setReferences('p', 'ns/1/k', [d, f]);
    store.setReferences('p', 'ns/1/k', [f, d, d]);
    const rel = (x: string) => path.relative(store.root, x);
    assert.deepEqual(rows(root).filter((r) => r.key === 'ns/1/k').map((r) => r.file), [rel(f), rel(d)].sort());
    store.setReferences('p', 'ns/1/k', [d]);
    assert.deepEqual(rows(root).filter((r) => r.key === 'ns/1/k').map((r) => r.file), [rel(d)]);
    store.dropReferences('p', 'ns/1/k');
    store.dropReferences('p', 'ns/1/k');
    assert.deepEqual(rows(root).filter((r) => r.key === 'ns/1/k'), []);
  });

  it('refuses to reference a file outside the store', () => {
    assert.throws(() => store.setReferences('p', 'k', ['/etc/passwd']), /not a store file/);
    assert.throws(() => store.setReferences('p', 'k', [path.join(store.root, 'vmdk', 'x.vmdk')]), /not a store file/);
  });

  it('GC deletes unreferenced files and temp files, keeps referenced, pinned and foreign files', () => {
    const kept = store.putDescriptor('kept');
    const shared = store.putFsmeta(Buffer.from('shared'));
    const garbage = store.putDescriptor('garbage');
    const pinned = store.putDescriptor('pinned');
    const foreign = path.join(store.root, 'vmdk', 'README.txt');
    const temp = path.join(store.root, 'fsmeta', `${TEMP_PREFIX}x.erofs.123456`);
    fs.writeFileSync(foreign, 'not ours');
    fs.writeFileSync(temp, 'half a write');
    store.setReferences('a', 'k1', [kept, shared]);
    store.setReferences('b', 'k1', [shared]);
    const release = store.pin([pinned]);
    const gc = store.collectGarbage();
    assert.ok(gc.removed.includes(path.relative(store.root, garbage)));
    assert.equal(gc.temps, 1);
    for (const f of [kept, shared, pinned, foreign]) assert.ok(fs.existsSync(f), `${f} kept`);
    assert.ok(!fs.existsSync(garbage) && !fs.existsSync(temp));
    release();
    store.collectGarbage();
    assert.ok(!fs.existsSync(pinned), 'released pin lets GC collect the file');
    store.dropReferences('a', 'k1');
    store.collectGarbage();
    assert.ok(!fs.existsSync(kept) && fs.existsSync(shared), 'a file shared by another key survives');
    store.dropReferences('b', 'k1');
    store.collectGarbage();
    assert.ok(!fs.existsSync(shared));
    fs.rmSync(foreign);
  });

  it('counts descriptors and fsmeta files', () => {
    store.collectGarbage();
    const before = store.counts();
    const d = store.putDescriptor('count me');
    const f = store.putFsmeta(Buffer.from('count me'));
    assert.deepEqual(store.counts(), { descriptors: before.descriptors + 1, fsmeta: before.fsmeta + 1 });
    store.setReferences('c', 'k', [d, f]);
    store.dropReferences('c', 'k');
  });
});

describe('Store across restarts', () => {
  it('refuses a root whose paths could not be written into a descriptor', () => {
    const parent = tempRoot();
    try {
      assert.throws(() => Store.open(path.join(parent, 'with space')), /cannot be used.*whitespace/);
      assert.ok(!fs.existsSync(path.join(parent, 'with space')), 'nothing created');
      assert.throws(() => Store.open('relative/root'), /not an absolute path/);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });

  it('keeps referenced files, and start-up deletes unreferenced and temp files', () => {
    const root = tempRoot();
    try {
      let store = Store.open(root);
      const referenced = store.putDescriptor('survives');
      const orphan = store.putDescriptor('orphan');
      store.setReferences('p', 'ns/3/c', [referenced]);
      store.close();
      const temp = path.join(root, 'vmdk', `${TEMP_PREFIX}y.vmdk.abcdef`);
      fs.writeFileSync(temp, 'partial');

      store = Store.open(root);
      try {
        assert.ok(fs.existsSync(referenced));
        assert.ok(!fs.existsSync(orphan));
        assert.ok(!fs.existsSync(temp));
        assert.deepEqual(store.references('p', 'ns/3/c')?.files, [path.relative(store.root, referenced)]);
      } finally {
        store.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('a writer killed mid-write never leaves a file whose name does not match its bytes', async () => {
    const root = tempRoot();
    try {
      Store.open(root).close();
      // A child process writes 4 MiB fsmeta files as fast as it can until it is SIGKILLed.
      const storeModule = path.resolve(__dirname, '..', '..', 'src', 'store');
      const script = `
        const { Store } = require(${JSON.stringify(storeModule)});
        const crypto = require('node:crypto');
        const store = Store.open(${JSON.stringify(root)});
        process.stdout.write('ready\\n');
        for (;;) store.putFsmeta(crypto.randomBytes(4 << 20));`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 400));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));

      const dir = path.join(root, 'fsmeta');
      const names = fs.readdirSync(dir);
      const complete = names.filter((n) => !n.startsWith(TEMP_PREFIX));
      assert.ok(complete.length > 0, 'the writer completed at least one file before the kill');
      for (const name of complete) assert.equal(`${sha256(fs.readFileSync(path.join(dir, name)))}.erofs`, name);

      const store = Store.open(root);
      try {
        assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith(TEMP_PREFIX)), [], 'start-up removed leftover temp files');
      } finally {
        store.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
