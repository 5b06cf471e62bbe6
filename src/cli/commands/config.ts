import { CONFIG_FLAGS_USAGE, ConfigError, loadConfig, parseConfigFlags, renderConfigToml, renderReferenceToml } from '../../config';
import type { Command } from '../command';
import { EXIT_ERROR, EXIT_OK } from '../command';

const usage = `Usage:
  erofs-vmdk config default            print the full reference config.toml (all keys, defaults, comments)
  erofs-vmdk config dump [options]     print the effective configuration (defaults < file < flags)
  erofs-vmdk config check [options]    validate; exit 0 when valid, 2 with the errors otherwise

Options (dump, check; the same as "erofs-vmdk serve"):
${CONFIG_FLAGS_USAGE}`;

export const configCommand: Command = {
  name: 'config',
  summary: 'print the reference configuration or the effective one',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    try {
      switch (sub) {
        case 'default':
          if (rest.length > 0) throw new ConfigError(`config default takes no arguments (got ${JSON.stringify(rest[0])})`);
          process.stdout.write(renderReferenceToml());
          return EXIT_OK;
        case 'dump':
        case 'check': {
          const options = parseConfigFlags(rest);
          if (options.positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(options.positionals[0])}`);
          const { config, file } = loadConfig(options);
          if (sub === 'check') {
            process.stdout.write(`configuration is valid (file: ${file ?? 'none, defaults and flags only'})\n`);
          } else {
            process.stdout.write(`# effective erofs-vmdk configuration (file: ${file ?? 'none'})\n${renderConfigToml(config)}`);
          }
          return EXIT_OK;
        }
        default:
          process.stderr.write(`erofs-vmdk config: ${sub === undefined ? 'missing sub-command' : `unknown sub-command ${JSON.stringify(sub)}`}\n${usage}\n`);
          return EXIT_ERROR;
      }
    } catch (err) {
      process.stderr.write(`erofs-vmdk config: ${(err as Error).message}\n`);
      return EXIT_ERROR;
    }
  },
};
