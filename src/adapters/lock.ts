/**
 * One lock per root, so a timer run and a manual run never overlap. proper-lockfile keeps the
 * lock's mtime fresh while we live; a run killed by SIGKILL stops refreshing it and the lock
 * counts as stale a few seconds later.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { LockHeldError } from '../errors.js';

export type ReleaseLock = () => Promise<void>;

export const lockStaleMs = 5000;

export function lockTarget(root: string): string {
  return path.join(root, 'logs', 'stack-backup');
}

const refreshMs = 1000;

export async function acquireRootLock(root: string, onLost: (error: Error) => void): Promise<ReleaseLock> {
  const target = lockTarget(root);
  mkdirSync(path.dirname(target), { recursive: true });
  const attempt = () =>
    lockfile.lock(target, { realpath: false, stale: lockStaleMs, update: refreshMs, retries: 0, onCompromised: onLost });
  try {
    return await attempt();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    // A live run refreshes its lock every second. One not refreshed for longer belongs to a run
    // that was killed: wait until it counts as stale rather than refuse the run.
    const age = lockAge(target);
    if (age === undefined || age < 2 * refreshMs) {
      throw new LockHeldError(`another stack-backup run holds the lock ${target}.lock`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lockStaleMs - age) + 100));
    try {
      return await attempt();
    } catch (retryError) {
      if ((retryError as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new LockHeldError(`another stack-backup run holds the lock ${target}.lock`);
      }
      throw retryError;
    }
  }
}

function lockAge(target: string): number | undefined {
  try {
    return Date.now() - statSync(`${target}.lock`).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Whether a live run holds the lock: one that refreshed it lately, not one that was killed. */
export async function isRootLocked(root: string): Promise<boolean> {
  const age = lockAge(lockTarget(root));
  return age !== undefined && age < 2 * refreshMs;
}
