/**
 * The Go example of go-shim-compat.md (hack/vm/go-example/main.go) is
 * compiled and run. For contract v1 and each contract v2 mode its disks must
 * equal vm-run's (`--check-only --print-qemu`, no boot), and it must refuse
 * what vm-run refuses. One boot (v2 block mode) uses what it prints AS IS:
 * its -drive/-device arguments start QEMU and its guest commands are the
 * guest's mount script. The guest must then see the merged basic fixture, and
 * a write must land in the upper image.
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
import type { Mount } from '../../src/mount/index';
import { overlayMount, v2Mount, vmdkMount, vmRun, VM_TEST_TIMEOUT_MS, writeDescriptor } from './vm-harness';

describe('go-shim-compat.md Go example', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let dir: string;
  let binary: string;
  let descriptor: string;
  /** The same image as contract v1 (vmdk + overlay) and v2 (one fuse.erofs-vmdk-mount entry, each mode). */
  const lists: Record<string, () => Mount[]> = {
    v1: () => [vmdkMount(descriptor), overlayMount(dir)],
    'v2 view': () => [v2Mount(descriptor, { view: true })],
    'v2 directory': () => [v2Mount(descriptor, { upperdir: path.join(dir, 'fs'), workdir: path.join(dir, 'work') })],
    'v2 block': () => [v2Mount(descriptor, { image: path.join(dir, 'rwlayer.img'), size: 64 << 20 })],
  };
  const run = (mounts: Mount[], allowDir = dir) => spawnSync(binary, ['-allow-dir', allowDir], { input: JSON.stringify(mounts), encoding: 'utf8' });
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
    // Copies of the fixture blobs, so one -allow-dir holds the descriptor, every extent and the upper image.
    const basic = fixture('basic');
    const names = ['fsmeta.erofs', ...fs.readFileSync(path.join(basic, 'layers.txt'), 'utf8').trim().split('\n')];
    for (const name of names) fs.copyFileSync(path.join(basic, name), path.join(dir, path.basename(name)));
    descriptor = path.join(dir, 'basic.vmdk');
    writeDescriptor({ fsmeta: path.join(dir, 'fsmeta.erofs'), layers: names.slice(1).map((n) => path.join(dir, path.basename(n))) }, descriptor);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints the same disks as vm-run for v1 and every v2 mode: one read-only, force-shared vmdk drive (+ the raw upper image)', async () => {
    for (const [name, mounts] of Object.entries(lists)) {
      const out = run(mounts());
      assert.equal(out.status, 0, `${name}: ${out.stderr}`);
      const goDisks = out.stdout.split('\n').filter((l) => l.startsWith('-')).join(' ').replace(/id=rootfs|drive=rootfs/g, (m) => m.replace('rootfs', 'disk0')).replace(/id=upper|drive=upper(?=,)/g, (m) => m.replace('upper', 'disk1'));
      const vmRunDisks = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only', '--print-qemu'], JSON.stringify(mounts()));
      assert.equal(vmRunDisks.code, 0, vmRunDisks.stderr);
      assert.equal(goDisks, vmRunDisks.stderr.trim(), name);
      assert.equal((goDisks.match(/-drive /g) ?? []).length, name === 'v2 block' ? 2 : 1, name);
    }
  });

  it('refuses other contracts, broken v2 entries and a descriptor outside -allow-dir', () => {
    const edit = (m: Mount, f: (o: string[]) => string[]): Mount => ({ ...m, options: f([...m.options]) });
    const cases: Array<[string, Mount[], RegExp, string?]> = [
      ['v1 with an unknown X-vmdk option', [edit(vmdkMount(descriptor), (o) => [...o, 'X-vmdk.version=2']), overlayMount(dir)], /not contract v1/],
      ['v2 contract=3', [edit(lists['v2 view']()[0], (o) => o.map((x) => x.replace('contract=2', 'contract=3')))], /X-erofs-vmdk\.contract="3": not contract v2/],
      ['v2 unknown option', [edit(lists['v2 directory']()[0], (o) => [...o, 'X-erofs-vmdk.cache=on'])], /unknown option "X-erofs-vmdk\.cache=on": not contract v2/],
      ['v2 upperdir without workdir', [edit(lists['v2 directory']()[0], (o) => o.filter((x) => !x.startsWith('workdir=')))], /not an absolute host path/],
      ['v2 upper image without size', [edit(lists['v2 block']()[0], (o) => o.filter((x) => !x.includes('size=')))], /block mode needs/],
      ['v2 directory and block options', [edit(lists['v2 directory']()[0], (o) => [...o, ...lists['v2 block']()[0].options.filter((x) => x.includes('upper-image'))])], /mixes upperdir\/workdir and X-erofs-vmdk\.upper-image/],
      ['v2 entry with another mount', [...lists['v2 view'](), overlayMount(dir)], /exactly one fuse\.erofs-vmdk-mount mount, got 2/],
      ['v2 options on the vmdk type', [{ ...lists['v2 view']()[0], type: 'vmdk' }], /type "vmdk" with X-erofs-vmdk\.contract=2: contract v2 mounts have type fuse\.erofs-vmdk-mount/],
      ['v1 descriptor outside -allow-dir', lists.v1(), /is outside/, fixture('basic')],
      ['v2 descriptor outside -allow-dir', lists['v2 view'](), /is outside/, fixture('basic')],
    ];
    for (const [name, mounts, message, allowDir] of cases) {
      const r = run(mounts, allowDir);
      assert.equal(r.status, 1, `${name}: ${r.stdout}`);
      assert.match(r.stderr, message, name);
    }
  });

  it('boots v2 block mode: its QEMU arguments and guest commands give the merged image over the ext4 upper disk', async () => {
    const image = path.join(dir, 'boot-rwlayer.img');
    const out = execFileSync(binary, ['-allow-dir', dir], { input: JSON.stringify([v2Mount(descriptor, { image, size: 64 << 20 })]), encoding: 'utf8' }).trim().split('\n');
    const qemuArgs = out.filter((l) => l.startsWith('-')).flatMap((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]);
    const guestCommands = out.filter((l) => l.startsWith('guest: ')).map((l) => l.slice('guest: '.length));
    const guest = prepareGuest(defaultCacheDir());
    const nonce = newNonce();
    const init = `${initPrelude(nonce, guest.modules)}
mkdir -p /run/rootfs/m0 /run/rootfs/rw /run/rootfs/root
${guestCommands.map((c) => `${c} || die ${JSON.stringify(`failed: ${c}`)}`).join('\n')}
mark erofs-mounted
echo "$N:BEGIN"
(cat /run/rootfs/root/etc/motd; [ -e /run/rootfs/root/tmp/delete-me ] && echo whiteout-visible; grep " /run/rootfs/m0 " /proc/mounts; grep " /run/rootfs/rw " /proc/mounts | cut -d' ' -f1-3; echo written-in-the-guest >/run/rootfs/root/etc/from-guest; ls /sys/block | grep ^vd | tr '\\n' ' ') >/run/out 2>/run/err
rc=$?
umount /run/rootfs/root; umount /run/rootfs/rw; sync
echo "$N:STDOUT"; base64 /run/out; echo "$N:STDERR"; base64 /run/err; echo "$N:END $rc"
poweroff -f
`;
    const result = await bootGuest({ guest, nonce, init, disks: [], extraQemuArgs: qemuArgs, timeoutMs: 300_000 });
    assert.equal(result.report.failure, undefined);
    assert.equal(result.report.exitCode, 0, `${result.qemu.stderr}${result.report.stderr?.toString('utf8')}`);
    const [motd, erofsLine, ext4Line, disks] = result.report.stdout!.toString('utf8').trim().split('\n');
    assert.equal(motd, 'welcome from layer2 (overwritten)');
    assert.match(erofsLine, /^\/dev\/vda \/run\/rootfs\/m0 erofs ro/);
    assert.doesNotMatch(erofsLine, /device=/);
    assert.equal(ext4Line, '/dev/vdb /run/rootfs/rw ext4');
    assert.equal(disks.trim(), 'vda vdb', 'one read-only disk for the root, one for the upper image');
    // The write landed in the upper image, under /upper (debugfs reads it without mounting).
    const cat = execFileSync('debugfs', ['-R', 'cat /upper/etc/from-guest', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(cat, 'written-in-the-guest\n');
  });
});
