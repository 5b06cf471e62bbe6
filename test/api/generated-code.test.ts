/**
 * api/gen is generated from api/**.proto by `npm run gen` (ts-proto via buf)
 * and committed. This fails when someone edits a .proto (or bumps ts-proto)
 * without regenerating, or hand-edits generated code.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { makeTempDir } from '../support/kernel-mounts';
import { repoRoot } from '../support/fixtures';

function listFiles(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [path.relative(base, p)];
  });
}

test('committed api/gen matches a fresh `hack/gen-api.sh` run', () => {
  const tmp = makeTempDir();
  try {
    const out = path.join(tmp, 'gen');
    execFileSync('bash', [path.join(repoRoot, 'hack', 'gen-api.sh'), out], { cwd: repoRoot, stdio: 'pipe' });
    const committed = path.join(repoRoot, 'api', 'gen');
    const fresh = listFiles(out).sort();
    assert.deepEqual(listFiles(committed).sort(), fresh, 'the set of generated files differs: run `npm run gen`');
    assert.ok(fresh.includes(path.join('containerd', 'services', 'snapshots', 'v1', 'snapshots.ts')));
    for (const f of fresh) {
      const same = fs.readFileSync(path.join(committed, f)).equals(fs.readFileSync(path.join(out, f)));
      assert.ok(same, `api/gen/${f} is stale or hand-edited: run \`npm run gen\` and commit the result`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the generated code keeps containerd field numbers (wire compatibility)', () => {
  // Encode with the generated code and check the raw tags containerd expects.
  const { CommitSnapshotRequest } = require('../../api/gen/containerd/services/snapshots/v1/snapshots');
  const { Mount } = require('../../api/gen/containerd/types/mount');
  const commit: Buffer = Buffer.from(CommitSnapshotRequest.encode({ snapshotter: 's', name: 'n', key: 'k', labels: {}, parent: 'p' }).finish());
  // field 1 (0x0a) "s", field 2 (0x12) "n", field 3 (0x1a) "k", field 5 (0x2a) "p"
  assert.deepEqual([...commit], [0x0a, 1, 0x73, 0x12, 1, 0x6e, 0x1a, 1, 0x6b, 0x2a, 1, 0x70]);
  const mount: Buffer = Buffer.from(Mount.encode({ type: 't', source: 's', target: 'g', options: ['o'] }).finish());
  assert.deepEqual([...mount], [0x0a, 1, 0x74, 0x12, 1, 0x73, 0x1a, 1, 0x67, 0x22, 1, 0x6f]);
});
