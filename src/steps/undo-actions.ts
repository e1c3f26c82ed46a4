/**
 * Carries out an undo record: the same code puts a stack back after a good backup, after a
 * failed step, and when `recover` replays the journal of a run that died.
 */
import type { Clock } from '../adapters/clock.js';
import type { HookRunner } from '../adapters/hooks.js';
import type { Systemd } from '../adapters/systemd.js';
import type { Duplicati } from '../adapters/duplicati.js';
import { removalTimeoutMs, type MadePaths, type RemovalOutcome } from '../adapters/made-paths.js';
import type { Snapshots } from '../adapters/snapshots.js';
import { CommandError, SnapshotKept } from '../errors.js';
import type { UndoRecord } from '../journal/journal.js';
import type { StackLog } from '../report/logging.js';
import type { UndoExecutor, UndoObserver } from '../journal/undo.js';
import type { StackRun, StackTimings } from './context.js';
import { renameTimeoutMs, unitTimeoutMs } from '../journal/undo-records.js';
import { runHookCommands } from './hooks.js';

export interface UndoContext {
  systemd: Systemd;
  runHook: HookRunner;
  clock: Clock;
  log: StackLog;
  /** Where the restart of the unit is timed, for the downtime; absent in recovery. */
  timings?: StackTimings;
  snapshots?: Snapshots;
  /**
   * Why a Duplicati task may still read this snapshot (then it is kept), or undefined. The
   * run knows it from its jobs; recovery asks Duplicati. Absent: nothing may read it.
   */
  snapshotReader?: (record: { jobs: readonly string[] }, signal: AbortSignal) => Promise<string | undefined>;
  /** A path that was to be removed is kept: it is not what stack-backup made. Named in the summary. */
  kept?(path: string, reason: string): void;
  /** Folders stack-backup made or renamed (a restore's staging folders and swaps). */
  madePaths?: MadePaths;
  /** Duplicati, for the undo of a pause (made when first asked). */
  duplicati?: () => Duplicati;
}

/** The context an undo runs in, for this run: its snapshots are kept while a job may read them. */
export function undoContextOf(run: StackRun): UndoContext {
  const { adapters, log, timings } = run;
  return {
    systemd: adapters.systemd,
    runHook: adapters.runHook,
    clock: adapters.clock,
    log,
    timings,
    snapshots: adapters.snapshots,
    madePaths: adapters.madePaths,
    duplicati: () => adapters.duplicati,
    snapshotReader: async (record: { jobs: readonly string[] }) => {
      const readers = record.jobs.filter((job) => run.jobsMayStillRun?.has(job));
      return readers.length > 0 ? `Duplicati may still run job ${readers.join(', ')}` : undefined;
    },
    kept: (path, reason) => (run.keptPaths ??= []).push(`${path} (${reason})`),
  };
}

/**
 * Runs one of this run's undos and says so in its log; a journal that cannot be crossed out is
 * a warning, kept in the run for its summary.
 */
export function undoExecution(run: StackRun): { execute: UndoExecutor; observer: UndoObserver } {
  const { log } = run;
  const context = undoContextOf(run);
  return {
    execute: (record, signal) => performUndo(record, context, signal),
    observer: {
      started: (name) => log.info('undo start', { undo: name }),
      finished: (name, error) =>
        error ? log.error(`undo "${name}" failed: ${error.message}`, { undo: name }) : log.info('undo done', { undo: name }),
      journalFailed: (error) => {
        (run.journalFailures ??= []).push(error.message);
        log.warn(`cannot update the crash journal: ${error.message}`);
      },
    },
  };
}

export async function performUndo(record: UndoRecord, context: UndoContext, signal: AbortSignal): Promise<void> {
  const { systemd, log } = context;
  switch (record.kind) {
    case 'restore-unit': {
      // A failing pre_start hook fails the stack but must not keep it down: start it anyway.
      const hookFailure = await runHookCommands(record.preStart, log, context.runHook, signal).then(
        () => undefined,
        (error: Error) => error,
      );
      if (!record.start) {
        log.info('unit left stopped', { unit: record.unit, reason: `restore_policy previous and it was ${record.stateBefore}` });
      } else {
        const step = log.step('start unit', { unit: record.unit });
        try {
          if (context.timings) context.timings.unitStartIssuedAt = context.clock.now();
          await systemd.start(record.unit, record.startTimeoutMs, signal, record.members ?? []);
        } catch (error) {
          step.failed(error as Error);
          throw hookFailure ? new Error(`${hookFailure.message}; ${(error as Error).message}`) : error;
        }
        if (context.timings) context.timings.unitStartedAt = context.clock.now();
        step.done();
      }
      if (hookFailure) throw hookFailure;
      return;
    }
    case 'unfreeze': {
      const step = log.step('unfreeze on-demand socket', { socket: record.socket, service: record.service });
      try {
        if (record.socket) await systemd.start(record.socket, unitTimeoutMs, signal);
        if (record.service) await systemd.start(record.service, unitTimeoutMs, signal);
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
      step.done({ socket_started: record.socket !== undefined, service_started: record.service !== undefined });
      return;
    }
    case 'hooks':
      await runHookCommands(record.hooks, log, context.runHook, signal);
      return;
    case 'remove-snapshot': {
      const reader = await context.snapshotReader?.(record, signal);
      if (reader !== undefined) {
        throw new SnapshotKept(
          `snapshot ${record.target} kept: ${reader}, and it must read consistent data to its end; \`stack-backup recover\` or the next run removes it once Duplicati no longer runs the job`,
        );
      }
      if (!context.snapshots) throw new Error(`cannot remove snapshot ${record.target}: no snapshot driver here`);
      const step = log.step('remove snapshot', { target: record.target, driver: record.driver });
      let removal: RemovalOutcome;
      try {
        removal = await context.snapshots.remove(record, signal);
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
      step.done({ outcome: removal.outcome });
      if (removal.outcome === 'kept') {
        // Not ours (any more): nothing of this run's is left to remove there, and what is there stays.
        log.warn(`kept ${record.target}: ${removal.reason}; it is not what stack-backup made, so it was not removed`, { target: record.target });
        context.kept?.(record.target, removal.reason);
      }
      return;
    }
    case 'remove-made': {
      const reader = await context.snapshotReader?.(record, signal);
      if (reader !== undefined) {
        throw new SnapshotKept(`${record.what} ${record.path} kept: ${reader}, which may still write into it; \`stack-backup recover\` or the next run removes it once Duplicati no longer runs the job`);
      }
      if (!context.madePaths) throw new Error(`cannot remove ${record.path}: no file-system adapter here`);
      const step = log.step(`remove ${record.what}`, { path: record.path });
      let removal: RemovalOutcome;
      try {
        if (record.made) removal = await context.madePaths.remove(record.path, record.made, record.method, removalTimeoutMs, signal);
        else {
          const look = await context.madePaths.look(record.path, signal);
          removal = look.kind === 'absent' ? { outcome: 'absent' } : { outcome: 'kept', reason: 'the crash journal records no identity for it (the run ended or failed before it knew what it made)' };
        }
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
      step.done({ outcome: removal.outcome });
      if (removal.outcome === 'kept') {
        log.warn(`kept ${record.path}: ${removal.reason}; it is not what stack-backup made, so it was not removed`, { path: record.path });
        context.kept?.(record.path, removal.reason);
      }
      return;
    }
    case 'rename-back': {
      if (!context.madePaths) throw new Error(`cannot rename ${record.from} back: no file-system adapter here`);
      const step = log.step(`rename ${record.what} back`, { from: record.from, to: record.to });
      try {
        const renamed = await context.madePaths.rename(record.from, record.to, record.made, renameTimeoutMs, signal);
        // Not done, and not to be done by force: what is there is named, and the undo stays in the journal.
        if (renamed.outcome === 'kept') throw new CommandError(`cannot put the ${record.what} back at ${record.to}: ${renamed.reason}`);
        step.done({ outcome: renamed.outcome });
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
      return;
    }
    case 'resume-duplicati': {
      const duplicati = context.duplicati?.();
      if (!duplicati?.resume) throw new Error('cannot resume the Duplicati server: no exec driver here');
      const step = log.step('resume the Duplicati server', { container: record.container });
      try {
        await duplicati.resume(signal);
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
      step.done();
      return;
    }
  }
}
