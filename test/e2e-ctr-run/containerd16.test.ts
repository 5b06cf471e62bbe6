/**
 * `ctr run` on Debian's containerd 1.6 + runc with the `erofs-vmdk` (rewrite)
 * snapshotter, embedded backend in legacy mount style (the daemon's default):
 * containerd's mount code hands the contract-v2 mount (`fuse.erofs-vmdk-mount`)
 * to mount.fuse, which runs the host mount helper. Scenario: scenario.ts.
 */
import { ctrRunScenario } from './scenario';

ctrRunScenario({ title: 'ctr run on containerd 1.6 + runc, legacy mount style, directory mode', mountStyle: 'legacy' });
