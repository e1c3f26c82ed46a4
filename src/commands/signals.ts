/**
 * SIGTERM, SIGINT and SIGHUP in every command: the signal aborts the work under way (a hook's
 * or systemctl's process group is killed through the AbortSignal) and the command exits
 * 128+N once what it was doing is left consistent.
 */
import { AbortedError } from '../errors.js';
import { exitCodeFor } from '../exit-codes.js';

export const handledSignals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** Aborts the controller on the first signal; a second one only says that the command is finishing. */
export function abortOnSignals(controller: AbortController, report: (text: string) => void, doing = 'restoring the stack'): () => void {
  const handlers = handledSignals.map((name) => {
    const handler = () => {
      if (controller.signal.aborted) {
        report(`${name} received again: still ${doing}, please wait`);
        return;
      }
      report(`${name} received: ending the step under way and ${doing}`);
      controller.abort(new AbortedError(name));
    };
    process.on(name, handler);
    return () => process.off(name, handler);
  });
  return () => handlers.forEach((remove) => remove());
}

/**
 * Runs a command's work with the signals handled; the exit code is the signal's (130, 143,
 * 129) when one came, else the work's.
 */
export async function withSignals(
  report: (text: string) => void,
  doing: string,
  work: (signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const controller = new AbortController();
  const remove = abortOnSignals(controller, report, doing);
  try {
    const code = await work(controller.signal);
    return controller.signal.aborted ? exitCodeFor(controller.signal.reason) : code;
  } catch (error) {
    if (controller.signal.aborted) return exitCodeFor(controller.signal.reason);
    throw error;
  } finally {
    remove();
  }
}

/** Resolves when the signal fires, for work that cannot itself be aborted (a check that only reads). */
export function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
