/** The shipped reference and the README name every configuration key the code accepts. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hookPhases, schemas } from '../../src/config/schema.js';

const top = path.resolve(import.meta.dirname, '..', '..');
const template = readFileSync(path.join(top, 'stacks', '_template.yaml'), 'utf8');
const readme = readFileSync(path.join(top, 'README.md'), 'utf8');

function keys(schema: unknown, prefix = ''): string[] {
  let current = schema as { unwrap?: () => unknown; shape?: Record<string, unknown> };
  while (typeof current.unwrap === 'function') current = current.unwrap() as typeof current;
  if (!current.shape) return [];
  return Object.entries(current.shape).flatMap(([key, value]) => [`${prefix}${key}`, ...keys(value, `${prefix}${key}.`)]);
}

describe('documentation of the configuration', () => {
  it('stacks/_template.yaml has every stack file key', () => {
    for (const key of keys(schemas().stackFileSchema)) {
      const leaf = key.split('.').at(-1)!;
      expect(template, `stacks/_template.yaml lacks ${key}`).toMatch(new RegExp(`^#?\\s*${leaf}:`, 'm'));
    }
  });

  it('the README has every key of stack files and stack-backup.yaml, and every hook phase', () => {
    for (const key of [...keys(schemas().stackFileSchema).filter((key) => !key.startsWith('hooks.') && !key.startsWith('monitor.')), ...keys(schemas().globalFileSchema)]) {
      expect(readme, `README lacks ${key}`).toContain(`\`${key}\``);
    }
    for (const phase of hookPhases) expect(readme).toContain(`\`${phase}\``);
  });
});
