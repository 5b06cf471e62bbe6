/**
 * containerd's filter syntax (github.com/containerd/containerd/filters), as
 * used by Snapshots.List:
 *
 *   selectors := selector ("," selector)*
 *   selector  := fieldpath (operator value)?
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z0-9_-]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+
 *   quoted    := "..." | /.../ | |...|   (Go string escapes)
 *
 * Several filter strings are OR-ed; the selectors of one string are AND-ed.
 * A bare fieldpath tests presence. Semantics follow containerd's filter.go:
 * `==` needs the field present and equal, `!=` compares the value ("" when
 * absent), `~=` is a regular expression match on the value.
 */
import { invalidArgument } from '../../errdefs';
import type { SnapshotInfo } from '../backend';
import { compileLinearRegExp } from './linear-regexp';

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  regexp?: RegExp;
}

/** One parsed filter string: all selectors must match. */
export type Filter = Selector[];

/** Field lookup the way containerd's snapshot adaptor does it. */
export function snapshotField(info: SnapshotInfo, fieldpath: string[]): { value: string; present: boolean } {
  switch (fieldpath[0]) {
    case 'kind':
      return info.kind === 'unknown' ? { value: '', present: false } : { value: info.kind, present: true };
    case 'name':
      return { value: info.name, present: true };
    case 'parent':
      return { value: info.parent, present: info.parent.length > 0 };
    case 'labels': {
      if (fieldpath.length < 2) return { value: '', present: false };
      // containerd joins the rest of the path: labels.a.b is the label "a.b".
      const key = fieldpath.slice(1).join('.');
      if (Object.prototype.hasOwnProperty.call(info.labels, key)) return { value: info.labels[key], present: true };
      return { value: '', present: false };
    }
    default:
      return { value: '', present: false };
  }
}

export function matchesFilter(filter: Filter, info: SnapshotInfo): boolean {
  return filter.every((s) => {
    const { value, present } = snapshotField(info, s.fieldpath);
    switch (s.operator) {
      case 'present':
        return present;
      case '==':
        return present && value === s.value;
      case '!=':
        return value !== s.value;
      case '~=':
        return s.regexp !== undefined && s.regexp.test(value);
    }
  });
}

/** ORs the filter strings; no filter (or only empty strings) matches everything. */
export function matchesAny(filters: Filter[], info: SnapshotInfo): boolean {
  return filters.length === 0 || filters.some((f) => f.length === 0 || matchesFilter(f, info));
}

export function parseFilters(sources: string[]): Filter[] {
  return sources.map(parseFilter);
}

/** Parses one filter string; an empty string matches everything. Errors are InvalidArgument. */
export function parseFilter(source: string): Filter {
  if (source === '') return [];
  const p = new FilterParser(source);
  return p.parse();
}

const isFieldChar = (c: string) => /[A-Za-z0-9_-]/.test(c);
const isQuote = (c: string) => c === '"' || c === '/' || c === '|';
const isSpace = (c: string) => /\s/.test(c);

class FilterParser {
  private pos = 0;
  constructor(private readonly input: string) {
    if (input.includes('\0')) throw this.error('unexpected null');
  }

  parse(): Filter {
    const selectors = [this.selector()];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.input.length) break;
      if (this.input[this.pos] !== ',') throw this.error(`unexpected input: ${this.input[this.pos]}`);
      this.pos++;
      selectors.push(this.selector());
    }
    return selectors;
  }

  private selector(): Selector {
    const fieldpath = [this.field()];
    for (;;) {
      this.skipSpace();
      if (this.input[this.pos] !== '.') break;
      this.pos++;
      fieldpath.push(this.field());
    }
    this.skipSpace();
    if (this.pos >= this.input.length || this.input[this.pos] === ',') {
      return { fieldpath, operator: 'present', value: '' };
    }
    const operator = this.operator();
    const value = this.value();
    const selector: Selector = { fieldpath, operator, value };
    if (operator === '~=') {
      try {
        selector.regexp = compileLinearRegExp(value); // linear time: a filter must not be able to freeze the daemon
      } catch (err) {
        throw this.error(`bad regular expression ${JSON.stringify(value)}: ${(err as Error).message}`);
      }
    }
    return selector;
  }

  private field(): string {
    this.skipSpace();
    const c = this.input[this.pos];
    if (c !== undefined && isQuote(c)) return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && isFieldChar(this.input[this.pos])) this.pos++;
    if (this.pos === start) throw this.error('expected field or quoted');
    return this.input.slice(start, this.pos);
  }

  private operator(): Operator {
    const start = this.pos;
    while (this.pos < this.input.length && '=!~'.includes(this.input[this.pos])) this.pos++;
    const op = this.input.slice(start, this.pos);
    if (op === '==' || op === '!=' || op === '~=') return op;
    this.pos = start;
    throw this.error(op ? `unsupported operator ${JSON.stringify(op)}` : 'expected an operator ("=="|"!="|"~=")');
  }

  private value(): string {
    this.skipSpace();
    const c = this.input[this.pos];
    if (c === undefined) throw this.error('expected value or quoted, got end of input');
    if (isQuote(c)) return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && this.input[this.pos] !== ',' && !isSpace(this.input[this.pos])) this.pos++;
    if (this.pos === start) throw this.error('expected value or quoted');
    return this.input.slice(start, this.pos);
  }

  /** A quoted string with Go escapes; the quote character may be ", / or |. */
  private quoted(): string {
    const quote = this.input[this.pos++];
    let out = '';
    for (;;) {
      if (this.pos >= this.input.length) throw this.error('quoted literal not terminated');
      const c = this.input[this.pos++];
      if (c === quote) return out;
      if (c === '\n') throw this.error('quoted literal not terminated');
      if (c !== '\\') {
        out += c;
        continue;
      }
      out += this.escape(quote);
    }
  }

  private escape(quote: string): string {
    const c = this.input[this.pos++];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
    if (c === undefined) throw this.error('quoted literal not terminated');
    if (c in simple) return simple[c];
    if (c === quote) return quote;
    const digits = (n: number, base: number) => {
      const text = this.input.slice(this.pos, this.pos + n);
      const valid = base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/;
      if (text.length !== n || !valid.test(text)) throw this.error('illegal numeric escape sequence');
      this.pos += n;
      return parseInt(text, base);
    };
    if (c >= '0' && c <= '7') {
      this.pos--;
      const v = digits(3, 8);
      if (v > 255) throw this.error('illegal octal escape');
      return String.fromCharCode(v);
    }
    if (c === 'x') return String.fromCharCode(digits(2, 16));
    if (c === 'u') return String.fromCodePoint(digits(4, 16));
    if (c === 'U') {
      const v = digits(8, 16);
      if (v > 0x10ffff) throw this.error('escape out of range');
      return String.fromCodePoint(v);
    }
    throw this.error('illegal escape sequence');
  }

  private skipSpace(): void {
    while (this.pos < this.input.length && isSpace(this.input[this.pos])) this.pos++;
  }

  private error(message: string) {
    return invalidArgument(`filters: parse error in ${JSON.stringify(this.input)} at ${this.pos}: ${message}`);
  }
}
