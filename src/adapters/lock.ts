/**
 * Locks, so runs never overlap where they must not: one per root (a timer run and a manual run
 * of one root), and one per unit, in the user's runtime folder (two roots that name the same
 * unit, each with its own timer, must not stop and start one stack at once: with restore_policy
 * previous the second would read the unit as inactive while the first has it down, and leave
 * it down). proper-lockfile keeps a lock's mtime fresh while we live; a run killed by SIGKILL
 * stops refreshing it and the lock counts as stale a few seconds later.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { LockHeldError } from '../errors.js';

export type ReleaseLock = () => Promise<void>;

export const lockStaleMs = 5000;

export function lockTarget(root: string): string {
  return path.join(root, 'logs', 'stack-backup');
}

const refreshMs = 1000;

/**
 * Takes the lock of `target`; `held` says who holds it when it is taken. A lock not refreshed
 * for a while belongs to a run that was killed: it is waited for until it counts as stale.
 */
async function acquire(target: string, held: () => string, onLost: (error: Error) => void): Promise<ReleaseLock> {
  const attempt = () => lockfile.lock(target, { realpath: false, stale: lockStaleMs, update: refreshMs, retries: 0, onCompromised: onLost });
  try {
    return await attempt();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    // A live run refreshes its lock every second. One not refreshed for longer belongs to a run
    // that was killed: wait until it counts as stale rather than refuse the run.
    const age = lockAge(target);
    if (age === undefined || age < 2 * refreshMs) throw new LockHeldError(held());
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lockStaleMs - age) + 100));
    try {
      return await attempt();
    } catch (retryError) {
      if ((retryError as NodeJS.ErrnoException).code === 'ELOCKED') throw new LockHeldError(held());
      throw retryError;
    }
  }
}

export async function acquireRootLock(root: string, onLost: (error: Error) => void): Promise<ReleaseLock> {
  const target = lockTarget(root);
  mkdirSync(path.dirname(target), { recursive: true });
  return acquire(target, () => `another stack-backup run holds the lock ${target}.lock`, onLost);
}

/** Where the units' locks live: the user's runtime folder (per user, as the units are), else a private folder in /tmp. */
export function unitLockFolder(environment: Record<string, string | undefined>): string {
  const runtime = environment.XDG_RUNTIME_DIR;
  return runtime ? path.join(runtime, 'stack-backup', 'units') : path.join(os.tmpdir(), `stack-backup-${process.getuid?.() ?? 'user'}`, 'units');
}

/** A unit's lock file: its name, with the characters a file name cannot hold escaped. */
export function unitLockTarget(folder: string, unit: string): string {
  return path.join(folder, unit.replace(/[%/\\]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`));
}

/**
 * Takes the lock of a unit for this root, after the root's own lock. Held by another run: a
 * LockHeldError that names that run's root. The root is written beside the lock once it is
 * taken (proper-lockfile's lock is a folder that must stay empty).
 */
export async function acquireUnitLock(folder: string, unit: string, root: string, onLost: (error: Error) => void): Promise<ReleaseLock> {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const target = unitLockTarget(folder, unit);
  const owner = `${target}.root`;
  const release = await acquire(
    target,
    () => {
      let other = 'another root';
      try {
        other = `root ${readFileSync(owner, 'utf8').trim()}`;
      } catch {
        // Not written yet: the other run has only just taken it.
      }
      return `another stack-backup run (${other}) is backing up or restoring unit ${unit} now`;
    },
    onLost,
  );
  try {
    writeFileSync(owner, `${root}\n`, { mode: 0o600 });
  } catch {
    // Only a message's detail for another run: never a reason to fail this one.
  }
  return release;
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
