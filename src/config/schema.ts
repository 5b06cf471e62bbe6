/**
 * The daemon's configuration: one zod schema that is the single source of
 * truth for validation, for the typed defaults and for the commented
 * reference file printed by `erofs-vmdk config default` (every key carries a
 * description, see reference.ts).
 */
import * as path from 'node:path';
import { z } from 'zod';

const absolutePath = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .refine((p) => path.isAbsolute(p), `${what} must be an absolute path`)
    .refine((p) => !p.includes('\0'), `${what} must not contain NUL bytes`);

/** "" (off), "host:port" / "[v6]:port", or an absolute unix socket path. */
export const metricsAddressSchema = z
  .string()
  .refine(
    (a) => a === '' || path.isAbsolute(a) || /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(a),
    'must be "" (off), "host:port" or an absolute unix socket path',
  );

export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const profileSchema = z
  .strictObject({
    rewrite: z
      .boolean()
      .describe('true: container root filesystems get one disk-backed mount (VM runtimes); false: mounts pass through unchanged (runc, debugging)'),
    contract: z
      .union([z.literal(1), z.literal(2)], { message: 'must be 1 or 2' })
      .default(2)
      .describe(
        'mount contract of rewritten root filesystems: 2 = one `fuse.erofs-vmdk-mount` entry that containerd can also mount on the host (ctr run, CRI) through the erofs-vmdk-mount helper; 1 = the `vmdk` entry, for VM runtimes that only know it (the host cannot mount it)',
      ),
  })
  .describe('one containerd proxy plugin name served by this daemon');

const remoteSchema = z
  .strictObject({
    address: z
      .string()
      .refine((a) => a === '' || path.isAbsolute(a), 'must be an absolute unix socket path')
      .describe('unix socket of the upstream snapshotter (required when backend = "remote")'),
    snapshotter: z
      .string()
      .describe('snapshotter name put in the `snapshotter` field of every request sent upstream ("" leaves it empty)'),
    connect_timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(60_000)
      .describe('how long a call waits for the upstream connection before failing with Unavailable (milliseconds)'),
    call_timeout_ms: z
      .number()
      .int()
      .min(0)
      .describe('deadline of each call sent upstream in milliseconds; 0 = no deadline (containerd sets none either)'),
    mounts_cache_ttl_ms: z
      .number()
      .int()
      .min(0)
      .max(3_600_000)
      .describe(
        'how long an upstream Mounts answer is reused without asking again (milliseconds; 0 = ask every time). Changes made through this daemon and a lost upstream connection forget answers at once; the limit only bounds changes made behind its back',
      ),
  })
  .describe('the remote backend: another snapshotter process reached over gRPC');

const embeddedSchema = z
  .strictObject({
    mount_style: z
      .enum(['manager', 'legacy'])
      .describe('"legacy": containerd < 2.2 (lowers mounted on the host, a plain overlay); "manager": containerd >= 2.2 mount-manager mounts (erofs lowers + format/mkdir/overlay)'),
    default_size: z
      .number()
      .int()
      .min(0)
      .describe('size in bytes of the ext4 writable layer of active snapshots (block mode, "manager" style only); 0 = directory upperdir'),
  })
  .describe('the embedded backend: an EROFS snapshotter inside this daemon');

export const configSchema = z
  .strictObject({
    address: absolutePath('address').describe('unix socket the Snapshots gRPC service listens on (containerd proxy_plugins address)'),
    root: absolutePath('root').describe('state directory: descriptors, private fsmeta copies, state.db, embedded snapshots'),
    log_level: z.enum(logLevels).describe('log level of the JSON logs on stderr (trace, debug, info, warn, error, fatal, silent)'),
    metrics_address: metricsAddressSchema.describe('Prometheus metrics endpoint: "" = off, "host:port" or an absolute unix socket path'),
    backend: z.enum(['embedded', 'remote']).describe('where snapshots live: "embedded" (in this daemon) or "remote" (another snapshotter, see [remote])'),
    shutdown_timeout_ms: z
      .number()
      .int()
      .min(0)
      .describe('on SIGTERM/SIGINT, how long in-flight calls may take to finish before they are cancelled (milliseconds)'),
    host_mount_roots: z
      .array(absolutePath('host_mount_roots entry'))
      .describe(
        'directories besides `root` whose files the host mount helper (erofs-vmdk-mount) may mount: with backend = "remote", the upstream snapshotter\'s root (its layer blobs are named in descriptors)',
      ),
    remote: remoteSchema,
    embedded: embeddedSchema,
    profiles: z
      .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'profile names are containerd plugin names: letters, digits, ".", "_", "-"'), profileSchema)
      .refine((p) => Object.keys(p).length > 0, 'at least one profile is needed')
      .describe('proxy plugin names served (the request\'s `snapshotter` field); a [profiles] table in the file replaces the default set'),
  })
  .superRefine((c, ctx) => {
    if (c.backend === 'remote' && c.remote.address === '') {
      ctx.addIssue({ code: 'custom', path: ['remote', 'address'], message: 'is required when backend = "remote"' });
    }
    // Legacy mounts are plain overlays mounted by runc on the host: there is no mkfs/ step to make a block layer.
    if (c.embedded.mount_style === 'legacy' && c.embedded.default_size > 0) {
      ctx.addIssue({ code: 'custom', path: ['embedded', 'default_size'], message: 'block mode (default_size > 0) needs mount_style = "manager"' });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ProfileConfig = Config['profiles'][string];

export const DEFAULT_CONFIG_PATH = '/etc/erofs-vmdk/config.toml';

export function defaultConfig(): Config {
  return {
    address: '/run/erofs-vmdk/erofs-vmdk.sock',
    root: '/var/lib/erofs-vmdk',
    log_level: 'info',
    metrics_address: '',
    backend: 'embedded',
    shutdown_timeout_ms: 10_000,
    host_mount_roots: [],
    remote: { address: '', snapshotter: '', connect_timeout_ms: 1500, call_timeout_ms: 0, mounts_cache_ttl_ms: 10_000 },
    embedded: { mount_style: 'legacy', default_size: 0 },
    profiles: {
      'erofs-vmdk': { rewrite: true, contract: 2 },
      'erofs-vmdk-host': { rewrite: false, contract: 2 },
    },
  };
}
