/**
 * Loading the effective configuration: flags > config file > defaults.
 * Every error names the offending key and where it came from (the file path
 * or the flag), so an operator can fix it without reading code.
 */
import * as fs from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { type Config, configSchema, DEFAULT_CONFIG_PATH, defaultConfig } from './schema';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Values given on the command line (already typed by the flag parser). */
export interface ConfigOverrides {
  address?: string;
  root?: string;
  log_level?: string;
  metrics_address?: string;
  backend?: string;
  remote?: { address?: string; snapshotter?: string };
}

export interface LoadOptions {
  /** Path given with --config; undefined = the default path, which may be absent. */
  configPath?: string;
  overrides?: ConfigOverrides;
  /** Where to look when configPath is not given (tests point this elsewhere). */
  defaultConfigPath?: string;
}

export interface LoadedConfig {
  config: Config;
  /** The file actually read, or undefined when none was (default path absent). */
  file: string | undefined;
}

const shape = configSchema.shape;
/** The file may set any subset of keys; unknown keys are errors (typos must not be ignored). */
const fileSchema = z.strictObject({
  address: shape.address.optional(),
  root: shape.root.optional(),
  log_level: shape.log_level.optional(),
  metrics_address: shape.metrics_address.optional(),
  backend: shape.backend.optional(),
  shutdown_timeout_ms: shape.shutdown_timeout_ms.optional(),
  host_mount_roots: shape.host_mount_roots.optional(),
  remote: shape.remote.partial().optional(),
  embedded: shape.embedded.partial().optional(),
  profiles: shape.profiles.optional(),
});
type FileConfig = z.infer<typeof fileSchema>;

/** Flag spelling of each overridable key, for error messages. */
const flagNames: Record<string, string> = {
  address: '--address',
  root: '--root',
  log_level: '--log-level',
  metrics_address: '--metrics-address',
  backend: '--backend',
  'remote.address': '--remote-address',
  'remote.snapshotter': '--remote-snapshotter',
};

export function formatIssues(issues: z.core.$ZodIssue[], where: (key: string) => string): string {
  const lines: string[] = [];
  for (const issue of issues) {
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) lines.push(`${where(base ? `${base}.${k}` : k)}: unknown key`);
    } else {
      lines.push(`${where(base || '(top level)')}: ${issue.message}`);
    }
  }
  return lines.join('\n');
}

function readConfigFile(file: string, explicit: boolean): FileConfig | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The default path is optional: a host with no config file runs on defaults.
    if (code === 'ENOENT' && !explicit) return undefined;
    throw new ConfigError(`config file ${file}: cannot read it: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: invalid TOML: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(formatIssues(parsed.error.issues, (key) => `config file ${file}: key "${key}"`));
  }
  return parsed.data;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** defaults <- file <- flags. Sub-tables merge key by key; [profiles] replaces the default set. */
function merge(base: Config, layer: FileConfig | ConfigOverrides): Record<string, unknown> {
  const { remote, embedded, profiles, ...top } = layer as FileConfig;
  return {
    ...base,
    ...stripUndefined(top),
    remote: { ...base.remote, ...stripUndefined(remote ?? {}) },
    embedded: { ...base.embedded, ...stripUndefined(embedded ?? {}) },
    profiles: profiles ?? base.profiles,
  };
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const explicit = options.configPath !== undefined;
  const file = options.configPath ?? options.defaultConfigPath ?? DEFAULT_CONFIG_PATH;
  const fromFile = readConfigFile(file, explicit);
  const withFile = fromFile ? merge(defaultConfig(), fromFile) : defaultConfig();

  // Validate the file's contribution alone first so errors blame the file, not the flags.
  const fileResult = configSchema.safeParse(withFile);
  const overrides = options.overrides ?? {};
  const withFlags = merge((fileResult.success ? fileResult.data : withFile) as Config, overrides);
  const result = configSchema.safeParse(withFlags);
  if (!result.success) {
    const source = (key: string) => {
      const flag = flagNames[key];
      const fromFlag = flag !== undefined && key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], overrides) !== undefined;
      if (fromFlag) return `flag ${flag} (key "${key}")`;
      return fromFile ? `config file ${file}: key "${key}"` : `configuration key "${key}" (defaults${explicit ? '' : `; no file at ${file}`})`;
    };
    throw new ConfigError(formatIssues(result.error.issues, source));
  }
  return { config: result.data, file: fromFile ? file : undefined };
}
