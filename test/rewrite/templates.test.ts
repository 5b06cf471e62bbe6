import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renumberTemplates, TemplateError } from '../../src/rewrite';

// Mounts 1..3 collapse into one mount at 1; there were 6 mounts (0..5) before.
const run = { start: 1, end: 3 };
const total = 6;

describe('renumberTemplates (run 1..3 of 6 mounts collapses to mount 1)', () => {
  const cases: [string, string, string][] = [
    ['no template is returned unchanged', '/var/lib/x/upper', '/var/lib/x/upper'],
    ['mount before the run keeps its index (exact text kept)', 'upperdir={{mount 0}}/upper', 'upperdir={{mount 0}}/upper'],
    ['overlay spanning exactly the run becomes one mount', 'lowerdir={{ overlay 1 3 }}', 'lowerdir={{ mount 1 }}'],
    ['reversed overlay spanning the run becomes one mount', 'lowerdir={{ overlay 3 1 }}', 'lowerdir={{ mount 1 }}'],
    ['overlay containing the run shrinks around it', 'lowerdir={{ overlay 0 4 }}', 'lowerdir={{ overlay 0 2 }}'],
    ['reversed overlay containing the run shrinks around it', 'lowerdir={{ overlay 5 0 }}', 'lowerdir={{ overlay 3 0 }}'],
    ['overlay after the run shifts down', 'x={{ overlay 4 5 }}', 'x={{ overlay 2 3 }}'],
    ['mount after the run shifts down', '{{ mount 4 }}/upper', '{{ mount 2 }}/upper'],
    ['source/target after the run shift down', '{{ source 5 }}:{{ target 4 }}', '{{ source 3 }}:{{ target 2 }}'],
    ['trim markers and extra spaces are understood', '{{-  mount   5  -}}', '{{ mount 3 }}'],
    ['several actions in one string', 'a={{ mount 0 }},b={{ mount 4 }}', 'a={{ mount 0 }},b={{ mount 2 }}'],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.equal(renumberTemplates(input, run, total), expected));
  }

  const refusals: [string, string, RegExp][] = [
    ['one layer of a longer run', '{{ mount 2 }}', /one mount of the rewritten erofs run/],
    ['the source of a layer mount', '{{ source 1 }}', /one mount of the rewritten erofs run/],
    ['an overlay covering part of the run', '{{ overlay 2 4 }}', /only part of the rewritten erofs run/],
    ['an index past the end', '{{ mount 6 }}', /only 6 mounts/],
    ['an action containerd does not emit', '{{ printf "%d" 1 }}', /not one containerd emits/],
    ['an unterminated action', 'lowerdir={{ mount 0 }:x', /unterminated/],
  ];
  for (const [name, input, message] of refusals) {
    it(`refuses ${name}`, () => assert.throws(() => renumberTemplates(input, run, total), (err: unknown) => err instanceof TemplateError && message.test((err as Error).message)));
  }

  it('a one-mount run keeps {{ mount i }} of that mount', () => {
    assert.equal(renumberTemplates('{{ mount 1 }}', { start: 1, end: 1 }, 3), '{{ mount 1 }}');
  });
});
