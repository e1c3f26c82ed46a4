/**
 * What an undo record is, as plain values: its name, its time budget, and what it will do,
 * command by command. Shared by the undo stack, the run, recovery, `status` and the dry runs,
 * and free of the steps, so the undo stack does not depend on the code that carries undos out.
 */
import { longestTimerMs } from '../adapters/clock.js';
import { hookArgv } from '../adapters/hooks.js';
import { serverUtilArgv } from '../adapters/duplicati.js';
import { describeRemoval } from '../adapters/made-paths.js';
import { markerPath, removalMethod, snapshotTimeoutMs } from '../adapters/snapshots.js';
import { systemctlArgv } from '../adapters/systemd.js';
import type { SnapshotDriverName } from '../config/types.js';
import type { HookCommands, UndoRecord } from './journal.js';
import { formatSeconds } from '../format.js';
import { shellLine } from '../shell-quote.js';

/** What starting a socket or its service may take. */
export const unitTimeoutMs = 60_000;
const slackMs = 5000;

/**
 * Undos that remove data stack-backup made (snapshots, staging folders): done after every unit,
 * socket and hook, in a run and in recover, since removing a large copy can take minutes and no
 * stack must wait down for it.
 */
export function removesData(record: UndoRecord): boolean {
  return record.kind === 'remove-snapshot' || record.kind === 'remove-made';
}

export function undoName(record: UndoRecord): string {
  switch (record.kind) {
    case 'restore-unit':
      return 'restore unit';
    case 'unfreeze':
      return 'unfreeze on-demand socket';
    case 'hooks':
      return `${record.hooks.phase} hooks`;
    case 'remove-snapshot':
      return `remove snapshot ${record.target}`;
    case 'remove-made':
      return `remove ${record.what} ${record.path}`;
    case 'rename-back':
      return `rename ${record.what} back to ${record.to}`;
    case 'resume-duplicati':
      return 'resume the Duplicati server';
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
      const start = `${shellLine(systemctlArgv('start', record.unit, record.members))} (start_timeout ${formatSeconds(record.startTimeoutMs)})`;
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
    case 'remove-snapshot':
      return [
        `unless Duplicati may still run job ${record.jobs.join(' or ')} (then the snapshot is kept for it, and recover or the next run removes it)`,
        ...describeSnapshotRemoval(record.driver, record.target),
      ];
    case 'remove-made':
      return [
        `unless Duplicati may still run job ${record.jobs.join(' or ')} (then it is kept for it, and recover or the next run removes it)`,
        ...describeRemoval(shellLine([record.path]), record.method, `the ${record.what} stack-backup made`),
      ];
    case 'rename-back':
      return [
        `only if ${shellLine([record.from])} is still the ${record.what} (not a link; same folder, filesystem, inode and birth time) and nothing is at ${shellLine([record.to])}, inside podman unshare:`,
        `mv -n -T -- ${shellLine([record.from])} ${shellLine([record.to])}`,
      ];
    case 'resume-duplicati':
      return [shellLine(serverUtilArgv(record, 'resume'))];
  }
}

/** The commands that remove a snapshot and then its marker, shell-quoted, each after its check. */
export function describeSnapshotRemoval(driver: SnapshotDriverName, target: string): string[] {
  return [
    ...describeRemoval(shellLine([target]), removalMethod(driver), 'the snapshot stack-backup made'),
    `rm -f -- ${shellLine([markerPath(target)])} (only a marker of stack-backup's, never through a link)`,
  ];
}

/** The clock holds every timer; an undo's budget is at most what one holds (re-exported for callers of this module). */
export { longestTimerMs };

/** Each undo's own time budget: what its commands may take, and a little more. */
export function undoTimeoutMs(record: UndoRecord): number {
  return Math.min(longestTimerMs, unboundedUndoTimeoutMs(record));
}

function unboundedUndoTimeoutMs(record: UndoRecord): number {
  switch (record.kind) {
    case 'restore-unit':
      return record.startTimeoutMs + record.preStart.timeoutMs * record.preStart.commands.length + slackMs;
    case 'unfreeze':
      return 2 * unitTimeoutMs + slackMs;
    case 'hooks':
      return record.hooks.timeoutMs * Math.max(1, record.hooks.commands.length) + slackMs;
    case 'remove-snapshot':
      // The target and, where the run ended mid-snapshot, the folder it was made in.
      return 2 * snapshotTimeoutMs + 4 * 30_000 + slackMs;
    case 'remove-made':
      return snapshotTimeoutMs + 4 * 30_000 + slackMs;
    case 'rename-back':
      return renameTimeoutMs + slackMs;
    case 'resume-duplicati':
      return 30_000 + slackMs;
  }
}

/** A rename inside the user's namespace: a podman unshare, a look, a rename. */
export const renameTimeoutMs = 60_000;
