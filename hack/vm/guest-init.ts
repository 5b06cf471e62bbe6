/**
 * Renders the guest's /init (busybox sh) and the initramfs around it.
 *
 * The init mounts the image disk as EROFS with NO device= options (flat
 * mode), composes the root the way the mount list says (tmpfs or ext4 upper
 * under overlayfs), runs the command in a chroot, and prints the result on
 * the serial console between markers that carry a per-run nonce, so nothing
 * the command prints can fake them. stdout/stderr are base64-encoded on the
 * console: kernel CRLF translation and binary output survive byte for byte.
 */
import * as fs from 'node:fs';
import { buildCpio, type CpioEntry } from './cpio';
import type { GuestModule } from './guest-modules';
import type { GuestPlan } from './mount-list';

/** virtio-blk serial numbers the guest looks disks up by (no reliance on probe order). */
export const IMAGE_DISK_SERIAL = 'erofs-vmdk-image';
export const UPPER_DISK_SERIAL = 'erofs-vmdk-upper';

export type ExecMode = 'chroot' | 'initramfs';

export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('command arguments cannot contain NUL');
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Shell helpers shared by every init script (vm-run's and bench-vm's). */
export function initPrelude(nonce: string, modules: GuestModule[]): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Kernel messages would interleave with our markers on the same console.
echo 1 >/proc/sys/kernel/printk
N=${shellQuote(nonce)}
mark() { echo "$N:MARK $1 $(cut -d' ' -f1 /proc/uptime)"; }
die() { echo "$N:FAIL $*"; dmesg | tail -n 8 | sed "s/^/$N:DMESG /"; sync; poweroff -f; sleep 5; }
# disk_by_serial SERIAL: waits up to 10 s for the virtio disk with that serial.
# Shell builtins only (read, no cat): a fork costs milliseconds under TCG.
disk_by_serial() {
  i=0
  while [ $i -lt 1000 ]; do
    for d in /sys/block/vd*; do
      [ -e "$d/serial" ] || continue
      read -r s <"$d/serial"
      if [ "$s" = "$1" ]; then echo "/dev/\${d##*/}"; return 0; fi
    done
    usleep 10000; i=$((i + 1))
  done
  return 1
}
mark kernel-up
${modules.map((m) => `insmod /lib/modules/${m.name}.ko || die "insmod ${m.name} failed"`).join('\n')}
mark modules-loaded
`;
}

function upperScript(plan: GuestPlan): { script: string; overlayUpper?: { upper: string; work: string } } {
  const upper = plan.upper;
  if (upper.kind === 'none') return { script: '' };
  if (upper.kind === 'tmpfs') {
    return {
      script: `mount -t tmpfs -o mode=0755 tmpfs /mnt/upper || die "tmpfs upper"
mkdir -p /mnt/upper/upper /mnt/upper/work
`,
      overlayUpper: { upper: '/mnt/upper/upper', work: '/mnt/upper/work' },
    };
  }
  const up = `/mnt/upper/${upper.upperSubdir}`;
  const work = `/mnt/upper/${upper.workSubdir}`;
  // Without the mkdir/ transformer the dirs must already exist in the image.
  const mkdir = plan.mkdirUpper ? `mkdir -p ${shellQuote(up)} ${shellQuote(work)} || die "mkdir upper/work"\n` : '';
  return {
    script: `UPPERDEV=$(disk_by_serial ${UPPER_DISK_SERIAL}) || die "virtio disk ${UPPER_DISK_SERIAL} did not appear"
mount -t ext4 "$UPPERDEV" /mnt/upper || die "mount -t ext4 $UPPERDEV failed"
${mkdir}`,
    overlayUpper: { upper: up, work },
  };
}

/** A chrooted command expects /proc, /sys and /dev; only where the image has the folders (never created). */
const chrootMounts = `for fs in proc sys dev; do
  [ -d "$ROOT/$fs" ] || continue
  case $fs in proc) mount -t proc proc "$ROOT/proc";; sys) mount -t sysfs sysfs "$ROOT/sys";; dev) mount -t devtmpfs devtmpfs "$ROOT/dev";; esac
done
`;

/** The whole /init for a vm-run boot. */
export function renderInit(options: {
  nonce: string;
  modules: GuestModule[];
  plan: GuestPlan;
  command: string[];
  exec: ExecMode;
}): string {
  const { plan } = options;
  const upper = upperScript(plan);
  let rootfs: string;
  if (upper.overlayUpper) {
    const opts = [`lowerdir=/mnt/image`, `upperdir=${upper.overlayUpper.upper}`, `workdir=${upper.overlayUpper.work}`, ...plan.overlayOptions];
    rootfs = `mount -t overlay overlay -o ${shellQuote(opts.join(','))} /rootfs || die "mount -t overlay failed"\nROOT=/rootfs\n`;
  } else {
    rootfs = `ROOT=/mnt/image\n`;
  }
  const command = options.command.map(shellQuote).join(' ');
  const run =
    options.exec === 'chroot'
      ? `chroot "$ROOT" ${command}`
      : `(cd "$ROOT" && ROOTFS="$ROOT" exec ${command})`;
  return `${initPrelude(options.nonce, options.modules)}
IMG=$(disk_by_serial ${IMAGE_DISK_SERIAL}) || die "virtio disk ${IMAGE_DISK_SERIAL} did not appear"
# Flat mode: one block device holds fsmeta and every layer blob; no device= options.
mount -t erofs -o ro "$IMG" /mnt/image || die "mount -t erofs -o ro $IMG failed"
mark erofs-mounted
${upper.script}${rootfs}mark rootfs-ready
${options.exec === 'chroot' ? chrootMounts : ''}echo "$N:BEGIN"
${run} </dev/null >/run/out 2>/run/err
rc=$?
mark command-done
echo "$N:STDOUT"
base64 /run/out
echo "$N:STDERR"
base64 /run/err
echo "$N:END $rc"
for fs in dev sys proc; do umount "$ROOT/$fs" 2>/dev/null; done
[ "$ROOT" = /rootfs ] && umount /rootfs
umount /mnt/upper 2>/dev/null
umount /mnt/image
sync
poweroff -f
sleep 5
`;
}

/** The initramfs: busybox-static, the decompressed modules, and the init script. */
export function buildInitramfs(init: string, modules: GuestModule[], busybox = '/bin/busybox'): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'run', 'mnt', 'mnt/image', 'mnt/upper', 'rootfs', 'lib', 'lib/modules', 'tmp'].map(
      (p): CpioEntry => ({ kind: 'dir', path: p }),
    ),
    { kind: 'file', path: 'bin/busybox', data: fs.readFileSync(busybox), mode: 0o755 },
    ...modules.map((m): CpioEntry => ({ kind: 'file', path: `lib/modules/${m.name}.ko`, data: m.data })),
    { kind: 'file', path: 'init', data: init, mode: 0o755 },
  ];
  return buildCpio(entries);
}

/** busybox-static's binary (Debian installs it as /bin/busybox). The initramfs has no libc: it must be static. */
export function findBusybox(): string {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) {
    if (!fs.existsSync(candidate)) continue;
    // A dynamic executable names its loader (PT_INTERP) near the start of the file.
    const head = Buffer.alloc(4096);
    const fd = fs.openSync(candidate, 'r');
    try {
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (head.includes('/ld-linux')) throw new Error(`${candidate} is dynamically linked: install busybox-static`);
    return candidate;
  }
  throw new Error('busybox not found: install busybox-static');
}
