/**
 * File names are bytes. A layer whose resolved path is not valid UTF-8 used to
 * be written into the descriptor with U+FFFD in place of the bad bytes: exit 0,
 * and a disk naming a file that does not exist (or, worse, another file that
 * carries the replaced name). It must be refused, with a path-* code (the
 * daemon maps those to InvalidArgument).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlatLayoutError, prepareFlatDisk } from '../../src/erofs/flat-layout';
import { fixture } from '../support/fixtures';
import { runCliBounded } from './bounded-child';

function withBadlyNamedLayer(fn: (dir: string, link: string, lookalike: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-utf8-'));
  try {
    const badName = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0xff]), Buffer.from('.erofs')]);
    fs.copyFileSync(fixture('basic', 'layer1.erofs'), badName);
    // What the lossy decoding would name instead: a different, valid file.
    const lookalike = path.join(dir, '\uFFFD.erofs');
    fs.copyFileSync(fixture('basic', 'layer2.erofs'), lookalike);
    const link = path.join(dir, 'link.erofs');
    fs.symlinkSync(badName, link);
    fn(dir, link, lookalike);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('prepareFlatDisk refuses a layer whose resolved path is not UTF-8', () => {
  withBadlyNamedLayer((dir, link) => {
    assert.throws(() => prepareFlatDisk({ layers: [link] }, { repairDir: dir }),
      (err: unknown) => err instanceof FlatLayoutError && err.code === 'path-not-utf8' && err.message.includes(link));
  });
});

test('vmdk --layer through a symlink to a non-UTF-8 name is refused and writes nothing', () => {
  withBadlyNamedLayer((dir, link, lookalike) => {
    const out = path.join(dir, 'out.vmdk');
    for (const args of [['--layer', link], ['--layer', link, '--layer', fixture('basic', 'layer2.erofs')]]) {
      const r = runCliBounded(['vmdk', ...args, '--out', out]);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /not valid UTF-8/);
      assert.equal(fs.existsSync(out), false, 'no descriptor naming the look-alike file');
    }
    assert.ok(fs.existsSync(lookalike));
  });
});
