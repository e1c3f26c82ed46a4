/**
 * How every run opens, a backup's and a restore's alike: the root's lock (no other run of this
 * root meanwhile), a unit's where the run takes one stack, this run's ID and crash journal, and
 * what a run that died left put back first. A lock that is lost (its file removed or taken over)
 * no longer keeps another run out: the run's signal fires, and it ends the way back.
 */
import { randomUUID } from 'node:crypto';
import type { Adapters } from './adapters/adapters.js';
import { acquireRootLock } from './adapters/lock.js';
import type { GlobalConfig } from './config/types.js';
import { LockLostError } from './errors.js';
import { createJournal, type Journal } from './journal/journal.js';
import { recoverPending, type RecoveryReport } from './recover.js';
import type { Progress } from './report/report.js';

export interface OpeningRequest {
  global: GlobalConfig;
  adapters: Adapters;
  progress: Progress;
  signal: AbortSignal;
}

export interface OpeningOptions {
  /** What the run does once a lock is lost, and what it then says it did: "restoring the stack under way and starting no other", "the run was ended". */
  onLoss: { doing: string; ended: string };
  /** A restore's unit, locked for the whole run; a backup locks each stack's in turn (lockFor). */
  unit?: string | undefined;
  /** Whether what a run that died left is put back first (the crash journal replayed). */
  recover: boolean;
  /** After a recovery that had something to do, before the run's own work. */
  recovered?: (report: RecoveryReport) => void;
}

export interface OpenRun {
  runId: string;
  journal: Journal;
  /** The caller's signal, or a lock's loss. */
  signal: AbortSignal;
  recovery: RecoveryReport;
  /** Takes a unit's lock for part of the run; its loss ends the run as the root lock's does. */
  lockUnit(unit: string): Promise<() => Promise<void>>;
}

export async function withOpenRun<T>(request: OpeningRequest, options: OpeningOptions, work: (run: OpenRun) => Promise<T>): Promise<T> {
  const { global, adapters, progress } = request;
  const lost = new AbortController();
  const signal = AbortSignal.any([request.signal, lost.signal]);
  const onLost = (what: string) => (error: Error) => {
    if (lost.signal.aborted) return;
    progress.message(`error: ${what} was lost (${error.message}); ${options.onLoss.doing}`);
    lost.abort(new LockLostError(`${what} was lost (${error.message}), so another run could start meanwhile: ${options.onLoss.ended}`));
  };
  const lockUnit = (unit: string) => adapters.lockUnit(unit, onLost(`the lock of unit ${unit}`));
  const releaseRoot = await acquireRootLock(global.root, onLost(`the lock of ${global.root}`));
  try {
    const releaseUnit = options.unit === undefined ? undefined : await lockUnit(options.unit);
    try {
      const runId = randomUUID();
      const journal = createJournal(global.root, runId);
      let recovery: RecoveryReport = { restored: [], failed: [] };
      if (options.recover && journal.pending().length > 0) {
        progress.message('warning: a previous run ended before restoring its stack; recovering first');
        recovery = await recoverPending(global.root, journal, runId, { ...adapters, duplicati: () => adapters.duplicati, progress, signal });
        options.recovered?.(recovery);
      }
      return await work({ runId, journal, signal, recovery, lockUnit });
    } finally {
      await releaseUnit?.().catch(() => {});
    }
  } finally {
    await releaseRoot().catch(() => {});
  }
}
