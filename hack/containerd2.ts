/**
 * containerd 2.3.4 for the tests (test/e2e-ctr-run), next to Debian 12's 1.6:
 *
 *  - the static build `containerd-2.3.4-linux-amd64-static.tar.xz` (containerd, ctr,
 *    containerd-shim-runc-v2; see /work/shared/containerd/README.md) is extracted into
 *    `$EROFS_VMDK_CONTAINERD2` (default /opt/containerd-2.3.4) after its SHA256SUMS are checked;
 *    the tarball is `$EROFS_VMDK_CONTAINERD2_TARBALL`, else <repo>/../shared/containerd/<name>;
 *  - its EROFS differ needs `mkfs.erofs --tar` (erofs-utils >= 1.6; Debian 12 has 1.5):
 *    Debian 13's erofs-utils and the libraries it needs (glibc 2.38+) are fetched with
 *    `apt-get download` through a temporary apt configuration (hack/debian-apt.ts), unpacked
 *    into `~/.cache/erofs-vmdk/erofs-utils-trixie` (`$EROFS_VMDK_EROFS_UTILS_CACHE`), and a
 *    wrapper dir holds a `mkfs.erofs` script running it through Debian 13's own
 *    `ld-linux-x86-64.so.2 --library-path …`. Only the 2.3.4 containerd gets that dir in front
 *    of its PATH; the daemon keeps Debian's mkfs.erofs 1.5.
 *
 *   node dist/hack/containerd2.js install   # both steps (hack/install-deps.sh runs it); network once
 *   node dist/hack/containerd2.js status    # what the tests would use, or why they skip
 *
 * Tests use findContainerd2() and findTrixieErofsUtils(), which never download.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { publishDir, run, TempApt, unpackDeb, withFetchLock } from './debian-apt';

export const CONTAINERD2_VERSION = '2.3.4';
export const CONTAINERD2_ENV = 'EROFS_VMDK_CONTAINERD2';
export const CONTAINERD2_TARBALL_ENV = 'EROFS_VMDK_CONTAINERD2_TARBALL';
export const CONTAINERD2_DEFAULT_DIR = `/opt/containerd-${CONTAINERD2_VERSION}`;
const TARBALL_NAME = `containerd-${CONTAINERD2_VERSION}-linux-amd64-static.tar.xz`;
const BINARIES = ['containerd', 'ctr', 'containerd-shim-runc-v2'] as const;

/** Where the binaries are: `dir` itself or `dir/bin` (undefined when neither holds all three). */
function binDir(dir: string): string | undefined {
  return [dir, path.join(dir, 'bin')].find((d) => BINARIES.every((b) => fs.existsSync(path.join(d, b))));
}

export function containerd2Dir(): string {
  return process.env[CONTAINERD2_ENV] || CONTAINERD2_DEFAULT_DIR;
}

export function containerd2Tarball(): string {
  return process.env[CONTAINERD2_TARBALL_ENV] || path.resolve(__dirname, '..', '..', '..', 'shared', 'containerd', TARBALL_NAME);
}

export type Found<T> = ({ ok: true } & T) | { ok: false; reason: string };

/**
 * The 2.3.4 binaries: `$EROFS_VMDK_CONTAINERD2` when set (it must hold them), else
 * /opt/containerd-2.3.4. Never downloads nor extracts. `installable`: they are
 * missing but the tarball is there (hack/install-deps.sh would extract it).
 */
export function findContainerd2(): Found<{ binDir: string }> & { installable?: boolean } {
  const fromEnv = process.env[CONTAINERD2_ENV];
  const dir = containerd2Dir();
  const bins = fs.existsSync(dir) ? binDir(dir) : undefined;
  if (bins) return { ok: true, binDir: bins };
  const tarball = containerd2Tarball();
  const where = fromEnv ? `${CONTAINERD2_ENV}=${fromEnv}` : `${CONTAINERD2_DEFAULT_DIR} (${CONTAINERD2_ENV} is not set)`;
  if (fs.existsSync(tarball)) {
    return {
      ok: false,
      installable: true,
      reason: `containerd ${CONTAINERD2_VERSION}: no ${BINARIES.join(', ')} in ${where}, but ${tarball} exists: run hack/install-deps.sh to extract it`,
    };
  }
  return {
    ok: false,
    reason: `containerd ${CONTAINERD2_VERSION}: no ${BINARIES.join(', ')} in ${where}, and no tarball at ${tarball} (${CONTAINERD2_TARBALL_ENV})`,
  };
}

/** Checks the tarball against the SHA256SUMS file next to it and extracts it into `dest` (one rename). */
export function installContainerd2(tarball: string, dest: string, log: (l: string) => void = () => {}): string {
  const existing = fs.existsSync(dest) ? binDir(dest) : undefined;
  if (existing) return existing;
  if (fs.existsSync(dest) && fs.readdirSync(dest).length > 0) {
    throw new Error(`containerd ${CONTAINERD2_VERSION}: ${dest} exists but lacks ${BINARIES.join(', ')}; remove it or point ${CONTAINERD2_ENV} elsewhere`);
  }
  const sums = path.join(path.dirname(tarball), 'SHA256SUMS');
  if (!fs.existsSync(sums)) throw new Error(`containerd ${CONTAINERD2_VERSION}: ${sums} missing, cannot verify ${tarball}`);
  const name = path.basename(tarball);
  const expected = fs
    .readFileSync(sums, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+\*?/))
    .find(([, f]) => f === name)?.[0];
  if (!expected) throw new Error(`containerd ${CONTAINERD2_VERSION}: ${sums} has no line for ${name}`);
  const actual = createHash('sha256').update(fs.readFileSync(tarball)).digest('hex');
  if (actual !== expected) throw new Error(`containerd ${CONTAINERD2_VERSION}: ${tarball} has SHA-256 ${actual}, ${sums} says ${expected}`);
  log(`containerd ${CONTAINERD2_VERSION}: extracting ${tarball} into ${dest}`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const temp = fs.mkdtempSync(path.join(path.dirname(dest), `.${path.basename(dest)}-`));
  try {
    run('containerd2', 'tar', ['-xJf', tarball, '-C', temp]);
    if (!binDir(temp)) throw new Error(`containerd ${CONTAINERD2_VERSION}: ${tarball} does not contain ${BINARIES.join(', ')}`);
    fs.chmodSync(temp, 0o755);
    if (fs.existsSync(dest)) fs.rmdirSync(dest); // empty (checked above)
    publishDir(temp, dest);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
  const bins = binDir(dest);
  if (!bins) throw new Error(`containerd ${CONTAINERD2_VERSION}: extraction into ${dest} failed`);
  return bins;
}

// ---- Debian 13's erofs-utils ----

const SUITE = 'trixie';
const LABEL = 'erofs-utils (Debian 13)';

export function erofsUtilsCacheDir(): string {
  const fromEnv = process.env.EROFS_VMDK_EROFS_UTILS_CACHE;
  if (fromEnv) return path.resolve(fromEnv);
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'erofs-vmdk', 'erofs-utils-trixie');
}

/** `<cache>/current` → `<version>/`, which holds `root/` (dpkg -x of every package) and `bin/mkfs.erofs` (the wrapper). */
function currentLink(cacheDir: string): string {
  return path.join(cacheDir, 'current');
}

/** True when `wrapperDir/mkfs.erofs --help` mentions `--tar=` (what containerd's differ checks). */
function supportsTar(wrapperDir: string): boolean {
  try {
    const out = execFileSync(path.join(wrapperDir, 'mkfs.erofs'), ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.includes('--tar=');
  } catch (err) {
    const e = err as { stdout?: string };
    return typeof e.stdout === 'string' && e.stdout.includes('--tar=');
  }
}

/**
 * The wrapper dir (holding `mkfs.erofs`) from the cache, checked to run and to
 * support `--tar`. Never downloads.
 */
export function findTrixieErofsUtils(cacheDir = erofsUtilsCacheDir()): Found<{ wrapperDir: string; version: string }> {
  let target: string;
  try {
    target = fs.readlinkSync(currentLink(cacheDir));
  } catch {
    return { ok: false, reason: `Debian 13 erofs-utils not in ${cacheDir}: run hack/install-deps.sh (fetches it once with apt-get download)` };
  }
  const wrapperDir = path.join(cacheDir, target, 'bin');
  if (!supportsTar(wrapperDir)) {
    return { ok: false, reason: `${wrapperDir}/mkfs.erofs does not run or lacks --tar; delete ${cacheDir} and run hack/install-deps.sh` };
  }
  return { ok: true, wrapperDir, version: target };
}

/** Fetches Debian 13's erofs-utils into the cache when absent; returns the wrapper dir. */
export function ensureTrixieErofsUtils(cacheDir = erofsUtilsCacheDir(), log: (l: string) => void = () => {}): string {
  const found = findTrixieErofsUtils(cacheDir);
  if (found.ok) return found.wrapperDir;
  fs.mkdirSync(cacheDir, { recursive: true });
  return withFetchLock(path.join(cacheDir, '.fetch.lock'), LABEL, () => {
    const again = findTrixieErofsUtils(cacheDir);
    if (again.ok) return again.wrapperDir;
    log(`${LABEL}: fetching erofs-utils and its libraries from Debian ${SUITE} into ${cacheDir}`);
    const work = fs.mkdtempSync(path.join(cacheDir, '.fetch-'));
    try {
      const apt = new TempApt(path.join(work, 'apt'), SUITE, LABEL);
      apt.update();
      const version = apt.version('erofs-utils');
      // erofs-utils and the closure of its Depends (libc6, liblz4-1, libzstd1, libselinux1, …).
      const packages: string[] = [];
      const queue = ['erofs-utils'];
      while (queue.length > 0) {
        const p = queue.shift()!;
        if (packages.includes(p)) continue;
        packages.push(p);
        if (packages.length > 40) throw new Error(`${LABEL}: dependency closure of erofs-utils unexpectedly large: ${packages.join(' ')}`);
        queue.push(...apt.depends(p).filter((d) => !packages.includes(d)));
      }
      log(`${LABEL}: ${packages.join(' ')}`);
      const debs = apt.download(packages, path.join(work, 'deb'));
      const staged = path.join(work, 'out');
      const root = path.join(staged, 'root');
      for (const deb of debs) unpackDeb(LABEL, deb, root);
      const final = path.join(cacheDir, version);
      writeWrapper(path.join(staged, 'bin'), root, final);
      // Check the unpacked tree before publishing it: every library resolves inside it.
      const loader = loaderPath(root);
      const list = run(LABEL, loader, ['--library-path', libraryPath(root), '--list', path.join(root, 'usr', 'bin', 'mkfs.erofs')]);
      if (/not found/.test(list)) throw new Error(`${LABEL}: unresolved libraries:\n${list}`);
      publishDir(staged, final);
      const link = currentLink(cacheDir);
      const tmpLink = `${link}.${process.pid}`;
      fs.rmSync(tmpLink, { force: true });
      fs.symlinkSync(version, tmpLink);
      fs.renameSync(tmpLink, link);
      const done = findTrixieErofsUtils(cacheDir);
      if (!done.ok) throw new Error(done.reason);
      log(`${LABEL}: ${version} ready, wrapper dir ${done.wrapperDir}`);
      return done.wrapperDir;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}

function loaderPath(root: string): string {
  const candidates = ['usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 'usr/lib64/ld-linux-x86-64.so.2'].map((p) =>
    path.join(root, p),
  );
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`${LABEL}: no ld-linux-x86-64.so.2 in the unpacked libc6 (${root})`);
  return found;
}

function libraryPath(root: string): string {
  return ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu'].map((p) => path.join(root, p)).join(':');
}

/** Writes `<binDir>/mkfs.erofs`; paths inside name `finalDir` (where the tree is published), not the staging dir. */
function writeWrapper(binDir: string, stagedRoot: string, finalDir: string): void {
  const finalRoot = path.join(finalDir, 'root');
  const rel = (p: string) => path.join(finalRoot, path.relative(stagedRoot, p));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  fs.mkdirSync(binDir, { recursive: true });
  const script = [
    '#!/bin/sh',
    `# Debian ${SUITE}'s mkfs.erofs, run with its own dynamic loader and libraries (written by hack/containerd2.ts).`,
    `exec ${q(rel(loaderPath(stagedRoot)))} --library-path ${q(libraryPath(finalRoot))} --argv0 mkfs.erofs ${q(path.join(finalRoot, 'usr', 'bin', 'mkfs.erofs'))} "$@"`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(binDir, 'mkfs.erofs'), script, { mode: 0o755 });
}

// ---- CLI ----

function main(argv: string[]): number {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  const cmd = argv[0] ?? 'status';
  if (cmd === 'install') {
    const dest = containerd2Dir();
    const tarball = containerd2Tarball();
    const have = fs.existsSync(dest) ? binDir(dest) : undefined;
    if (!have && !fs.existsSync(tarball)) {
      log(`containerd ${CONTAINERD2_VERSION}: neither ${dest} nor ${tarball}: the containerd 2.x tests will skip`);
      return 0;
    }
    const bins = have ?? installContainerd2(tarball, dest, log);
    log(`containerd ${CONTAINERD2_VERSION}: ${bins}`);
    ensureTrixieErofsUtils(erofsUtilsCacheDir(), log);
    return 0;
  }
  if (cmd === 'status') {
    const c = findContainerd2();
    const e = findTrixieErofsUtils();
    process.stdout.write(`${JSON.stringify({ containerd2: c, erofsUtils: e }, null, 2)}\n`);
    return c.ok && e.ok ? 0 : 1;
  }
  log('usage: containerd2 install | status');
  return 2;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
