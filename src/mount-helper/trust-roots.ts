/**
 * The helper's trust roots: erofs-vmdk's `root` and `host_mount_roots`, read
 * from the daemon's config file ($EROFS_VMDK_CONFIG, else
 * /etc/erofs-vmdk/config.toml). Every file or directory the helper is asked to
 * use must resolve (symlinks followed) strictly inside one of them.
 *
 * Only those two keys are read; other keys are the daemon's business and are
 * ignored. smol-toml is required lazily, only when a file exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { refuse, show } from './errors';

export const DEFAULT_CONFIG_PATH = '/etc/erofs-vmdk/config.toml';
export const DEFAULT_ROOT = '/var/lib/erofs-vmdk';
export const CONFIG_ENV = 'EROFS_VMDK_CONFIG';

export interface TrustConfig {
  /** The file read, or undefined when the default path does not exist. */
  file: string | undefined;
  root: string;
  hostMountRoots: string[];
}

export interface TrustRoots {
  config: TrustConfig;
  /** realpath of `root`, or undefined when it does not exist. */
  root: string | undefined;
  /** realpaths of every existing root, `root` first. */
  all: string[];
}

function configError(file: string, message: string): never {
  return refuse(`config ${file}: ${message}`);
}

function absoluteSetting(file: string, key: string, value: unknown): string {
  if (typeof value !== 'string') configError(file, `${key} must be a string`);
  if (value === '' || !path.isAbsolute(value)) configError(file, `${key} must be an absolute path, got ${show(value)}`);
  if (value.includes('\0')) configError(file, `${key} must not contain NUL bytes`);
  return value;
}

export function loadTrustConfig(env: NodeJS.ProcessEnv = process.env): TrustConfig {
  const fromEnv = env[CONFIG_ENV];
  const file = fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The default file is optional; a file named explicitly must exist (a typo must not pass silently).
    if (code === 'ENOENT' && file === DEFAULT_CONFIG_PATH && fromEnv !== file) {
      return { file: undefined, root: DEFAULT_ROOT, hostMountRoots: [] };
    }
    return configError(file, `cannot read it (${code ?? String(err)})${fromEnv ? ` (named by ${CONFIG_ENV})` : ''}`);
  }
  let doc: Record<string, unknown>;
  try {
    // Lazy: only hosts with a config file pay for the TOML parser.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const toml = require('smol-toml') as typeof import('smol-toml');
    doc = toml.parse(text) as Record<string, unknown>;
  } catch (err) {
    return configError(file, `not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const root = doc.root === undefined ? DEFAULT_ROOT : absoluteSetting(file, 'root', doc.root);
  let hostMountRoots: string[] = [];
  if (doc.host_mount_roots !== undefined) {
    if (!Array.isArray(doc.host_mount_roots)) configError(file, 'host_mount_roots must be an array of absolute paths');
    hostMountRoots = doc.host_mount_roots.map((v, i) => absoluteSetting(file, `host_mount_roots[${i}]`, v));
  }
  return { file, root, hostMountRoots };
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

/** realpaths of the configured roots; roots that do not exist trust nothing. */
export function resolveTrustRoots(config: TrustConfig): TrustRoots {
  const root = realpathOrUndefined(config.root);
  const all: string[] = [];
  for (const r of [config.root, ...config.hostMountRoots]) {
    const real = realpathOrUndefined(r);
    if (real !== undefined && !all.includes(real)) all.push(real);
  }
  return { config, root, all };
}

/** Syntax every path we are given must have: absolute, no `..`, no control characters. */
export function checkPathSyntax(p: string, what: string): void {
  if (p === '') refuse(`${what} is empty`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) refuse(`${what} ${show(p)} contains a control character`);
  if (!path.isAbsolute(p)) refuse(`${what} ${show(p)} is not an absolute path`);
  if (p.split('/').includes('..')) refuse(`${what} ${show(p)} has a ".." component`);
}

export function isInside(real: string, root: string): boolean {
  return root === '/' ? real !== '/' : real.startsWith(root + '/');
}

function describeRoots(roots: TrustRoots): string {
  const configured = [roots.config.root, ...roots.config.hostMountRoots];
  return `the trust roots (${configured.join(', ')}${roots.config.file ? ` from ${roots.config.file}` : ''})`;
}

function checkInside(given: string, real: string, what: string, roots: TrustRoots): void {
  if (!roots.all.some((r) => isInside(real, r))) {
    const resolved = real === given ? '' : ` (resolves to ${show(real)})`;
    refuse(`${what} ${show(given)}${resolved} is outside ${describeRoots(roots)}`);
  }
}

/** The realpath of an existing `p` strictly inside a trust root, or a refusal naming `what`. */
export function resolveTrusted(p: string, what: string, roots: TrustRoots): string {
  checkPathSyntax(p, what);
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return refuse(`${what} ${show(p)} ${code === 'ENOENT' ? 'does not exist' : `cannot be resolved (${code})`}`);
  }
  checkInside(p, real, what, roots);
  return real;
}

/**
 * Like resolveTrusted for a file that may not exist yet: its directory must
 * resolve inside a trust root. Returns the real path it has or would have,
 * and whether it exists.
 */
export function resolveTrustedMaybeMissing(p: string, what: string, roots: TrustRoots): { real: string; exists: boolean } {
  checkPathSyntax(p, what);
  try {
    fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      return refuse(`${what} ${show(p)} cannot be examined (${(err as NodeJS.ErrnoException).code})`);
    }
    const base = path.basename(p);
    if (base === '' || base === '.' || p.endsWith('/')) refuse(`${what} ${show(p)} does not name a file`);
    let dir: string;
    try {
      dir = fs.realpathSync(path.dirname(p));
    } catch (e) {
      return refuse(`${what} ${show(p)}: its directory cannot be resolved (${(e as NodeJS.ErrnoException).code})`);
    }
    const real = path.join(dir, base);
    checkInside(p, real, what, roots);
    return { real, exists: false };
  }
  return { real: resolveTrusted(p, what, roots), exists: true };
}
