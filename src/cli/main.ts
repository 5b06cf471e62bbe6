import type { Command } from './command';
import { EXIT_ERROR, EXIT_OK } from './command';
import { configCommand } from './commands/config';
import { inspectCommand } from './commands/inspect';
import { mergeCommand } from './commands/merge';
import { serveCommand } from './commands/serve';
import { versionCommand } from './commands/version';
import { vmdkCommand } from './commands/vmdk';

const commands: Command[] = [serveCommand, vmdkCommand, mergeCommand, inspectCommand, configCommand, versionCommand];

function topLevelHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'erofs-vmdk: containerd proxy snapshotter giving VM runtimes one flat EROFS disk (VMDK descriptor) per container',
    '',
    'Usage: erofs-vmdk <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run "erofs-vmdk <command> --help" for the options of a command.',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topLevelHelp());
    return EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`erofs-vmdk: unknown command "${name}"\n${topLevelHelp()}`);
    return EXIT_ERROR;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return EXIT_OK;
  }
  return command.run(rest);
}
