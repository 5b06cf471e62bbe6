/**
 * The `ctr run` acceptance scenario (issue 10), shared by the containerd 1.6 and
 * 2.3.4 test files: one daemon + one containerd per mode, and in it, in order:
 *
 *  1. import a 3-layer image with `--snapshotter erofs-vmdk` (layer 1 busybox +
 *     /etc/passwd, /etc/group; layer 2 adds two files; layer 3 whiteouts one of
 *     them); its config says `User: "alice"`, alice being in two supplementary
 *     groups of its /etc/group;
 *  2. the daemon's mount list for a container snapshot is contract v2: ONE
 *     `fuse.erofs-vmdk-mount` entry (read with Debian's ctr 1.6, which does not
 *     activate mounts);
 *  3. `ctr run --rm` prints the merged files and not the whiteouted one, and `id`
 *     shows alice's uid, gid and groups (ctr resolves them through the image's
 *     /etc/passwd and /etc/group, mounting the rootfs on the host);
 *  4. `ctr run` (kept) writes a file, which is found in the snapshot's writable
 *     layer on the host: <daemon root>/embedded/snapshots/<id>/fs (directory
 *     mode) or /upper in <id>/rwlayer.img (block mode, read with debugfs) after
 *     the task is gone; `ctr containers rm` removes it;
 *  5. nothing is left: no mount under the daemon's or containerd's dirs in
 *     /proc/self/mountinfo (legacy style: except the daemon's own committed-layer
 *     mounts, until the image is removed), no loop device backed by a file
 *     under them (`losetup`), and once the image is removed, no snapshot.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ContainerdOptions, hostPath, parseCtrMounts, startDaemonWithContainerd, type TestContainerd } from '../support/containerd';
import type { TestDaemon } from '../support/daemon';
import { buildOciArchive, busyboxLayer, file, type OciImage, usersLayer, whiteout } from '../support/oci-image';

export const REWRITE = 'erofs-vmdk';
export const V2_TYPE = 'fuse.erofs-vmdk-mount';

export interface Mode {
  /** Title of the describe block. */
  title: string;
  /** containerd 2.x options (containerd2Options()); undefined = Debian's containerd 1.6. */
  containerd?: Partial<Omit<ContainerdOptions, 'snapshotterSocket'>>;
  mountStyle: 'legacy' | 'manager';
  /** Block mode: size of the ext4 writable layer (embedded.default_size). */
  blockSize?: number;
}

const ALICE = { name: 'alice', uid: 1000, gid: 1000 };
const GROUPS = [
  { name: 'alice', gid: 1000 },
  { name: 'video', gid: 44, members: ['bob', 'alice'] },
  { name: 'staff', gid: 50, members: ['alice'] },
  { name: 'games', gid: 60, members: ['bob'] },
];

function image(dir: string, tag: string): OciImage {
  return buildOciArchive(path.join(dir, `${tag}.tar`), {
    name: `docker.io/library/erofs-vmdk-ctr-run:${tag}`,
    layers: [
      [...busyboxLayer(['sh', 'cat', 'ls', 'echo', 'test', 'id']), ...usersLayer([ALICE, { name: 'bob', uid: 1001, gid: 1001 }], GROUPS)],
      [file('etc/message', 'hello from layer 2\n'), file('etc/doomed', 'deleted by layer 3\n')],
      [whiteout('etc/doomed'), file('etc/top', 'from the top layer\n')],
    ],
    user: 'alice',
  });
}

/** Real path of a dir (tmpdir may be a symlink); mountinfo and losetup print real paths. */
function real(p: string): string {
  return fs.realpathSync(p);
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface HostMount {
  target: string;
  type: string;
  source: string;
  superOptions: string;
}

/** Mounts whose target, source or super options name a path under one of `dirs`. */
export function mountsUnder(dirs: string[]): HostMount[] {
  const prefixes = dirs.map(real);
  const under = (s: string) => prefixes.some((p) => s === p || s.includes(`${p}/`) || s.includes(`${p},`) || s.endsWith(p));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [left, right] = line.split(' - ');
      const f = left.split(' ');
      const [type, source, superOptions] = right.split(' ');
      return { target: unescapeMountinfo(f[4]), type, source: unescapeMountinfo(source), superOptions: unescapeMountinfo(superOptions ?? '') };
    })
    .filter((m) => under(m.target) || under(m.source) || under(m.superOptions));
}

/** Loop devices whose backing file is under one of `dirs` (`losetup -J -l`). */
export function loopsUnder(dirs: string[]): { name: string; backFile: string }[] {
  const prefixes = dirs.map(real);
  const out = execFileSync('losetup', ['-J', '-l'], { encoding: 'utf8' }).trim();
  if (out === '') return [];
  const devices = (JSON.parse(out) as { loopdevices: { name: string; 'back-file': string | null }[] }).loopdevices;
  return devices
    .map((d) => ({ name: d.name, backFile: d['back-file'] ?? '' }))
    .filter((d) => prefixes.some((p) => d.backFile.startsWith(`${p}/`)));
}

function snapshotsDir(d: TestDaemon): string {
  return path.join(d.root, 'embedded', 'snapshots');
}

function snapshotIds(d: TestDaemon): string[] {
  const dir = snapshotsDir(d);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^\d+$/.test(n)) : [];
}

/** The legacy style's own mounts: each committed layer.erofs on its snapshot's fs/ (kept while the image exists). */
function isCommittedLayerMount(d: TestDaemon, m: HostMount): boolean {
  const fsDir = new RegExp(`^${real(snapshotsDir(d)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\d+/fs$`);
  return m.type === 'erofs' && fsDir.test(m.target);
}

export function ctrRunScenario(mode: Mode): void {
  describe(mode.title, () => {
    let d: TestDaemon;
    let c: TestContainerd;
    let stop: (() => Promise<void>) | undefined;
    let img: OciImage;
    const manager = mode.mountStyle === 'manager';
    const block = (mode.blockSize ?? 0) > 0;

    before(async () => {
      // containerd's mount code runs `mount.fuse … -t erofs-vmdk-mount`, which runs the helper found on PATH.
      const missing = ['mount.fuse', 'erofs-vmdk-mount'].filter((b) => !hostPath().split(':').some((dir) => fs.existsSync(path.join(dir, b))));
      if (missing.length > 0) throw new Error(`${missing.join(', ')} not on PATH (${hostPath()}): hack/install-deps.sh installs fuse3 and /usr/local/sbin/erofs-vmdk-mount`);
      ({ daemon: d, containerd: c, close: stop } = await startDaemonWithContainerd({
        // debug: the embedded backend logs whether it converted a layer or the EROFS differ wrote it.
        daemon: { logLevel: 'debug', config: { embedded: { mount_style: mode.mountStyle, default_size: mode.blockSize ?? 0 } } },
        containerd: mode.containerd,
      }));
      img = image(c.dir, 'alice');
    });

    after(async () => {
      await stop?.();
    });

    const dirs = () => [d.dir, c.dir];
    const diag = () => `\n--- containerd log (tail) ---\n${c.logs().slice(-3000)}\n--- daemon log (tail) ---\n${d.logs().slice(-3000)}`;

    test(`ctr image import --snapshotter ${REWRITE} unpacks the 3 layers${manager ? ' with the EROFS differ' : ''}`, async () => {
      await c.ctr(['images', 'import', '--snapshotter', REWRITE, img.archive]);
      const listed = (await c.ctr(['snapshots', '--snapshotter', REWRITE, 'ls'])).stdout;
      for (const chain of img.chainIds) assert.match(listed, new RegExp(`${chain.slice('sha256:'.length)}.*Committed`), `layer ${chain} unpacked`);
      const ids = snapshotIds(d);
      assert.equal(ids.length, 3, `three snapshot dirs: ${ids.join(' ')}`);
      for (const id of ids) assert.ok(fs.existsSync(path.join(snapshotsDir(d), id, 'layer.erofs')), `snapshots/${id}/layer.erofs`);
      const commits = d.logRecords().filter((r) => r.msg === 'embedded: committed');
      assert.equal(commits.length, 3, 'three commits logged');
      if (manager) {
        // containerd 2.3.4's EROFS differ found the `.erofslayer` marker and wrote layer.erofs itself (mkfs.erofs --tar).
        assert.deepEqual(commits.map((r) => r.converted), [false, false, false], 'every layer.erofs was written by the EROFS differ');
      }
    });

    test(`the mount list of a container snapshot is contract v2: one ${V2_TYPE} entry`, async () => {
      const key = 'e2e-v2-mounts';
      await c.ctr(['snapshots', '--snapshotter', REWRITE, 'prepare', key, img.chainIds[img.chainIds.length - 1]]);
      try {
        // Debian's ctr 1.6 prints the list as the snapshotter returns it (2.2+ would activate it first).
        const out = (await c.ctr(['snapshots', '--snapshotter', REWRITE, 'mounts', '/run/e2e-target', key], { ctr: 'debian' })).stdout;
        const mounts = parseCtrMounts(out);
        assert.equal(mounts.length, 1, `one mount: ${out}`);
        const [m] = mounts;
        assert.equal(m.type, V2_TYPE);
        assert.equal(path.dirname(m.source), path.join(d.root, 'vmdk'));
        assert.match(m.source, /\/[0-9a-f]{64}\.vmdk$/);
        assert.ok(m.options.includes('X-erofs-vmdk.contract=2'), out);
        assert.ok(!m.options.includes('ro'), `a container snapshot is writable: ${out}`);
        if (block) {
          assert.ok(m.options.some((o) => o.startsWith('X-erofs-vmdk.upper-image=')), out);
          assert.ok(m.options.includes(`X-erofs-vmdk.upper-image-size=${mode.blockSize}`), out);
          assert.ok(!m.options.some((o) => o.startsWith('upperdir=')), out);
        } else {
          assert.ok(m.options.some((o) => o.startsWith('upperdir=')) && m.options.some((o) => o.startsWith('workdir=')), out);
        }
      } finally {
        await c.ctr(['snapshots', '--snapshotter', REWRITE, 'rm', key]);
      }
    });

    test('ctr run --rm: merged layers without the whiteouted file; USER alice with her groups', async () => {
      let stdout: string;
      try {
        ({ stdout } = await c.ctr([
          'run', '--rm', '--snapshotter', REWRITE, img.name, 'e2e-run',
          '/bin/sh', '-c', 'cat /etc/issue /etc/message /etc/top; test -e /etc/doomed && echo doomed-present || echo doomed-absent; id -u; id -g; id -G',
        ]));
      } catch (err) {
        throw new Error(`${(err as Error).message}${diag()}`);
      }
      const lines = stdout.split('\n');
      assert.deepEqual(lines.slice(0, 4), ['erofs-vmdk test image (busybox)', 'hello from layer 2', 'from the top layer', 'doomed-absent'], stdout);
      assert.equal(lines[4], String(ALICE.uid), 'uid');
      assert.equal(lines[5], String(ALICE.gid), 'gid');
      const groups = lines[6].split(' ').map(Number).sort((a, b) => a - b);
      assert.deepEqual(groups, [44, 50, 1000], `groups of alice (video, staff, alice; not games): ${lines[6]}`);
    });

    test(`a file written by the container lands in the snapshot's ${block ? 'ext4 image (/upper)' : 'upper dir'} on the host`, async () => {
      const id = 'e2e-kept';
      const content = `written by ${id} ${process.pid}`;
      await c.ctr(['run', '--snapshotter', REWRITE, img.name, id, '/bin/sh', '-c', `echo "${content}" > /tmp/written-by-container`]);
      try {
        // The task is gone (ctr run deletes it when it exits), the container and its snapshot are kept.
        assert.deepEqual(
          mountsUnder(dirs()).filter((m) => !isCommittedLayerMount(d, m)),
          [],
          'no rootfs mount left once the task is gone',
        );
        if (block) {
          const images = snapshotIds(d)
            .map((s) => path.join(snapshotsDir(d), s, 'rwlayer.img'))
            .filter((f) => fs.existsSync(f));
          assert.equal(images.length, 1, `one rwlayer.img: ${images.join(' ')}`);
          assert.equal(fs.statSync(images[0]).size, mode.blockSize, 'the image has default_size bytes');
          const ls = execFileSync('debugfs', ['-R', 'ls /upper/tmp', images[0]], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          assert.match(ls, /written-by-container/, ls);
          const cat = execFileSync('debugfs', ['-R', 'cat /upper/tmp/written-by-container', images[0]], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          assert.equal(cat, `${content}\n`);
        } else {
          const found = snapshotIds(d)
            .map((s) => path.join(snapshotsDir(d), s, 'fs', 'tmp', 'written-by-container'))
            .filter((f) => fs.existsSync(f));
          assert.equal(found.length, 1, `one upper dir has the file: ${found.join(' ')}`);
          assert.equal(fs.readFileSync(found[0], 'utf8'), `${content}\n`);
          const st = fs.statSync(found[0]);
          assert.equal(st.uid, ALICE.uid, 'written as alice');
        }
      } finally {
        await c.ctr(['containers', 'rm', id]);
      }
      // containerd removes the backend snapshot in its next garbage collection, soon after.
      const deadline = Date.now() + 15_000;
      while (snapshotIds(d).length > 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(snapshotIds(d).length, 3, 'removing the container removed its snapshot (after containerd\'s garbage collection)');
    });

    test('nothing is left: no mount, no loop device; image removal removes every snapshot', async () => {
      const mounts = mountsUnder(dirs());
      const foreign = mounts.filter((m) => manager || !isCommittedLayerMount(d, m));
      assert.deepEqual(foreign, [], 'no mount but the daemon\'s own committed layers');
      const loops = loopsUnder(dirs()).filter((l) => manager || !/\/embedded\/snapshots\/\d+\/layer\.erofs$/.test(l.backFile));
      assert.deepEqual(loops, [], 'no loop device');
      await c.ctr(['images', 'rm', '--sync', img.name]);
      assert.deepEqual(await d.client.list({ snapshotter: REWRITE }, { namespace: null }), [], 'no snapshot in the backend');
      assert.deepEqual(snapshotIds(d), [], 'no snapshot dir');
      assert.deepEqual(fs.existsSync(path.join(d.root, 'vmdk')) ? fs.readdirSync(path.join(d.root, 'vmdk')) : [], [], 'no descriptor');
      assert.deepEqual(mountsUnder(dirs()), [], 'no mount at all');
      assert.deepEqual(loopsUnder(dirs()), [], 'no loop device at all');
    });
  });
}
