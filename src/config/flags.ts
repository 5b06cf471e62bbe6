/**
 * The command-line flags shared by `serve` and `config dump` (both must agree
 * on what the effective configuration is).
 */
import { parseArgs } from 'node:util';
import type { ConfigOverrides, LoadOptions } from './load';
import { ConfigError } from './load';

export const CONFIG_FLAGS_USAGE = [
  '  --config PATH               config file (default /etc/erofs-vmdk/config.toml; a missing default file is fine)',
  '  --address PATH              unix socket to serve on (key: address)',
  '  --root DIR                  state directory (key: root)',
  '  --log-level LEVEL           trace|debug|info|warn|error|fatal|silent (key: log_level)',
  '  --metrics-address ADDR      Prometheus endpoint, "host:port" or a unix socket path (key: metrics_address)',
  '  --backend NAME              embedded|remote (key: backend)',
  '  --remote-address PATH       upstream snapshotter socket (key: remote.address)',
  '  --remote-snapshotter NAME   upstream snapshotter name put in requests (key: remote.snapshotter)',
].join('\n');

export function parseConfigFlags(argv: string[]): LoadOptions & { positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        address: { type: 'string' },
        root: { type: 'string' },
        'log-level': { type: 'string' },
        'metrics-address': { type: 'string' },
        backend: { type: 'string' },
        'remote-address': { type: 'string' },
        'remote-snapshotter': { type: 'string' },
      },
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const v = parsed.values;
  const overrides: ConfigOverrides = {
    address: v.address,
    root: v.root,
    log_level: v['log-level'],
    metrics_address: v['metrics-address'],
    backend: v.backend,
    remote: { address: v['remote-address'], snapshotter: v['remote-snapshotter'] },
  };
  return { configPath: v.config, overrides, positionals: parsed.positionals };
}
