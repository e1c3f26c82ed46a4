/**
 * Carries out an undo record: the same code puts a stack back after a good backup, after a
 * failed step, and when `recover` replays the journal of a run that died.
 */
import type { Clock } from '../adapters/clock.js';
import { hookArgv, type HookRunner } from '../adapters/hooks.js';
import { systemctlArgv, type Systemd } from '../adapters/systemd.js';
import type { HookCommands } from '../journal.js';
import { formatSeconds } from '../report.js';
import { shellLine } from '../shell-quote.js';
import type { UndoRecord } from '../journal.js';
import type { StackLog } from '../logging.js';
import type { StackTimings } from './context.js';
import { runHookCommands } from './hooks.js';

const unitTimeoutMs = 60_000;
const slackMs = 5000;

export interface UndoContext {
  systemd: Systemd;
  runHook: HookRunner;
  clock: Clock;
  log: StackLog;
  /** Where the restart of the unit is timed, for the downtime; absent in recovery. */
  timings?: StackTimings;
}

export function undoName(record: UndoRecord): string {
  switch (record.kind) {
    case 'restore-unit':
      return 'restore unit';
    case 'unfreeze':
      return 'unfreeze on-demand socket';
    case 'hooks':
      return `${record.hooks.phase} hooks`;
  }
}

/** Each hook command as the shell line it runs, named by its phase. */
export function describeHooks(hooks: Pick<HookCommands, 'phase' | 'commands'>): string[] {
  return hooks.commands.map((command) => `${hooks.phase} hook: ${shellLine(hookArgv(command))}`);
}

/**
 * What an undo will do, command by command, shell-quoted: the dry run shows it for each step,
 * `recover --dry-run` for each journal entry. `startCondition` is said of a unit start whose
 * need is only known at run time (restore_policy previous).
 */
export function describeUndo(record: UndoRecord, startCondition?: string): string[] {
  switch (record.kind) {
    case 'restore-unit': {
      const start = `${shellLine(systemctlArgv('start', record.unit))} (start_timeout ${formatSeconds(record.startTimeoutMs)})`;
      return [
        ...describeHooks(record.preStart),
        startCondition !== undefined
          ? `${start}, ${startCondition}`
          : record.start
            ? start
            : `leave ${record.unit} stopped (restore_policy previous, and it was ${record.stateBefore})`,
      ];
    }
    case 'unfreeze': {
      const units = [record.socket, record.service].filter((unit): unit is string => unit !== undefined);
      if (units.length === 0) return ['nothing to start: neither the socket nor its service was active'];
      return units.map((unit) => `${shellLine(systemctlArgv('start', unit))}${startCondition !== undefined ? `, ${startCondition}` : ''}`);
    }
    case 'hooks':
      return describeHooks(record.hooks);
  }
}

/** Each undo's own time budget: what its commands may take, and a little more. */
export function undoTimeoutMs(record: UndoRecord): number {
  switch (record.kind) {
    case 'restore-unit':
      return record.startTimeoutMs + record.preStart.timeoutMs * record.preStart.commands.length + slackMs;
    case 'unfreeze':
      return 2 * unitTimeoutMs + slackMs;
    case 'hooks':
      return record.hooks.timeoutMs * Math.max(1, record.hooks.commands.length) + slackMs;
  }
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
          await systemd.start(record.unit, record.startTimeoutMs, signal);
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
  }
}
