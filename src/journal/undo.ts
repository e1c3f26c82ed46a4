/**
 * The undo stack of one stack's run. A step pushes the undo of a change before it makes the
 * change, and the push writes it to the crash journal first; the undos run in reverse order,
 * each with its own time budget, whatever happened before, and their errors are collected
 * rather than stopping the ones below. An undo leaves the journal only once it is done.
 */
import { systemClock, withTimeout, type Clock } from '../adapters/clock.js';
import { TimeoutError, errorMessage } from '../errors.js';
import type { Journal, UndoRecord } from './journal.js';
import { undoName, undoTimeoutMs } from './undo-records.js';

/** The crash journal could not be written before a change: the change was not made. */
export class JournalError extends Error {
  override name = 'JournalError';
}

export interface UndoFailure {
  name: string;
  error: Error;
  record: UndoRecord;
}

export interface UndoObserver {
  started(name: string): void;
  finished(name: string, error: Error | undefined): void;
  /** The journal could not be written: the undo is done, but may be replayed once more. */
  journalFailed?(error: Error): void;
}

/**
 * A journal that cannot be written (disk full) must not stop the undos below: the undo is
 * done, and replaying it later again is harmless (starting an active unit changes nothing).
 */
export function crossOut(journal: Journal, id: string, observer: Pick<UndoObserver, 'journalFailed'>): void {
  try {
    journal.remove(id);
  } catch (error) {
    observer.journalFailed?.(error instanceof Error ? error : new Error(errorMessage(error)));
  }
}

/** An undo on the stack, whose record can be completed once its change knows what it made. */
export interface RecordedUndo {
  /** Replaces the record, in memory and in the crash journal. */
  update(record: UndoRecord): void;
}

export type UndoExecutor = (record: UndoRecord, signal: AbortSignal) => Promise<void>;

interface Pending {
  record: UndoRecord;
  journalId: string | undefined;
}

/** A journal that keeps nothing, for runs and tests that need no crash recovery. */
export const noJournal: Journal = {
  add: () => '',
  update: () => {},
  remove: () => {},
  pending: () => [],
};

export class UndoStack {
  private readonly pending: Pending[] = [];

  constructor(
    private readonly journal: Journal = noJournal,
    private readonly budget: (record: UndoRecord) => number = undoTimeoutMs,
    private readonly clock: Pick<Clock, 'timeout'> = systemClock,
  ) {}

  /**
   * Records the undo durably; call it before the change it reverses. When the journal cannot
   * be written (disk full) this throws, so the step fails before its change: a change whose
   * undo a crash would lose is not made.
   */
  push(stack: string, record: UndoRecord): RecordedUndo {
    let journalId: string;
    try {
      journalId = this.journal.add(stack, record);
    } catch (error) {
      throw new JournalError(`cannot write the crash journal (${errorMessage(error)}), so the change that "${undoName(record)}" would undo was not made`);
    }
    const entry: Pending = { record, journalId };
    this.pending.push(entry);
    return {
      update: (updated) => {
        entry.record = updated;
        try {
          this.journal.update(journalId, updated);
        } catch (error) {
          // The change is under way: a journal that cannot take what it made stops it, and the
          // undo (which has it in memory) removes it; after a crash, recover keeps what it cannot identify.
          throw new JournalError(`cannot write the crash journal (${errorMessage(error)}): stopping before "${undoName(updated)}" could not be undone after a crash`);
        }
      },
    };
  }

  get size(): number {
    return this.pending.length;
  }

  /** Runs every pending undo, last first, and empties the stack. */
  async unwind(execute: UndoExecutor, observer: UndoObserver): Promise<UndoFailure[]> {
    return this.settle(() => true, execute, observer);
  }

  /**
   * Takes the pending undos that `which` picks off the stack without running them, and crosses
   * them out of the journal: their change is now the one wanted (a restore's swap, once the
   * restored stack has passed its verify hooks). A journal that cannot be written is the
   * observer's warning: replaying such an undo later would undo a wanted change, so it says so.
   */
  commit(which: (record: UndoRecord) => boolean, observer: Pick<UndoObserver, 'journalFailed'>): UndoRecord[] {
    const picked = this.pending.filter((entry) => which(entry.record));
    this.pending.splice(0, this.pending.length, ...this.pending.filter((entry) => !which(entry.record)));
    for (const entry of picked) if (entry.journalId) crossOut(this.journal, entry.journalId, observer);
    return picked.map((entry) => entry.record);
  }

  /** The pending undos, oldest first (for a step that must know what is registered). */
  records(): UndoRecord[] {
    return this.pending.map((entry) => entry.record);
  }

  /**
   * Runs the pending undos that `which` picks, last first, and takes them off the stack; the
   * others stay for later. Snapshot mode restores the stack this way while the removal of its
   * snapshots waits for the jobs.
   */
  async settle(which: (record: UndoRecord) => boolean, execute: UndoExecutor, observer: UndoObserver): Promise<UndoFailure[]> {
    const failures: UndoFailure[] = [];
    const picked = this.pending.filter((entry) => which(entry.record));
    const kept = this.pending.filter((entry) => !which(entry.record));
    this.pending.splice(0, this.pending.length, ...kept);
    for (let entry = picked.pop(); entry; entry = picked.pop()) {
      const name = undoName(entry.record);
      observer.started(name);
      const error = await runBounded(entry.record, execute, this.budget(entry.record), this.clock);
      observer.finished(name, error);
      if (error) failures.push({ name, error, record: entry.record });
      // Left in the journal when it failed: `recover` (or the next run) tries again.
      else if (entry.journalId) crossOut(this.journal, entry.journalId, observer);
    }
    return failures;
  }
}

/** Runs one undo within its budget; its error (a timeout too) is returned, never thrown. */
export async function runBounded(
  record: UndoRecord,
  execute: UndoExecutor,
  timeoutMs = undoTimeoutMs(record),
  clock: Pick<Clock, 'timeout'> = systemClock,
): Promise<Error | undefined> {
  try {
    await withTimeout(
      clock,
      timeoutMs,
      () => new TimeoutError(`${undoName(record)}: not done within ${Math.round(timeoutMs / 1000)} s`),
      (signal) => execute(record, signal),
    );
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new Error(errorMessage(error));
  }
}
