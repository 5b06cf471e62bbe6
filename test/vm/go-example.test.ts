/**
 * The Go example of go-shim-compat.md (hack/vm/go-example/main.go) is
 * compiled and run, and what it prints is used AS IS: its -drive/-device
 * arguments start QEMU and its guest commands are the guest's mount script.
 * The guest must then see the merged basic fixture.
 *
 * Needs a Go toolchain (stdlib only; Debian's golang-go, which
 * hack/install-deps.sh installs for the test command). Go is not a dependency
 * of the product, but a missing toolchain fails this test rather than
 * skipping it, so the example in the guide is always exercised.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { bootGuest, newNonce, prepareGuest } from '../../hack/vm/boot';
import { initPrelude } from '../../hack/vm/guest-init';
import { defaultCacheDir } from '../../hack/vm/guest-kernel';
import { fixture, repoRoot } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { overlayMount, vmdkMount, vmRun, VM_TEST_TIMEOUT_MS, writeDescriptor } from './vm-harness';

describe('go-shim-compat.md Go example', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let dir: string;
  let binary: string;
  let mountsJson: string;
  before(() => {
    dir = fs.realpathSync(makeTempDir('erofs-vmdk-goex-'));
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.copyFileSync(path.join(repoRoot, 'hack', 'vm', 'go-example', 'main.go'), path.join(src, 'main.go'));
    fs.copyFileSync(path.join(repoRoot, 'hack', 'vm', 'go-example', 'go.mod'), path.join(src, 'go.mod'));
    binary = path.join(dir, 'vmdkmount');
    const env = { ...process.env, GOPATH: path.join(dir, 'gopath'), GOCACHE: path.join(dir, 'gocache'), GOPROXY: 'off', GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };
    execFileSync('go', ['vet', '.'], { cwd: src, env, stdio: ['ignore', 'pipe', 'pipe'] });
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: src, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const basic = fixture('basic');
    const layers = fs.readFileSync(path.join(basic, 'layers.txt'), 'utf8').trim().split('\n').map((l) => path.join(basic, l));
    const descriptor = path.join(dir, 'basic.vmdk');
    writeDescriptor({ fsmeta: path.join(basic, 'fsmeta.erofs'), layers }, descriptor);
    mountsJson = JSON.stringify([vmdkMount(descriptor), overlayMount(dir)]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints the same read-only, force-shared vmdk drive as vm-run', async () => {
    const out = execFileSync(binary, ['-allow-dir', dir], { input: mountsJson, encoding: 'utf8' });
    const drive = out.split('\n')[0].replace(/^-drive /, '');
    const vmRunArgs = await vmRun(['--allow-dir', dir, '--allow-dir', fixture('basic'), '--mounts', '-', '--print-qemu', '--exec', 'initramfs', '--', 'true'], mountsJson);
    assert.equal(vmRunArgs.code, 0, vmRunArgs.stderr);
    assert.ok(vmRunArgs.stderr.includes(`-drive ${drive.replace('id=rootfs', 'id=disk0')}`), `${drive}\nvs\n${vmRunArgs.stderr}`);
  });

  it('refuses a newer contract and a descriptor outside -allow-dir', () => {
    const newer = JSON.parse(mountsJson);
    newer[0].options.push('X-vmdk.version=2');
    const r1 = spawnSync(binary, ['-allow-dir', dir], { input: JSON.stringify(newer), encoding: 'utf8' });
    assert.equal(r1.status, 1);
    assert.match(r1.stderr, /not contract v1/);
    const r2 = spawnSync(binary, ['-allow-dir', fixture('basic')], { input: mountsJson, encoding: 'utf8' });
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /is outside/);
  });

  it('boots: its QEMU arguments and guest commands give the merged image', async () => {
    const out = execFileSync(binary, ['-allow-dir', dir], { input: mountsJson, encoding: 'utf8' }).trim().split('\n');
    const qemuArgs = out.filter((l) => l.startsWith('-')).flatMap((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]);
    const guestCommands = out.filter((l) => l.startsWith('guest: ')).map((l) => l.slice('guest: '.length));
    const guest = prepareGuest(defaultCacheDir());
    const nonce = newNonce();
    const init = `${initPrelude(nonce, guest.modules)}
mkdir -p /run/rootfs/m0 /run/rootfs/rw /run/rootfs/root
${guestCommands.map((c) => `${c} || die ${JSON.stringify(`failed: ${c}`)}`).join('\n')}
mark erofs-mounted
echo "$N:BEGIN"
(cat /run/rootfs/root/etc/motd; [ -e /run/rootfs/root/tmp/delete-me ] && echo whiteout-visible; grep " /run/rootfs/m0 " /proc/mounts) >/run/out 2>/run/err
rc=$?
echo "$N:STDOUT"; base64 /run/out; echo "$N:STDERR"; base64 /run/err; echo "$N:END $rc"
poweroff -f
`;
    const result = await bootGuest({ guest, nonce, init, disks: [], extraQemuArgs: qemuArgs, timeoutMs: 300_000 });
    assert.equal(result.report.failure, undefined);
    assert.equal(result.report.exitCode, 0, result.qemu.stderr);
    const [motd, mountLine] = result.report.stdout!.toString('utf8').trim().split('\n');
    assert.equal(motd, 'welcome from layer2 (overwritten)');
    assert.match(mountLine, /^\/dev\/vda \/run\/rootfs\/m0 erofs ro/);
    assert.doesNotMatch(mountLine, /device=/);
  });
});
