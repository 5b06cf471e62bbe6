/**
 * Fetching packages of another Debian release without touching the system's apt:
 * `apt-get download` through a TEMPORARY apt configuration (own sources.list,
 * state, cache and lists in a work folder) and `dpkg -x` to unpack. Used for
 * Debian 13's guest kernel (hack/vm/guest-kernel.ts) and Debian 13's
 * erofs-utils (hack/containerd2.ts).
 *
 *   const apt = new TempApt(path.join(work, 'apt'), 'trixie', 'guest kernel');
 *   apt.update();
 *   const debs = apt.download(['erofs-utils'], debDir);
 *   for (const deb of debs) unpackDeb(deb, root);
 *
 * Callers that share a cache folder serialize with withFetchLock() and publish
 * what they unpacked with one rename.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Runs a command; a failure throws `<label>: <cmd> <args> failed: <stderr>` (apt's Dir:: options left out). */
export function run(label: string, cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${label}: ${cmd} ${args.filter((a) => !a.startsWith('Dir::')).join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** An apt confined to `dir` (nothing of the system's apt state is read or changed), for one suite of Debian main, amd64. */
export class TempApt {
  readonly options: string[];

  constructor(
    readonly dir: string,
    readonly suite: string,
    /** Prefix of error messages, e.g. "guest kernel". */
    readonly label: string,
  ) {
    if (!fs.existsSync(DEBIAN_KEYRING)) throw new Error(`${label}: ${DEBIAN_KEYRING} missing (install debian-archive-keyring)`);
    for (const d of ['sources.list.d', 'preferences.d', 'state/lists/partial', 'cache/archives/partial']) {
      fs.mkdirSync(path.join(dir, d), { recursive: true });
    }
    fs.writeFileSync(path.join(dir, 'sources.list'), `deb [signed-by=${DEBIAN_KEYRING}] ${DEBIAN_MIRROR} ${suite} main\n`);
    fs.writeFileSync(path.join(dir, 'state', 'status'), '');
    const o = (k: string, v: string) => ['-o', `${k}=${v}`];
    this.options = [
      ...o('Dir::Etc::sourcelist', path.join(dir, 'sources.list')),
      ...o('Dir::Etc::sourceparts', path.join(dir, 'sources.list.d')),
      ...o('Dir::Etc::preferences', path.join(dir, 'preferences')),
      ...o('Dir::Etc::preferencesparts', path.join(dir, 'preferences.d')),
      ...o('Dir::State', path.join(dir, 'state')),
      ...o('Dir::State::status', path.join(dir, 'state', 'status')),
      ...o('Dir::Cache', path.join(dir, 'cache')),
      ...o('APT::Architecture', 'amd64'),
      ...o('APT::Architectures', 'amd64'),
      ...o('Acquire::Languages', 'none'),
      // apt drops privileges to _apt for downloads; _apt cannot write into a
      // root-owned cache folder, and we do not want to chown it.
      ...o('APT::Sandbox::User', 'root'),
      '-qq',
    ];
  }

  update(): void {
    run(this.label, 'apt-get', [...this.options, 'update']);
  }

  /** `apt-cache show --no-all-versions <pkg>` (the candidate's control record). */
  show(pkg: string): string {
    return run(this.label, 'apt-cache', [...this.options, 'show', '--no-all-versions', pkg]);
  }

  /** The candidate version of `pkg`. */
  version(pkg: string): string {
    const v = this.show(pkg).match(/^Version: (\S+)/m)?.[1];
    if (!v) throw new Error(`${this.label}: no version for ${pkg} in ${this.suite}`);
    return v;
  }

  /** Package names of the Depends/Pre-Depends of `pkg` (first alternative of each, version constraints dropped). */
  depends(pkg: string): string[] {
    const record = this.show(pkg);
    const names: string[] = [];
    for (const field of ['Pre-Depends', 'Depends']) {
      const line = record.match(new RegExp(`^${field}: (.*)$`, 'm'))?.[1];
      if (!line) continue;
      for (const dep of line.split(',')) {
        const name = dep.split('|')[0].trim().split(/[\s(:]/)[0];
        if (name && !names.includes(name)) names.push(name);
      }
    }
    return names;
  }

  /** `apt-get download` of the packages into `destDir`; returns the .deb paths (one per package, in order). */
  download(pkgs: string[], destDir: string): string[] {
    fs.mkdirSync(destDir, { recursive: true });
    run(this.label, 'apt-get', [...this.options, 'download', ...pkgs], destDir);
    const debs = fs.readdirSync(destDir).filter((f) => f.endsWith('.deb'));
    return pkgs.map((p) => {
      const deb = debs.find((f) => f.startsWith(`${p}_`));
      if (!deb) throw new Error(`${this.label}: apt-get download ${p} produced no .deb`);
      return path.join(destDir, deb);
    });
  }
}

/** `dpkg -x <deb> <root>` (files only, no maintainer scripts). */
export function unpackDeb(label: string, deb: string, root: string): void {
  fs.mkdirSync(root, { recursive: true });
  run(label, 'dpkg', ['-x', deb, root]);
}

const LOCK_STALE_MS = 10 * 60 * 1000;

/**
 * One fetch at a time per lock (test files may fetch in parallel on a fresh
 * machine). The lock is a directory; one left by a killed process is taken
 * over once it is older than any fetch takes.
 */
export function withFetchLock<T>(lock: string, label: string, body: () => T): T {
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
      else if (Date.now() > deadline) throw new Error(`${label}: ${lock} is held by another fetch for too long`);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    return body();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** Moves `from` to `to` with one rename; when another process published `to` first, keeps theirs (and deletes nothing). */
export function publishDir(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  try {
    fs.renameSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
}
