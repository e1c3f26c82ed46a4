/** The file system: a folder check that can hang (a network mount that does not answer), bounded in time; log pruning and tails. */
import { readFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { TimeoutError } from '../errors.js';
import { systemClock, withTimeout, type Clock } from './clock.js';
import { runCommand, type CommandRunner } from './process.js';

/**
 * Opens the folder and reads one entry, which is what makes an automounter mount it, and
 * prints why not on failure.
 */
const readOneEntry =
  "try{const d=require('node:fs').opendirSync(process.argv[1]);d.readSync();d.closeSync()}catch(e){process.stderr.write(String(e.message));process.exit(1)}";

const killGraceMs = 1000;
/** How long after the kill a child that still does not end (stuck in the kernel) is left behind. */
const abandonAfterKillMs = 3000;

/**
 * Reads the folder in a child process. A readdir on a network mount whose server is gone
 * (NFS, SMB, a stopped FUSE daemon) never returns; done in this process it would hold one of
 * libuv's threads for good, so the run could never exit and its lock would refuse the next
 * night's run. A child can be killed at the timeout; one the kernel will not let die is left
 * behind (the process exits anyway when its work is done, see exitWhenDone).
 */
export async function checkFolder(folder: string, timeoutMs: number, run: CommandRunner = runCommand, clock: Pick<Clock, 'timeout'> = systemClock): Promise<void> {
  const seconds = Math.round(timeoutMs / 1000);
  // The runner kills the child at timeoutMs; this outer deadline only abandons one that will not die.
  const result = await withTimeout(
    clock,
    timeoutMs + killGraceMs + abandonAfterKillMs,
    () => new TimeoutError(`no answer within ${seconds} s, and the process reading it could not be ended`),
    () => run([process.execPath, '-e', readOneEntry, '--', folder], { timeoutMs, killGraceMs }),
  );
  if (result.timedOut) throw new TimeoutError(`no answer within ${seconds} s`);
  if (result.exitCode !== 0) throw new Error(result.stderr.trim() || `cannot be read (exit ${result.exitCode ?? 'signal'})`);
}

const datedLog = /^(?:backup|restore)-.+-(\d{4})-(\d{2})-(\d{2})\.log$/;

/** Deletes logs/backup-<stack>-YYYY-MM-DD.log and restore-<stack>-YYYY-MM-DD.log files older than the retention; returns their names. */
export async function pruneLogs(folder: string, retentionDays: number, now: number): Promise<string[]> {
  const cutoff = now - retentionDays * 86_400_000;
  const removed: string[] = [];
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    const match = datedLog.exec(name);
    if (!match) continue;
    // The end of that day, local time: a file is kept for whole days.
    const endOfDay = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + 1).getTime();
    if (endOfDay < cutoff) {
      await rm(`${folder}/${name}`, { force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** The last lines of a JSON-lines log, as "time level message" text for a person. */
export function readLogTail(file: string, lines: number): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const levels: Record<number, string> = { 30: 'info', 40: 'warn', 50: 'error' };
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => {
      try {
        const entry = JSON.parse(line) as { time?: string; level?: number; msg?: string; output?: string };
        const output = entry.output ? `\n    ${entry.output.trim().split('\n').slice(-5).join('\n    ')}` : '';
        return `${entry.time ?? ''} ${levels[entry.level ?? 30] ?? entry.level} ${entry.msg ?? ''}${output}`;
      } catch {
        return line;
      }
    })
    .join('\n');
}
