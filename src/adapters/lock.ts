/**
 * One lock per root, so a timer run and a manual run never overlap. proper-lockfile keeps the
 * lock's mtime fresh while we live; a run killed by SIGKILL stops refreshing it and the lock
 * counts as stale a few seconds later.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { LockHeldError } from '../errors.js';

export type ReleaseLock = () => Promise<void>;

export const lockStaleMs = 5000;

export function lockTarget(root: string): string {
  return path.join(root, 'logs', 'stack-backup');
}

export async function acquireRootLock(root: string, onLost: (error: Error) => void): Promise<ReleaseLock> {
  const target = lockTarget(root);
  mkdirSync(path.dirname(target), { recursive: true });
  try {
    return await lockfile.lock(target, {
      realpath: false,
      stale: lockStaleMs,
      update: 1000,
      retries: 0,
      onCompromised: onLost,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new LockHeldError(`another stack-backup run holds the lock ${target}.lock`);
    }
    throw error;
  }
}

export async function isRootLocked(root: string): Promise<boolean> {
  return lockfile.check(lockTarget(root), { realpath: false, stale: lockStaleMs });
}
