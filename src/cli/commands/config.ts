import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const configCommand: Command = {
  name: 'config',
  summary: '(config: not built yet)',
  usage: 'erofs-vmdk config (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk config: not built yet\n');
    return 2;
  },
};
