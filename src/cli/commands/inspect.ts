import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const inspectCommand: Command = {
  name: 'inspect',
  summary: '(inspect: not built yet)',
  usage: 'erofs-vmdk inspect (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk inspect: not built yet\n');
    return 2;
  },
};
