import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const vmdkCommand: Command = {
  name: 'vmdk',
  summary: '(vmdk: not built yet)',
  usage: 'erofs-vmdk vmdk (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk vmdk: not built yet\n');
    return 2;
  },
};
