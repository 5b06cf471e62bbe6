/**
 * A private containerd for end-to-end tests: temp root, state, sockets and
 * config, with proxy_plugins pointing the snapshotter names at a snapshotter
 * socket (our daemon). The CRI plugin is disabled (no CNI needed); tasks run
 * with runc (Debian's) through containerd-shim-runc-v2.
 *
 * Two kinds:
 *  - Debian's containerd 1.6 from PATH (default): config version 2;
 *  - a containerd 2.x static build (`binDir`, see hack/containerd2.ts): config
 *    version 3, its own `ctr` and shim (binDir is put in front of containerd's
 *    PATH, so its shim is found before Debian's), NRI disabled, proxy plugins with
 *    `exports.root` and `capabilities = ["rebase"]`, and the transfer service's
 *    `unpack_config` naming `unpackDiffer` (e.g. "erofs") for every proxy name.
 *
 * `env` is given to containerd (hence its shims, mount helpers and differs) and
 * to every `ctr` (which mounts the rootfs itself in `ctr run`), e.g.
 * EROFS_VMDK_CONFIG for the host mount helper; `pathPrefix` only to containerd.
 *
 *   const c = await startContainerd({ snapshotterSocket: daemon.socket });
 *   try {
 *     await c.ctr(['images', 'import', '--snapshotter', 'erofs-vmdk-host', archive]);
 *     const { stdout } = await c.ctr(['run', '--rm', '--snapshotter', 'erofs-vmdk-host', image, 'c1', '/bin/cat', '/etc/issue']);
 *   } finally {
 *     await c.close();   // kills its shims, stops containerd, unmounts leftovers, deletes the temp dir
 *   }
 *
 * `c.ctr(args)` runs `ctr --address <socket> --namespace <ns> ...args` (namespace
 * default `c.namespace`, "e2e-<random>") and rejects with stdout/stderr in the message on a non-zero exit.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findContainerd2, findTrixieErofsUtils } from '../../hack/containerd2';
import { type DaemonOptions, startDaemon, type TestDaemon, unmountUnder } from './daemon';

export interface ContainerdOptions {
  /** Socket of the proxy snapshotter (our daemon). */
  snapshotterSocket: string;
  /** containerd snapshotter names to register as proxy plugins. */
  proxyNames?: string[];
  /** How long to wait for containerd to answer (default 20 s). */
  startTimeoutMs?: number;
  /** Directory of a containerd 2.x build (containerd, ctr, containerd-shim-runc-v2); default: Debian's 1.6 from PATH. */
  binDir?: string;
  /** Extra environment of containerd and of ctr. */
  env?: Record<string, string>;
  /** Directories put in front of containerd's PATH (not ctr's), e.g. a newer mkfs.erofs for the EROFS differ. */
  pathPrefix?: string[];
  /** containerd 2.x: `exports.root` of the proxy plugins (the snapshotter's root). */
  snapshotterRoot?: string;
  /** containerd 2.x: differ of the transfer service's unpack_config for every proxy name (e.g. "erofs"). */
  unpackDiffer?: string;
}

export interface CtrResult {
  stdout: string;
  stderr: string;
}

/** The test's PATH plus the sbin dirs where mount.fuse (/usr/sbin) and the host mount helper (/usr/local/sbin) live: containerd's and ctr's PATH. */
export function hostPath(): string {
  const dirs = (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':').filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(':');
}

export function haveContainerd(binaries = ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2']): { ok: boolean; missing: string[] } {
  const missing = binaries.filter(
    (b) => !(process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => fs.existsSync(path.join(d, b))),
  );
  return { ok: missing.length === 0, missing };
}

export class TestContainerd {
  /** 2 (Debian's 1.6) or 3 (containerd 2.x). */
  readonly configVersion: 2 | 3;
  /** The `ctr` matching this containerd (ctr() uses it unless told otherwise). */
  readonly ctrPath: string;
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly socket: string;
  readonly configPath: string;
  /** Default namespace of ctr(): unique per instance, so runc's state dir /run/containerd/runc/<ns> is ours to remove. */
  readonly namespace: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';

  constructor(private readonly options: ContainerdOptions) {
    // Short paths: unix socket names are limited to 107 bytes.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctd-'));
    this.root = path.join(this.dir, 'root');
    this.state = path.join(this.dir, 'state');
    this.socket = path.join(this.dir, 'c.sock');
    this.configPath = path.join(this.dir, 'config.toml');
    this.namespace = `e2e-${path.basename(this.dir).slice('ctd-'.length).toLowerCase()}`;
    this.configVersion = options.binDir ? 3 : 2;
    this.ctrPath = options.binDir ? path.join(options.binDir, 'ctr') : 'ctr';
    const names = options.proxyNames ?? ['erofs-vmdk', 'erofs-vmdk-host'];
    const q = (s: string) => JSON.stringify(s);
    const common = [
      `root = ${q(this.root)}`,
      `state = ${q(this.state)}`,
      '[grpc]',
      `  address = ${q(this.socket)}`,
      '[ttrpc]',
      `  address = ${q(`${this.socket}.ttrpc`)}`,
      '[debug]',
      `  address = ${q(path.join(this.dir, 'debug.sock'))}`,
      '  level = "info"',
    ];
    const lines =
      this.configVersion === 2
        ? [
            'version = 2',
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            ...common,
            '[proxy_plugins]',
            ...names.flatMap((n) => [`  [proxy_plugins.${q(n)}]`, '    type = "snapshot"', `    address = ${q(options.snapshotterSocket)}`]),
          ]
        : [
            'version = 3',
            // No CRI (no CNI here); no NRI (its socket is host-wide, /var/run/nri/nri.sock).
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]',
            ...common,
            '[proxy_plugins]',
            ...names.flatMap((n) => [
              `  [proxy_plugins.${q(n)}]`,
              '    type = "snapshot"',
              `    address = ${q(options.snapshotterSocket)}`,
              ...(options.snapshotterRoot ? [`    exports = { root = ${q(options.snapshotterRoot)} }`] : []),
              '    capabilities = ["rebase"]',
            ]),
            ...(options.unpackDiffer
              ? names.flatMap((n) => [
                  "[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]",
                  `  platform = ${q(`linux/${({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch}`)}`,
                  `  snapshotter = ${q(n)}`,
                  `  differ = ${q(options.unpackDiffer!)}`,
                ])
              : []),
          ];
    lines.push('');
    fs.writeFileSync(this.configPath, lines.join('\n'));
  }

  logs(): string {
    return this.output;
  }

  async start(): Promise<void> {
    const { binDir, pathPrefix = [] } = this.options;
    const PATH = [...pathPrefix, ...(binDir ? [binDir] : []), hostPath()].join(':');
    const child = spawn(binDir ? path.join(binDir, 'containerd') : 'containerd', ['--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.options.env, PATH },
    });
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let exited = false;
    void this.exited.then(() => (exited = true));
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    for (;;) {
      if (exited) throw new Error(`containerd exited during start-up:\n${this.output.slice(-4000)}`);
      try {
        await this.ctr(['version'], { timeoutMs: 2000 });
        return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`containerd did not answer within the start timeout:\n${this.output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Runs ctr against this containerd. `ctr` picks the binary: default this containerd's own
   * (ctrPath); 'debian' = Debian's 1.6 ctr, whose `snapshots mounts` prints the raw mount
   * list (ctr 2.2+ activates the mounts first).
   */
  ctr(args: string[], opts: { namespace?: string; timeoutMs?: number; ctr?: 'own' | 'debian' } = {}): Promise<CtrResult> {
    const full = ['--address', this.socket, '--namespace', opts.namespace ?? this.namespace, ...args];
    const binary = opts.ctr === 'debian' ? (fs.existsSync('/usr/bin/ctr') ? '/usr/bin/ctr' : 'ctr') : this.ctrPath;
    return new Promise((resolve, reject) => {
      execFile(binary, full, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, env: { ...process.env, ...this.options.env, PATH: hostPath() } }, (err, stdout, stderr) => {
        if (err) reject(new Error(`ctr ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${stdout}\n${stderr}`));
        else resolve({ stdout, stderr });
      });
    });
  }

  /** Pids of shims serving this containerd (their command line names our socket). */
  private shimPids(): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (cmdline[0]?.endsWith('containerd-shim-runc-v2') && cmdline.includes(this.socket)) pids.push(Number(entry));
      } catch {
        /* exited */
      }
    }
    return pids;
  }

  /** Kills this containerd's shims (by pid), stops containerd, unmounts leftovers, deletes the temp dir. */
  async close(): Promise<void> {
    for (const pid of this.shimPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (this.child && this.exited) {
      const child = this.child;
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.kill('SIGTERM');
      await this.exited;
      clearTimeout(timer);
    }
    unmountUnder(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
    // runc keeps per-namespace state under /run/containerd/runc; ours is empty once the tasks are gone.
    try {
      fs.rmdirSync(path.join('/run/containerd/runc', this.namespace));
    } catch {
      /* never created, or not empty */
    }
  }
}

export async function startContainerd(options: ContainerdOptions): Promise<TestContainerd> {
  const c = new TestContainerd(options);
  try {
    await c.start();
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

/**
 * containerd 2.3.4 (hack/containerd2.ts) as options for startContainerd /
 * startDaemonWithContainerd, or why the 2.x tests skip: neither binaries in
 * $EROFS_VMDK_CONTAINERD2 (or /opt/containerd-2.3.4) nor the tarball. It is an
 * `error` (the tests must fail, not skip) when the tarball is there but was not
 * extracted, or when Debian 13's erofs-utils are missing (the EROFS differ needs
 * `mkfs.erofs --tar`): hack/install-deps.sh does both, tests never download.
 */
export function containerd2Options():
  | { skip: string }
  | { error: string }
  | { options: Pick<ContainerdOptions, 'binDir' | 'pathPrefix' | 'unpackDiffer'> } {
  const found = findContainerd2();
  if (!found.ok) return found.installable ? { error: found.reason } : { skip: found.reason };
  const erofsUtils = findTrixieErofsUtils();
  if (!erofsUtils.ok) return { error: erofsUtils.reason };
  return { options: { binDir: found.binDir, pathPrefix: [erofsUtils.wrapperDir], unpackDiffer: 'erofs' } };
}

/**
 * The usual end-to-end arrangement: our daemon with the embedded backend and a
 * private containerd whose proxy plugins point at it. A missing containerd or
 * runc fails the caller (hack/install-deps.sh installs them), never skips it.
 *
 * containerd (its shims, mount.fuse and so the host mount helper) and ctr get
 * EROFS_VMDK_CONFIG = the daemon's config file, so the helper trusts the daemon's
 * root. `daemon` options are passed to startDaemon (e.g. `config: { embedded:
 * { mount_style: 'manager', default_size } }`), `containerd` ones to startContainerd
 * (e.g. containerd2Options().options).
 */
export async function startDaemonWithContainerd(
  options: { daemon?: DaemonOptions; containerd?: Partial<Omit<ContainerdOptions, 'snapshotterSocket'>> } = {},
): Promise<{ daemon: TestDaemon; containerd: TestContainerd; close(): Promise<void> }> {
  // A containerd 2.x build brings containerd, ctr and the shim; runc always comes from Debian.
  const have = haveContainerd(options.containerd?.binDir ? ['runc'] : undefined);
  if (!have.ok) throw new Error(`missing ${have.missing.join(', ')}: hack/install-deps.sh installs Debian's containerd and runc`);
  const daemon = await startDaemon({ backend: 'embedded', logLevel: 'info', ...options.daemon });
  let containerd: TestContainerd;
  try {
    containerd = await startContainerd({
      snapshotterRoot: daemon.root,
      ...options.containerd,
      env: { EROFS_VMDK_CONFIG: daemon.configPath, ...options.containerd?.env },
      snapshotterSocket: daemon.socket,
    });
  } catch (err) {
    await daemon.close();
    throw err;
  }
  return {
    daemon,
    containerd,
    async close() {
      await containerd.close();
      await daemon.close();
    },
  };
}

/** Parses `ctr snapshots mounts <target> <key>` output ("mount -t T SRC TARGET -o OPTS" lines). */
export function parseCtrMounts(stdout: string): { type: string; source: string; options: string[] }[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('mount '))
    .map((line) => {
      const words = line.split(/\s+/);
      const type = words[words.indexOf('-t') + 1];
      // Options may contain spaces (templates such as "{{ mount 0 }}"): everything after " -o ".
      const oi = line.indexOf(' -o ');
      const options = oi >= 0 ? line.slice(oi + 4).split(',') : [];
      const source = words[words.indexOf('-t') + 2];
      return { type, source, options };
    });
}
