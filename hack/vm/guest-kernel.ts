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
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/atomic/write-file-atomic';

/** `cloud-amd64` is Debian's VM kernel: ext4, virtio-pci and crc32c built in, 35 MB instead of 108 MB. */
export const DEFAULT_FLAVOUR = 'cloud-amd64';
const SUITE = 'trixie';
const MIRROR = 'http://deb.debian.org/debian';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

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
  return withFetchLock(cacheDir, flavour, () => {
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

const LOCK_STALE_MS = 10 * 60 * 1000;

/**
 * One fetch at a time per cache folder (test files boot VMs in parallel on a
 * fresh machine). The lock is a directory; one left by a killed process is
 * taken over once it is older than any fetch takes.
 */
function withFetchLock<T>(cacheDir: string, flavour: string, body: () => T): T {
  const lock = path.join(cacheDir, `.fetch-${flavour}.lock`);
  const deadline = Date.now() + LOCK_STALE_MS;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lock).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      if (age > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`guest kernel: ${lock} is held by another fetch for too long`);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    return body();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
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

/** apt-get/apt-cache options that confine apt to `aptDir` (nothing of the system's apt state is used). */
function aptOptions(aptDir: string): string[] {
  const o = (k: string, v: string) => ['-o', `${k}=${v}`];
  return [
    ...o('Dir::Etc::sourcelist', path.join(aptDir, 'sources.list')),
    ...o('Dir::Etc::sourceparts', path.join(aptDir, 'sources.list.d')),
    ...o('Dir::Etc::preferences', path.join(aptDir, 'preferences')),
    ...o('Dir::Etc::preferencesparts', path.join(aptDir, 'preferences.d')),
    ...o('Dir::State', path.join(aptDir, 'state')),
    ...o('Dir::State::status', path.join(aptDir, 'state', 'status')),
    ...o('Dir::Cache', path.join(aptDir, 'cache')),
    ...o('APT::Architecture', 'amd64'),
    ...o('APT::Architectures', 'amd64'),
    ...o('Acquire::Languages', 'none'),
    // apt drops privileges to _apt for downloads; _apt cannot write into a
    // root-owned cache folder, and we do not want to chown it.
    ...o('APT::Sandbox::User', 'root'),
    '-qq',
  ];
}

function prepareAptDir(aptDir: string): void {
  for (const dir of ['sources.list.d', 'preferences.d', 'state/lists/partial', 'cache/archives/partial']) {
    fs.mkdirSync(path.join(aptDir, dir), { recursive: true });
  }
  fs.writeFileSync(path.join(aptDir, 'sources.list'), `deb [signed-by=${KEYRING}] ${MIRROR} ${SUITE} main\n`);
  fs.writeFileSync(path.join(aptDir, 'state', 'status'), '');
}

function sh(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`guest kernel: ${cmd} ${args.filter((a) => !a.startsWith('Dir::')).join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

function fetchKernel(cacheDir: string, flavour: string): GuestKernel {
  if (!fs.existsSync(KEYRING)) throw new Error(`guest kernel: ${KEYRING} missing (install debian-archive-keyring)`);
  const work = fs.mkdtempSync(path.join(cacheDir, '.fetch-'));
  try {
    const aptDir = path.join(work, 'apt');
    prepareAptDir(aptDir);
    const opts = aptOptions(aptDir);
    sh('apt-get', [...opts, 'update']);
    // The meta package (linux-image-cloud-amd64) names the current ABI package.
    const meta = `linux-image-${flavour}`;
    const depends = sh('apt-cache', [...opts, 'show', '--no-all-versions', meta]).match(/^Depends: (linux-image-[^ ,]+)/m);
    if (!depends) throw new Error(`guest kernel: ${meta} in ${SUITE} has no linux-image dependency`);
    const packageName = depends[1];
    const version = sh('apt-cache', [...opts, 'show', '--no-all-versions', packageName]).match(/^Version: (\S+)/m)?.[1];
    if (!version) throw new Error(`guest kernel: no version for ${packageName}`);
    const debDir = path.join(work, 'deb');
    fs.mkdirSync(debDir);
    sh('apt-get', [...opts, 'download', packageName], debDir);
    const deb = fs.readdirSync(debDir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`guest kernel: apt-get download ${packageName} produced no .deb`);
    const unpacked = path.join(work, 'root');
    sh('dpkg', ['-x', path.join(debDir, deb), unpacked]);
    const release = packageName.replace(/^linux-image-/, '');
    const finalRoot = path.join(cacheDir, 'kernels', `${packageName}_${version}`);
    fs.mkdirSync(path.dirname(finalRoot), { recursive: true });
    try {
      fs.renameSync(unpacked, finalRoot);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another process published the same version first; use theirs.
    }
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
