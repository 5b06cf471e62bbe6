/**
 * TOML renderings of the configuration. The reference file is generated from
 * the schema's descriptions and the typed defaults, so it can never drift from
 * what the loader accepts (a test parses it back and compares with defaults).
 */
import { stringify } from 'smol-toml';
import type { z } from 'zod';
import { type Config, configSchema, defaultConfig } from './schema';

function describe(schema: z.ZodType): string {
  return schema.description ?? '';
}

function keyLine(key: string, value: unknown): string {
  return stringify({ [key]: value }).trim();
}

function comment(text: string): string[] {
  return text ? [`# ${text}`] : [];
}

function renderTable(name: string, table: z.ZodObject, values: Record<string, unknown>): string[] {
  const lines = [...comment(describe(table)), `[${name}]`];
  for (const [key, field] of Object.entries(table.shape)) {
    lines.push(...comment(describe(field as z.ZodType)), keyLine(key, values[key]));
  }
  return lines;
}

/** The full commented reference configuration (the defaults), for `erofs-vmdk config default`. */
export function renderReferenceToml(): string {
  const defaults = defaultConfig() as unknown as Record<string, unknown>;
  const shape = configSchema.shape;
  const out: string[] = [
    '# erofs-vmdk configuration (/etc/erofs-vmdk/config.toml).',
    '# Every key is optional; the values below are the defaults. Command-line flags override this file.',
    '',
  ];
  const tables: string[][] = [];
  for (const [key, field] of Object.entries(shape)) {
    const value = defaults[key];
    if (key === 'profiles') continue;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      tables.push(renderTable(key, field as unknown as z.ZodObject, value as Record<string, unknown>));
    } else {
      out.push(...comment(describe(field as z.ZodType)), keyLine(key, value), '');
    }
  }
  for (const t of tables) out.push(...t, '');
  // Profiles: one table per proxy plugin name.
  const profiles = shape.profiles;
  const profileShape = profiles.valueType as unknown as z.ZodObject;
  out.push(...comment(describe(profiles)));
  for (const [name, profile] of Object.entries(defaultConfig().profiles)) {
    out.push(...renderTable(`profiles.${name}`, profileShape, profile as Record<string, unknown>).slice(profileShape.description ? 1 : 0), '');
  }
  return out.join('\n');
}

/** The effective configuration as TOML, for `erofs-vmdk config dump`. */
export function renderConfigToml(config: Config): string {
  return `${stringify(config)}\n`;
}
