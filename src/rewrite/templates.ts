/**
 * containerd mount-manager templates (core/mount/manager/format.go): Go
 * text/template actions in a mount's source, target or options, evaluated
 * against the mounts activated before it. containerd's snapshotters only emit
 * `{{ mount i }}`, `{{ source i }}`, `{{ target i }}` and `{{ overlay a b }}`
 * (a..b inclusive, reversed when a > b, joined by ':').
 *
 * When the rewrite collapses a run of mounts [start, end] into one mount at
 * `start`, every reference has to be renumbered. Actions we do not understand
 * cannot be renumbered safely, so they are refused rather than passed on with
 * indices that may now point at a different mount.
 */

/** A collapsed run: mounts start..end (inclusive) become one mount at `start`. */
export interface CollapsedRun {
  start: number;
  end: number;
}

/** Why a template could not be renumbered; the planner turns it into a SnapshotterError. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

const ACTION_RE = /\{\{(.*?)\}\}/gs;
const SINGLE_RE = /^(mount|source|target)\s+(\d+)$/;
const OVERLAY_RE = /^overlay\s+(\d+)\s+(\d+)$/;

export function hasTemplate(s: string): boolean {
  return s.includes('{{');
}

/** Inner text of an action without Go's trim markers (`{{- x -}}`) and spaces. */
function actionBody(inner: string): string {
  let body = inner.trim();
  if (body.startsWith('- ')) body = body.slice(2);
  if (body.endsWith(' -')) body = body.slice(0, -2);
  return body.trim();
}

/** New index of a mount outside the run (mounts after it shift down). */
function shiftIndex(i: number, run: CollapsedRun): number {
  return i > run.end ? i - (run.end - run.start) : i;
}

function inRun(i: number, run: CollapsedRun): boolean {
  return i >= run.start && i <= run.end;
}

function renumberSingle(fn: string, i: number, run: CollapsedRun, total: number): string | undefined {
  if (i >= total) throw new TemplateError(`{{ ${fn} ${i} }} references mount ${i}, but there are only ${total} mounts`);
  if (!inRun(i, run)) {
    const j = shiftIndex(i, run);
    return j === i ? undefined : `{{ ${fn} ${j} }}`;
  }
  // `mount i` of a one-mount run is the same merged tree after the rewrite. A
  // single layer of a longer run, or the source/target of a layer mount, no
  // longer exists as such once the run is one vmdk disk.
  if (fn === 'mount' && run.start === run.end) return undefined;
  throw new TemplateError(`{{ ${fn} ${i} }} references one mount of the rewritten erofs run ${run.start}..${run.end}`);
}

function renumberOverlay(a: number, b: number, run: CollapsedRun, total: number): string | undefined {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (hi >= total) throw new TemplateError(`{{ overlay ${a} ${b} }} references mount ${hi}, but there are only ${total} mounts`);
  const containsRun = lo <= run.start && hi >= run.end;
  const disjoint = hi < run.start || lo > run.end;
  if (!containsRun && !disjoint) {
    throw new TemplateError(`{{ overlay ${a} ${b} }} covers only part of the rewritten erofs run ${run.start}..${run.end}`);
  }
  // Inside a range that contains the whole run, the run keeps its place
  // (top-first order is preserved) and shrinks to one directory.
  const na = a > run.end ? shiftIndex(a, run) : a >= run.start ? run.start : a;
  const nb = b > run.end ? shiftIndex(b, run) : b >= run.start ? run.start : b;
  if (na === nb) return `{{ mount ${na} }}`;
  if (na === a && nb === b) return undefined;
  return `{{ overlay ${na} ${nb} }}`;
}

/**
 * Renumbers every action in `s` for a run collapsed into one mount. `total` is
 * the number of mounts before the rewrite. Unchanged actions keep their exact
 * original text, so a string with nothing to renumber comes back identical.
 */
export function renumberTemplates(s: string, run: CollapsedRun, total: number): string {
  if (!hasTemplate(s)) return s;
  const out = s.replace(ACTION_RE, (whole: string, inner: string) => {
    const body = actionBody(inner);
    const single = SINGLE_RE.exec(body);
    if (single) return renumberSingle(single[1], Number(single[2]), run, total) ?? whole;
    const overlay = OVERLAY_RE.exec(body);
    if (overlay) return renumberOverlay(Number(overlay[1]), Number(overlay[2]), run, total) ?? whole;
    throw new TemplateError(`template action ${JSON.stringify(whole)} is not one containerd emits; cannot renumber it`);
  });
  // A '{{' left over is an unterminated action containerd itself would fail on.
  if (hasTemplate(out.replace(ACTION_RE, ''))) {
    throw new TemplateError(`unterminated template action in ${JSON.stringify(s)}`);
  }
  return out;
}
