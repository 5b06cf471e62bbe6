/**
 * The guest kernel: Debian 13 (trixie) linux-image 6.12, which has EROFS flat
 * device mode (mount one block device made of fsmeta + blobs, no device=).
 *
 * It is fetched with `apt-get download` through a TEMPORARY apt configuration
 * (own sources.list, state, cache and lists under the cache folder) and
 * unpacked with `dpkg -x`. The system's apt sources and state are never read
 * or changed. Once unpacked, a run only reads the cache: no network.
 *
 * Concurrency: several test files may boot VMs at once. Each fetch works in a
 * private temp dir and publishes the unpacked tree with one rename; the loser
 * of a race throws its copy away and uses the winner's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/atomic/write-file-atomic';
import { publishDir, TempApt, unpackDeb, withFetchLock } from '../debian-apt';

/** `cloud-amd64` is Debian's VM kernel: ext4, virtio-pci and crc32c built in, 35 MB instead of 108 MB. */
export const DEFAULT_FLAVOUR = 'cloud-amd64';
const SUITE = 'trixie';
const LABEL = 'guest kernel';

export interface GuestKernel {
  /** Debian package the kernel came from, e.g. linux-image-6.12.117+deb13-cloud-amd64. */
  packageName: string;
  version: string;
  /** `uname -r` of the guest, e.g. 6.12.117+deb13-cloud-amd64. */
  release: string;
  vmlinuz: string;
  /** <root>/usr/lib/modules/<release> */
  modulesDir: string;
  /** The kernel's build configuration (boot/config-<release>). */
  config: string;
}

export function defaultCacheDir(): string {
  const fromEnv = process.env.EROFS_VMDK_VM_CACHE;
  if (fromEnv) return path.resolve(fromEnv);
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'erofs-vmdk', 'vm');
}

function pointerFile(cacheDir: string, flavour: string): string {
  return path.join(cacheDir, `kernel-${flavour}.json`);
}

/** Returns the cached kernel, fetching it first when absent (or when `refresh`). */
export function ensureGuestKernel(
  cacheDir: string,
  options: { flavour?: string; refresh?: boolean; log?: (line: string) => void } = {},
): GuestKernel {
  const flavour = options.flavour ?? DEFAULT_FLAVOUR;
  if (!/^[a-z0-9-]+$/.test(flavour)) throw new Error(`guest kernel: invalid flavour ${JSON.stringify(flavour)}`);
  fs.mkdirSync(cacheDir, { recursive: true });
  if (!options.refresh) {
    const cached = readCachedKernel(cacheDir, flavour);
    if (cached) return cached;
  }
  const log = options.log ?? (() => {});
  // One fetch at a time per cache folder (test files boot VMs in parallel on a fresh machine).
  return withFetchLock(path.join(cacheDir, `.fetch-${flavour}.lock`), LABEL, () => {
    // Another process may have fetched it while we waited for the lock.
    const fresh = options.refresh ? undefined : readCachedKernel(cacheDir, flavour);
    if (fresh) return fresh;
    log(`guest kernel: fetching linux-image-${flavour} from Debian ${SUITE} into ${cacheDir}`);
    const kernel = fetchKernel(cacheDir, flavour);
    writeFileAtomic(pointerFile(cacheDir, flavour), `${JSON.stringify(kernel, null, 2)}\n`);
    log(`guest kernel: ${kernel.packageName} ${kernel.version}`);
    return kernel;
  });
}

function readCachedKernel(cacheDir: string, flavour: string): GuestKernel | undefined {
  let kernel: GuestKernel;
  try {
    kernel = JSON.parse(fs.readFileSync(pointerFile(cacheDir, flavour), 'utf8')) as GuestKernel;
  } catch {
    return undefined;
  }
  // The pointer is only trusted if what it points at is still there (a cache
  // folder can be pruned by hand).
  if (![kernel.vmlinuz, kernel.modulesDir, kernel.config].every((p) => typeof p === 'string' && fs.existsSync(p))) {
    return undefined;
  }
  return kernel;
}

function fetchKernel(cacheDir: string, flavour: string): GuestKernel {
  const work = fs.mkdtempSync(path.join(cacheDir, '.fetch-'));
  try {
    const apt = new TempApt(path.join(work, 'apt'), SUITE, LABEL);
    apt.update();
    // The meta package (linux-image-cloud-amd64) names the current ABI package.
    const meta = `linux-image-${flavour}`;
    const depends = apt.show(meta).match(/^Depends: (linux-image-[^ ,]+)/m);
    if (!depends) throw new Error(`guest kernel: ${meta} in ${SUITE} has no linux-image dependency`);
    const packageName = depends[1];
    const version = apt.version(packageName);
    const [deb] = apt.download([packageName], path.join(work, 'deb'));
    const unpacked = path.join(work, 'root');
    unpackDeb(LABEL, deb, unpacked);
    const release = packageName.replace(/^linux-image-/, '');
    const finalRoot = path.join(cacheDir, 'kernels', `${packageName}_${version}`);
    publishDir(unpacked, finalRoot); // another process may have published the same version first; then theirs is used
    const kernel: GuestKernel = {
      packageName,
      version,
      release,
      vmlinuz: path.join(finalRoot, 'boot', `vmlinuz-${release}`),
      modulesDir: path.join(finalRoot, 'usr', 'lib', 'modules', release),
      config: path.join(finalRoot, 'boot', `config-${release}`),
    };
    for (const p of [kernel.vmlinuz, kernel.modulesDir, kernel.config]) {
      if (!fs.existsSync(p)) throw new Error(`guest kernel: ${packageName} has no ${p}`);
    }
    return kernel;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
