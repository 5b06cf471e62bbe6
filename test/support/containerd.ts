/**
 * A private containerd (Debian's 1.6 here, any 1.6+ works) for end-to-end
 * tests: temp root, state, sockets and config, with proxy_plugins pointing
 * the snapshotter names at a snapshotter socket (our daemon). The CRI plugin
 * is disabled (no CNI needed); tasks run with runc through
 * containerd-shim-runc-v2.
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
import { startDaemon, type TestDaemon, unmountUnder } from './daemon';

export interface ContainerdOptions {
  /** Socket of the proxy snapshotter (our daemon). */
  snapshotterSocket: string;
  /** containerd snapshotter names to register as proxy plugins. */
  proxyNames?: string[];
  /** How long to wait for containerd to answer (default 20 s). */
  startTimeoutMs?: number;
}

export interface CtrResult {
  stdout: string;
  stderr: string;
}

export function haveContainerd(): { ok: boolean; missing: string[] } {
  const missing = ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2'].filter(
    (b) => !(process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => fs.existsSync(path.join(d, b))),
  );
  return { ok: missing.length === 0, missing };
}

export class TestContainerd {
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
    const names = options.proxyNames ?? ['erofs-vmdk', 'erofs-vmdk-host'];
    const q = (s: string) => JSON.stringify(s);
    const lines = [
      'version = 2',
      `root = ${q(this.root)}`,
      `state = ${q(this.state)}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${q(this.socket)}`,
      '[ttrpc]',
      `  address = ${q(`${this.socket}.ttrpc`)}`,
      '[debug]',
      `  address = ${q(path.join(this.dir, 'debug.sock'))}`,
      '  level = "info"',
      '[proxy_plugins]',
      ...names.flatMap((n) => [`  [proxy_plugins.${q(n)}]`, '    type = "snapshot"', `    address = ${q(options.snapshotterSocket)}`]),
      '',
    ];
    fs.writeFileSync(this.configPath, lines.join('\n'));
  }

  logs(): string {
    return this.output;
  }

  async start(): Promise<void> {
    const child = spawn('containerd', ['--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  ctr(args: string[], opts: { namespace?: string; timeoutMs?: number } = {}): Promise<CtrResult> {
    const full = ['--address', this.socket, '--namespace', opts.namespace ?? this.namespace, ...args];
    return new Promise((resolve, reject) => {
      execFile('ctr', full, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
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
 * The usual end-to-end arrangement: our daemon with the embedded backend and a
 * private containerd whose proxy plugins point at it. A missing containerd or
 * runc fails the caller (hack/install-deps.sh installs them), never skips it.
 */
export async function startDaemonWithContainerd(): Promise<{ daemon: TestDaemon; containerd: TestContainerd; close(): Promise<void> }> {
  const have = haveContainerd();
  if (!have.ok) throw new Error(`missing ${have.missing.join(', ')}: hack/install-deps.sh installs Debian's containerd and runc`);
  const daemon = await startDaemon({ backend: 'embedded', logLevel: 'info' });
  let containerd: TestContainerd;
  try {
    containerd = await startContainerd({ snapshotterSocket: daemon.socket });
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
