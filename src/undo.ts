/**
 * The undo stack of one stack's run. A step pushes the undo of a change before it makes the
 * change; the undos run in reverse order, each with its own time budget, whatever happened
 * before, and their errors are collected rather than stopping the ones below.
 */
import { TimeoutError, errorMessage } from './errors.js';

export interface UndoAction {
  name: string;
  /** Budget for this undo alone; it gets a fresh signal, never the aborted run's. */
  timeoutMs: number;
  run(signal: AbortSignal): Promise<void>;
}

export interface UndoFailure {
  name: string;
  error: Error;
}

export interface UndoObserver {
  started(action: UndoAction): void;
  finished(action: UndoAction, error: Error | undefined): void;
}

export class UndoStack {
  private readonly actions: UndoAction[] = [];

  push(action: UndoAction): void {
    this.actions.push(action);
  }

  get size(): number {
    return this.actions.length;
  }

  /** Runs every pending undo, last first, and empties the stack. */
  async unwind(observer: UndoObserver): Promise<UndoFailure[]> {
    const failures: UndoFailure[] = [];
    for (let action = this.actions.pop(); action; action = this.actions.pop()) {
      observer.started(action);
      const error = await runBounded(action);
      observer.finished(action, error);
      if (error) failures.push({ name: action.name, error });
    }
    return failures;
  }
}

async function runBounded(action: UndoAction): Promise<Error | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new TimeoutError(`${action.name}: not done within ${Math.round(action.timeoutMs / 1000)} s`)),
    action.timeoutMs,
  );
  try {
    await Promise.race([
      action.run(controller.signal),
      new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true })),
    ]);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new Error(errorMessage(error));
  } finally {
    clearTimeout(timer);
  }
}
