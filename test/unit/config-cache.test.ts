import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ParsedFileCache } from '../../src/config/cache.js';
import { loadGlobalConfig, loadStack, saveConfigCaches } from '../../src/config/load.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function root(): string {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'stack-backup-cache-'));
  roots.push(folder);
  mkdirSync(path.join(folder, 'stacks'));
  mkdirSync(path.join(folder, 'logs'));
  return folder;
}

const cacheFile = (folder: string) => path.join(folder, 'logs', '.config-cache.json');

/** Rewrites the cached value of a file, to tell whether a later load came from the cache. */
function tamper(folder: string, file: string, jobs: string[]): void {
  const contents = JSON.parse(readFileSync(cacheFile(folder), 'utf8')) as { files: Record<string, { value: { duplicati_jobs: string[] } }> };
  contents.files[file]!.value.duplicati_jobs = jobs;
  writeFileSync(cacheFile(folder), JSON.stringify(contents), { mode: 0o644 });
}

describe('the parse cache of configuration files', () => {
  it('serves an unchanged file from the cache, and parses it again once it changed', () => {
    const folder = root();
    const file = path.join(folder, 'stacks', 'app.yaml');
    writeFileSync(file, 'duplicati_jobs: [app]\n');
    const global = loadGlobalConfig(folder, {});
    expect(loadStack(folder, 'app', global).jobs).toEqual(['app']);
    saveConfigCaches();
    tamper(folder, file, ['from-cache']);
    // A fresh reader, as the next command would have.
    const cache = new ParsedFileCache(folder);
    expect((cache.get(file, statSync(file)) as { duplicati_jobs: string[] }).duplicati_jobs).toEqual(['from-cache']);
    const later = new Date(Date.now() + 5000);
    writeFileSync(file, 'duplicati_jobs: [changed]\n');
    utimesSync(file, later, later);
    expect(cache.get(file, statSync(file))).toBeUndefined();
  });

  it('never caches a file that is not valid', () => {
    const folder = root();
    writeFileSync(path.join(folder, 'stacks', 'bad.yaml'), 'duplicati_jobs: []\n');
    writeFileSync(path.join(folder, 'stacks', 'good.yaml'), 'duplicati_jobs: [good]\n');
    const global = loadGlobalConfig(folder, {});
    expect(() => loadStack(folder, 'bad', global)).toThrow(/duplicati_jobs/);
    loadStack(folder, 'good', global);
    saveConfigCaches();
    const stored = JSON.parse(readFileSync(cacheFile(folder), 'utf8')) as { files: Record<string, unknown> };
    expect(Object.keys(stored.files).map((key) => path.basename(key))).toEqual(['good.yaml']);
    // Still refused the next time: it is parsed again, not remembered as good.
    expect(() => loadStack(folder, 'bad', global)).toThrow(/duplicati_jobs/);
  });

  it('ignores a cache file that other users can write', () => {
    const folder = root();
    const file = path.join(folder, 'stacks', 'app.yaml');
    writeFileSync(file, 'duplicati_jobs: [app]\n');
    const writer = new ParsedFileCache(folder);
    writer.set(file, statSync(file), { duplicati_jobs: ['planted'] });
    writer.save();
    chmodSync(cacheFile(folder), 0o666);
    expect(new ParsedFileCache(folder).get(file, statSync(file))).toBeUndefined();
    chmodSync(cacheFile(folder), 0o644);
    expect(new ParsedFileCache(folder).get(file, statSync(file))).toEqual({ duplicati_jobs: ['planted'] });
  });

  it('writes nothing when the root has no logs folder', () => {
    const folder = root();
    rmSync(path.join(folder, 'logs'), { recursive: true });
    const file = path.join(folder, 'stacks', 'app.yaml');
    writeFileSync(file, 'duplicati_jobs: [app]\n');
    const cache = new ParsedFileCache(folder);
    cache.set(file, statSync(file), {});
    cache.save();
    expect(existsSync(path.join(folder, 'logs'))).toBe(false);
  });
});
