/** argv/option parsing of erofs-vmdk-mount (pure; the kernel tests are in mount.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArguments, splitArgv } from '../../src/mount-helper/arguments';
import { HelperError } from '../../src/mount-helper/errors';

const C = 'X-erofs-vmdk.contract=2';

function refusal(argv: string[]): string {
  try {
    parseArguments(argv);
  } catch (err) {
    assert.ok(err instanceof HelperError);
    assert.equal(err.exitCode, 2);
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(argv)}`);
}

test('mount.fuse3 shape: SRC TARGET -o joined options (dev,suid appended) → a read-only view', () => {
  const r = parseArguments(['/r/a.vmdk', '/t', '-o', `ro,${C},X-vmdk.fs=erofs,X-vmdk.layout=flat,dev,suid`]);
  assert.deepEqual(r, { source: '/r/a.vmdk', target: '/t', upper: { kind: 'none' }, readOnly: true, nodev: false, nosuid: false, noexec: false });
});

test('several -o, -oX and empty items are joined; generic flags: the last of a pair wins', () => {
  assert.deepEqual(splitArgv(['/s', '-o', 'a,,b', '/t', '-oc']), { source: '/s', target: '/t', items: ['a', 'b', 'c'] });
  const r = parseArguments(['/s.vmdk', '/t', '-o', C, '-o', 'nodev,nosuid,noexec,exec,dev', '-o', 'upperdir=/u,workdir=/w,rw']);
  assert.deepEqual(r.upper, { kind: 'dir', upperdir: '/u', workdir: '/w' });
  assert.equal(r.readOnly, false);
  assert.deepEqual([r.nodev, r.nosuid, r.noexec], [false, true, false]);
  // containerd 1.7's read-only temp mounts append `ro` to a container's options.
  assert.equal(parseArguments(['/s.vmdk', '/t', '-o', `${C},upperdir=/u,workdir=/w,rw,ro`]).readOnly, true);
  // A view is read-only whatever the flags say (EROFS is).
  assert.equal(parseArguments(['/s.vmdk', '/t', '-o', `${C},rw`]).readOnly, true);
});

test('block mode needs the three upper-image options', () => {
  const r = parseArguments(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image=/r/i.img,X-erofs-vmdk.upper-image-size=1073741824,X-erofs-vmdk.upper-image-fs=ext4`]);
  assert.deepEqual(r.upper, { kind: 'image', image: '/r/i.img', size: 1073741824, fs: 'ext4' });
  assert.match(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image=/r/i.img,X-erofs-vmdk.upper-image-size=1048576`]), /missing option X-erofs-vmdk.upper-image-fs/);
  assert.match(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image-size=1048576,X-erofs-vmdk.upper-image-fs=ext4`]), /missing option X-erofs-vmdk.upper-image /);
  assert.match(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image=/i,X-erofs-vmdk.upper-image-size=4096,X-erofs-vmdk.upper-image-fs=ext4`]), /at least 1048576 bytes/);
  assert.match(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image=/i,X-erofs-vmdk.upper-image-size=099999999,X-erofs-vmdk.upper-image-fs=ext4`]), /not a positive integer/);
  assert.match(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.upper-image=/i,X-erofs-vmdk.upper-image-size=99999999999999999999,X-erofs-vmdk.upper-image-fs=ext4`]), /not a positive integer/);
});

test('refusals name the option', () => {
  assert.equal(refusal(['/s.vmdk', '/t']), 'missing option X-erofs-vmdk.contract=2');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},X-vmdk.fs=ext4`]), 'option X-vmdk.fs="ext4": only erofs is supported');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},X-vmdk.layout=concat`]), 'option X-vmdk.layout="concat": only flat is supported');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},upperdir=`]), 'option upperdir has an empty value');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},workdir=/w`]), 'option workdir needs upperdir');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},loop`]), 'unknown option "loop"');
  assert.equal(refusal(['/s.vmdk', '/t', '-o', `${C},X-erofs-vmdk.other=1`]), 'unknown option "X-erofs-vmdk.other=1"');
  assert.match(refusal(['/s.vmdk', '/t', '-o']), /^-o needs a value/);
  assert.match(refusal(['/s.vmdk', '/t', '-n', '-o', C]), /^unknown argument "-n"/);
  assert.match(refusal(['/s.vmdk', '-o', C]), /^expected SRC and TARGET, got 1 positional/);
});
