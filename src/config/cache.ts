/**
 * A cache of validated configuration files, so that commands that read every stack file
 * (`list`, `all`, `status`) do not parse 200 unchanged YAML files each time. An entry is used
 * only while the file's size, mtime, ctime and inode are the same and the schema module is the
 * one that validated it; the cache file itself is ignored when others could have written it.
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonFile, writeTextFileAtomically } from '../state-files.js';
import { currentIdentity, looseness } from './permissions.js';

interface Entry {
  fingerprint: string;
  value: unknown;
}

interface CacheFile {
  schema: string;
  files: Record<string, Entry>;
}

const fingerprint = (stats: Stats) => `${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}:${stats.ino}`;

/** Changes whenever the schema module is rebuilt, so entries validated by another schema are dropped. */
function schemaVersion(): string {
  try {
    return fingerprint(statSync(fileURLToPath(new URL('./schema.js', import.meta.url))));
  } catch {
    return 'unknown';
  }
}

export class ParsedFileCache {
  private readonly file: string;
  private readonly schema = schemaVersion();
  private contents: CacheFile | undefined;
  private changed = false;

  constructor(root: string) {
    this.file = path.join(root, 'logs', '.config-cache.json');
  }

  private load(): CacheFile {
    if (this.contents) return this.contents;
    let contents: CacheFile = { schema: this.schema, files: {} };
    try {
      const stats = statSync(this.file);
      if (looseness(stats, currentIdentity()) === undefined) {
        const stored = readJsonFile<CacheFile>(this.file, contents);
        if (stored.schema === this.schema && stored.files) contents = stored;
      }
    } catch {
      // No cache, or an unreadable one: everything is parsed.
    }
    this.contents = contents;
    return contents;
  }

  /** The validated value of the file as it is now, if the cache holds it. */
  get(file: string, stats: Stats): unknown {
    const entry = this.load().files[file];
    return entry && entry.fingerprint === fingerprint(stats) ? entry.value : undefined;
  }

  set(file: string, stats: Stats, value: unknown): void {
    this.load().files[file] = { fingerprint: fingerprint(stats), value };
    this.changed = true;
  }

  /** Writes the cache when something was added, and only into an existing logs/ folder. */
  save(): void {
    if (!this.changed || !this.contents) return;
    try {
      if (!statSync(path.dirname(this.file)).isDirectory()) return;
      writeTextFileAtomically(this.file, JSON.stringify(this.contents));
      this.changed = false;
    } catch {
      // A cache that cannot be written only costs time.
    }
  }
}
