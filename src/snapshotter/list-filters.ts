/**
 * List filters across the profile prefix (see profile-keys.ts).
 *
 * Filters are parsed with containerd's grammar (the embedded backend's parser),
 * then sent to the backend with `name`/`parent` equality values prefixed, so
 * the backend does the selective work. A regular expression on `name` or
 * `parent` cannot be rewritten (anchors would see the prefix), so when one is
 * present the backend is asked for everything. In both cases every returned
 * snapshot is checked again against the original filters, after the prefix is
 * stripped: the answer is exactly what containerd's semantics give, whatever
 * the backend does with the filters.
 */
import type { SnapshotInfo } from '../backend/backend';
import { matchesAny, parseFilters, type Filter } from '../backend/embedded/filters';
import type { ProfileKeys } from './profile-keys';

export interface ListPlan {
  /** Filters to send to the backend. */
  backendFilters: string[];
  /** Whether a snapshot (already mapped back to client names) is in the answer. */
  matches(info: SnapshotInfo): boolean;
}

const KEY_FIELDS = new Set(['name', 'parent']);
const FIELD_RE = /^[A-Za-z0-9_-]+$/;

type Selector = Filter[number];

function quote(s: string): string {
  // JSON string escapes are a subset of Go's, which containerd's parser uses.
  return JSON.stringify(s);
}

function serializeSelector(s: Selector, keys: ProfileKeys): string {
  const path = s.fieldpath.map((f) => (FIELD_RE.test(f) ? f : quote(f))).join('.');
  if (s.operator === 'present') return path;
  let value = s.value;
  if (KEY_FIELDS.has(s.fieldpath[0]) && value !== '' && (s.operator === '==' || s.operator === '!=')) {
    value = keys.toBackend(value);
  }
  return `${path}${s.operator}${quote(value)}`;
}

function needsLocalOnly(filters: Filter[]): boolean {
  return filters.some((f) => f.some((s) => s.operator === '~=' && KEY_FIELDS.has(s.fieldpath[0])));
}

/** Throws InvalidArgument (from the parser) on a malformed filter. */
export function planList(filters: string[], keys: ProfileKeys): ListPlan {
  const parsed = parseFilters(filters);
  const matches = (info: SnapshotInfo) => matchesAny(parsed, info);
  if (needsLocalOnly(parsed)) return { backendFilters: [], matches };
  // An empty filter string matches everything; keep it as it is.
  const backendFilters = parsed.map((f, i) => (f.length === 0 ? filters[i] : f.map((s) => serializeSelector(s, keys)).join(',')));
  return { backendFilters, matches };
}
