/**
 * Legacy overlay lowerdirs are `<dir>/fs` and the layer is `<dir>/layer.erofs`.
 * A lowerdir with `..` after a symlink names what the kernel resolves (the
 * symlink first), not what lexical normalisation gives: the blob must be the
 * one beside the directory the kernel would actually mount, or the flat disk
 * would hold another snapshot's layer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { legacyLayerEnv } from '../../src/snapshotter/proxy';

test('a lowerdir with .. after a symlink maps to the blob beside the directory the kernel resolves', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'review-legacy-'));
  try {
    // <root>/A/b -> <root>/real/sub, so <root>/A/b/../fs is <root>/real/fs for the kernel.
    for (const d of ['A/fs', 'real/fs', 'real/sub']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.symlinkSync(path.join(root, 'real', 'sub'), path.join(root, 'A', 'b'));
    fs.writeFileSync(path.join(root, 'A', 'layer.erofs'), 'A');
    fs.writeFileSync(path.join(root, 'real', 'layer.erofs'), 'real');

    const tricky = path.join(root, 'A', 'b') + '/../fs';
    assert.equal(fs.realpathSync.native(tricky), path.join(root, 'real', 'fs'), 'precondition: what the kernel mounts');
    assert.equal(legacyLayerEnv.legacyLayerOf(tricky), path.join(root, 'real', 'layer.erofs'));
    // Plain lowerdirs are unchanged.
    assert.equal(legacyLayerEnv.legacyLayerOf(path.join(root, 'A', 'fs')), path.join(root, 'A', 'layer.erofs'));
    // A path the kernel could not resolve has no layer.
    assert.equal(legacyLayerEnv.legacyLayerOf(`${root}/missing/../A/fs`), undefined);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
