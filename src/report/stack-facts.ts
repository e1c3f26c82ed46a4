/**
 * What the run history and the crash journal say of one stack, read in one place so that
 * `status` and the metrics never disagree (a stack left down is left down in both).
 */
import type { HistoryEntry } from './history.js';
import type { JournalEntry } from '../journal/journal.js';

export interface StackFacts {
  configured: boolean;
  last: HistoryEntry | undefined;
  lastSuccess: HistoryEntry | undefined;
  /**
   * The last run left the stack down (the summary's FAILED, NOT RESTORED: restoring its unit or
   * socket failed) and that undo still waits in the journal. The failed undo stays there under
   * the run's ID; once `recover` has done it, the stack is back, although the history still
   * says how the run ended.
   */
  leftDown: boolean;
  /** Undos of the stack waiting in the journal for `recover`. */
  pending: JournalEntry[];
  /** The last run whose restore test ran, and the last whose test passed. */
  lastTest: HistoryEntry | undefined;
  lastPassingTest: HistoryEntry | undefined;
}

/** An undo that puts a unit or socket back: the ones whose failure the summary calls NOT RESTORED. */
export function restoresStack(entry: JournalEntry): boolean {
  return entry.undo.kind === 'restore-unit' || entry.undo.kind === 'unfreeze';
}

/**
 * `pending` is the journal as far as it waits for recovery: all of it when no run holds the
 * lock, or between two stacks of the run that writes; nothing while another run is under way.
 */
export function stackFacts(stack: string, configured: readonly string[], history: readonly HistoryEntry[], pending: readonly JournalEntry[]): StackFacts {
  const runs = history.filter((entry) => entry.stack === stack);
  const last = runs.at(-1);
  const ofStack = pending.filter((entry) => entry.stack === stack);
  return {
    configured: configured.includes(stack),
    last,
    lastSuccess: runs.filter((entry) => entry.result === 'success').at(-1),
    leftDown: last !== undefined && last.notRestored && ofStack.some((entry) => entry.run === last.run && restoresStack(entry)),
    pending: ofStack,
    lastTest: runs.filter((entry) => entry.restoreTest !== undefined).at(-1),
    lastPassingTest: runs.filter((entry) => entry.restoreTest?.passed === true).at(-1),
  };
}

/** The stacks to show: every configured one, and any the journal still holds something of. */
export function shownStacks(configured: readonly string[], pending: readonly JournalEntry[]): string[] {
  return [...new Set([...configured, ...pending.map((entry) => entry.stack)])];
}
