/**
 * A frozen source's files, as a restore test reads them: every regular file and symlink below a
 * folder, and for a sample their facts and contents' SHA-256. Read inside the user's namespace
 * (`podman unshare`), where a rootless stack's files of subordinate UIDs, in folders of mode
 * 0700, are readable and show the owners its containers see. The reading is a small Node
 * program run there (the node running stack-backup): it hashes without a shell between, never
 * follows a link, and reports mtimes to the nanosecond.
 */
import { CommandError, TimeoutError } from '../errors.js';
import { unshareArgv } from './made-paths.js';
import { describeFailure, type CommandRunner } from './process.js';

/** What is known of one regular file or symlink: read inside the user's namespace. */
export interface FileFacts {
  /** Relative to the folder it was read in. */
  path: string;
  type: 'file' | 'symlink';
  size: number;
  /** Permission bits, octal as `stat %a` prints them. */
  mode: string;
  uid: string;
  gid: string;
  /** Seconds since the epoch with nanoseconds, as `stat %.9Y` prints them. */
  mtime: string;
  /** A symlink's target; undefined for a file. */
  target?: string | undefined;
  /** A file's SHA-256; undefined for a symlink. */
  hash?: string | undefined;
}

/**
 * `node -e PROGRAM FOLDER MODE`: MODE `list` prints the relative paths of every regular file and
 * symlink below FOLDER (not below a folder on another filesystem) as a JSON array; MODE `facts`
 * reads a JSON array of relative paths on standard input and prints their facts (a missing one:
 * null).
 */
const program = `
const fs = require('node:fs'), path = require('node:path'), crypto = require('node:crypto');
const [folder, mode] = process.argv.slice(1);
if (mode === 'list') {
  const found = [], device = fs.lstatSync(folder).dev;
  const walk = (relative) => {
    for (const entry of fs.readdirSync(path.join(folder, relative), { withFileTypes: true })) {
      const inner = relative === '' ? entry.name : relative + '/' + entry.name;
      if (entry.isSymbolicLink() || entry.isFile()) found.push(inner);
      else if (entry.isDirectory() && fs.lstatSync(path.join(folder, inner)).dev === device) walk(inner);
    }
  };
  walk('');
  process.stdout.write(JSON.stringify(found));
} else {
  const wanted = JSON.parse(fs.readFileSync(0, 'utf8'));
  const facts = wanted.map((relative) => {
    const full = path.join(folder, relative);
    let stats;
    try { stats = fs.lstatSync(full, { bigint: true }); } catch { return null; }
    const ns = stats.mtimeNs, second = ns / 1000000000n, rest = ns % 1000000000n;
    const base = { path: relative, size: Number(stats.size), mode: (Number(stats.mode) & 0o777).toString(8), uid: String(stats.uid), gid: String(stats.gid), mtime: second + '.' + String(rest).padStart(9, '0') };
    if (stats.isSymbolicLink()) return { ...base, type: 'symlink', target: fs.readlinkSync(full) };
    if (!stats.isFile()) return { ...base, type: 'other' };
    const hash = crypto.createHash('sha256');
    const descriptor = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const buffer = Buffer.alloc(1 << 20);
    try { for (let read; (read = fs.readSync(descriptor, buffer, 0, buffer.length, null)) > 0;) hash.update(buffer.subarray(0, read)); } finally { fs.closeSync(descriptor); }
    return { ...base, type: 'file', hash: hash.digest('hex') };
  });
  process.stdout.write(JSON.stringify(facts));
}
`;

export function sourceFilesArgv(folder: string, mode: 'list' | 'facts'): string[] {
  return [...unshareArgv, process.execPath, '-e', program, folder, mode];
}

export interface SourceFiles {
  /** Every regular file and symlink below the folder, relative to it. */
  list(folder: string, timeoutMs: number, signal?: AbortSignal): Promise<string[]>;
  /** These files' facts (a file gone, or neither a file nor a link: undefined). */
  facts(folder: string, paths: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<Map<string, FileFacts>>;
}

export function createSourceFiles(run: CommandRunner): SourceFiles {
  const read = async (folder: string, mode: 'list' | 'facts', timeoutMs: number, signal: AbortSignal | undefined, input?: string): Promise<unknown> => {
    const result = await run(sourceFilesArgv(folder, mode), { timeoutMs, signal, input });
    if (result.timedOut) throw new TimeoutError(`reading ${folder}: ${describeFailure(result, timeoutMs)}`);
    if (result.exitCode !== 0) throw new CommandError(`reading ${folder}: exit ${result.exitCode ?? 'signal'}: ${result.stderr.trim().split('\n').pop() ?? ''}`, result.stderr);
    try {
      return JSON.parse(result.stdout) as unknown;
    } catch {
      throw new CommandError(`reading ${folder}: its answer is not JSON`, result.stdout.slice(0, 500));
    }
  };
  return {
    async list(folder, timeoutMs, signal) {
      return (await read(folder, 'list', timeoutMs, signal)) as string[];
    },
    async facts(folder, paths, timeoutMs, signal) {
      const answer = (await read(folder, 'facts', timeoutMs, signal, JSON.stringify(paths))) as Array<(FileFacts & { type: string }) | null>;
      const facts = new Map<string, FileFacts>();
      for (const entry of answer) if (entry && (entry.type === 'file' || entry.type === 'symlink')) facts.set(entry.path, entry);
      return facts;
    },
  };
}
