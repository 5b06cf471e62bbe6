import pino from 'pino';
import { CONFIG_FLAGS_USAGE, ConfigError, loadConfig, parseConfigFlags } from '../../config';
import { startDaemon } from '../../server/daemon';
import type { Command } from '../command';
import { EXIT_ERROR, EXIT_OK } from '../command';

const usage = `Usage: erofs-vmdk serve [options]

Serves containerd.services.snapshots.v1.Snapshots (and grpc.health.v1.Health) on a
unix socket for containerd's proxy_plugins. Flags override the config file, which
overrides the defaults ("erofs-vmdk config default" prints them all).
SIGTERM/SIGINT: stop accepting calls, let in-flight calls finish (bounded by
shutdown_timeout_ms), exit 0; a second signal ends the process at once. All
state under --root is kept.

Options:
${CONFIG_FLAGS_USAGE}`;

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the proxy snapshotter daemon (gRPC on a unix socket)',
  usage,
  async run(argv) {
    let loaded;
    try {
      const options = parseConfigFlags(argv);
      if (options.positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(options.positionals[0])}`);
      loaded = loadConfig(options);
    } catch (err) {
      process.stderr.write(`erofs-vmdk serve: ${(err as Error).message}\n`);
      return EXIT_ERROR;
    }
    const { config, file } = loaded;
    // JSON lines on stderr, buffered (a synchronous write per line would sit on
    // every RPC's path: the proxy logs one info line per rewrite) and flushed
    // synchronously whenever the process exits, so nothing is lost.
    const destination = pino.destination({ fd: 2, sync: false });
    process.once('exit', () => destination.flushSync());
    const logger = pino({ level: config.log_level, base: { pid: process.pid } }, destination);
    logger.info({ config_file: file ?? null, address: config.address }, 'starting erofs-vmdk');
    const signal = waitForSignal();
    let daemon;
    try {
      daemon = await startDaemon(config, logger);
    } catch (err) {
      logger.fatal({ error: (err as Error).message }, 'start-up failed');
      process.stderr.write(`erofs-vmdk serve: ${(err as Error).message}\n`);
      return EXIT_ERROR;
    }
    const received = await signal;
    logger.info({ signal: received }, 'shutting down');
    await daemon.stop();
    return EXIT_OK;
  },
};
