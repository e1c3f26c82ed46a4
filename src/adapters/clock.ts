/**
 * Time, passed in so tests can run waits without waiting: the clock tells the time, sleeps,
 * and hands out deadlines, the one way a step or an adapter bounds a wait.
 */
import { throwIfAborted } from '../errors.js';

/**
 * The longest delay a Node timer takes (about 24.8 days): a longer one fires at once
 * (TimeoutOverflowWarning), which would end a wait before it began. Several hooks at the
 * largest hook_timeout add up past it.
 */
export const longestTimerMs = 2 ** 31 - 1;

/** A delay a timer can hold: at most longestTimerMs, never negative. */
export function timerDelay(ms: number): number {
  return Math.min(longestTimerMs, Math.max(0, ms));
}

/** A deadline under way: its signal fires with the deadline's error when the time is up. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Ends the timer; call it once the bounded work is done, so nothing fires later. */
  clear(): void;
}

export interface Clock {
  now(): number;
  /** Resolves after ms, or rejects with the abort reason as soon as the signal fires. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A deadline ms from now (at most longestTimerMs) whose signal fires with makeError(). */
  timeout(ms: number, makeError: () => Error): Deadline;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      throwIfAborted(signal);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, timerDelay(ms));
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  timeout: (ms, makeError) => {
    const controller = new AbortController();
    // Not unref'd: a wait bounded by it must not let the process exit early, mid-restore,
    // because the only thing left on the event loop was its deadline.
    const timer = setTimeout(() => controller.abort(makeError()), timerDelay(ms));
    return { signal: controller.signal, clear: () => clearTimeout(timer) };
  },
};

/**
 * Runs work with a signal that fires at the deadline, and settles no later than then with the
 * deadline's error, even when the work does not heed its signal (a call that has none, a
 * child process the kernel will not let die). A failure of the work after that is dropped.
 */
export async function withTimeout<T>(
  clock: Pick<Clock, 'timeout'>,
  ms: number,
  makeError: () => Error,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = clock.timeout(ms, makeError);
  let onAbort: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    onAbort = () => reject(deadline.signal.reason);
    if (deadline.signal.aborted) onAbort();
    else deadline.signal.addEventListener('abort', onAbort, { once: true });
  });
  const pending = work(deadline.signal);
  // After the deadline the work may still fail later; that must not count as unhandled.
  pending.catch(() => {});
  try {
    return await Promise.race([pending, expired]);
  } finally {
    deadline.clear();
    deadline.signal.removeEventListener('abort', onAbort!);
  }
}
