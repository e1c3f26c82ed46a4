/** The file system: a folder check that can hang (an automount that does not answer), bounded in time; log pruning and tails. */
import { readFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { TimeoutError } from '../errors.js';

export async function checkFolder(folder: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  });
  try {
    // Reading the folder, not just stat-ing it, is what makes an automounter mount it.
    await Promise.race([readdir(folder), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const datedLog = /^backup-.+-(\d{4})-(\d{2})-(\d{2})\.log$/;

/** Deletes logs/backup-<stack>-YYYY-MM-DD.log files older than the retention; returns their names. */
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
