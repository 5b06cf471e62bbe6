import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const serveCommand: Command = {
  name: 'serve',
  summary: '(serve: not built yet)',
  usage: 'erofs-vmdk serve (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk serve: not built yet\n');
    return 2;
  },
};
