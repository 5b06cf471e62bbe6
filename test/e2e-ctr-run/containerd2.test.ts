/**
 * `ctr run` on containerd 2.3.4 + runc (hack/containerd2.ts: $EROFS_VMDK_CONTAINERD2,
 * else /opt/containerd-2.3.4; skipped with the reason when neither they nor the tarball
 * are there, failed when install-deps was not run) with the
 * `erofs-vmdk` (rewrite) snapshotter, embedded backend in manager mount style;
 * images are unpacked by containerd's EROFS differ (Debian 13's mkfs.erofs in front
 * of containerd's PATH). Directory mode, then block mode (64 MiB ext4 writable
 * layer). Scenario: scenario.ts.
 */
import { test } from 'node:test';
import { containerd2Options } from '../support/containerd';
import { ctrRunScenario } from './scenario';

const c2 = containerd2Options();
if ('skip' in c2) {
  test('ctr run on containerd 2.3.4', (t) => t.skip(c2.skip));
} else if ('error' in c2) {
  test('ctr run on containerd 2.3.4', () => {
    throw new Error(c2.error);
  });
} else {
  ctrRunScenario({ title: 'ctr run on containerd 2.3.4 + runc, manager mount style, directory mode', mountStyle: 'manager', containerd: c2.options });
  ctrRunScenario({
    title: 'ctr run on containerd 2.3.4 + runc, manager mount style, block mode (64 MiB ext4)',
    mountStyle: 'manager',
    blockSize: 64 << 20,
    containerd: c2.options,
  });
}
