/**
 * src/adapters/clock.ts: the one timeout helper. A deadline fires with its error when the
 * clock reaches it (the fake clock's virtual time in tests, so no test waits), is clamped to
 * what a Node timer holds, and bounds work that ignores its signal.
 */
import { describe, expect, it } from 'vitest';
import { longestTimerMs, systemClock, timerDelay, withTimeout } from '../../src/adapters/clock.js';
import { TimeoutError } from '../../src/errors.js';
import { UndoStack, noJournal, runBounded } from '../../src/journal/undo.js';
import type { UndoRecord } from '../../src/journal/journal.js';
import { FakeClock } from '../fakes.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));
const late = () => new TimeoutError('late');

describe('timerDelay', () => {
  it('clamps to what a Node timer holds and never goes below 0', () => {
    expect(timerDelay(5)).toBe(5);
    expect(timerDelay(-3)).toBe(0);
    expect(timerDelay(2 ** 40)).toBe(longestTimerMs);
    expect(longestTimerMs).toBe(2 ** 31 - 1);
  });
});

describe('systemClock.timeout', () => {
  it('a deadline longer than a timer holds does not fire at once', async () => {
    const deadline = systemClock.timeout(2 ** 40, late);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(deadline.signal.aborted).toBe(false);
    deadline.clear();
  });

  it('fires with its error', async () => {
    const deadline = systemClock.timeout(1, late);
    await new Promise((resolve) => deadline.signal.addEventListener('abort', resolve, { once: true }));
    expect(deadline.signal.reason).toEqual(new TimeoutError('late'));
  });
});

describe('FakeClock.timeout', () => {
  it('fires once virtual time reaches it, by advance or sleep; a cleared one never', async () => {
    const clock = new FakeClock();
    const first = clock.timeout(1000, late);
    const cleared = clock.timeout(1000, late);
    cleared.clear();
    clock.advance(999);
    expect(first.signal.aborted).toBe(false);
    await clock.sleep(1);
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toBeInstanceOf(TimeoutError);
    expect(cleared.signal.aborted).toBe(false);
    expect(clock.pendingDeadlines).toBe(0);
  });

  it('a zero delay fires without time passing', async () => {
    const clock = new FakeClock();
    const deadline = clock.timeout(0, late);
    await settle();
    expect(deadline.signal.aborted).toBe(true);
  });
});

describe('withTimeout', () => {
  it('the work finishing first: its value, and the deadline is cleared', async () => {
    const clock = new FakeClock();
    expect(await withTimeout(clock, 1000, late, async () => 'done')).toBe('done');
    expect(clock.pendingDeadlines).toBe(0);
  });

  it('the work failing first: its error', async () => {
    const clock = new FakeClock();
    await expect(withTimeout(clock, 1000, late, async () => Promise.reject(new Error('broken')))).rejects.toThrow('broken');
    expect(clock.pendingDeadlines).toBe(0);
  });

  it('work that ignores its signal: the deadline error when the clock gets there; the signal it got has fired', async () => {
    const clock = new FakeClock();
    let given: AbortSignal | undefined;
    let outcome: unknown;
    void withTimeout(clock, 30_000, late, (signal) => {
      given = signal;
      return new Promise<never>(() => {});
    }).catch((error: unknown) => (outcome = error));
    clock.advance(29_999);
    await settle();
    expect(outcome).toBeUndefined();
    clock.advance(1);
    await settle();
    expect(outcome).toEqual(new TimeoutError('late'));
    expect(given!.aborted).toBe(true);
  });

  it('a failure of the work after the deadline is not unhandled', async () => {
    const clock = new FakeClock();
    let fail: (error: Error) => void = () => {};
    const bounded = withTimeout(clock, 10, late, () => new Promise<never>((_, reject) => (fail = reject)));
    clock.advance(10);
    await expect(bounded).rejects.toThrow('late');
    fail(new Error('after the deadline'));
    await settle();
  });
});

describe('undos bounded by the injected clock', () => {
  const record: UndoRecord = { kind: 'unfreeze', socket: 'app.socket', service: undefined };

  it('runBounded: an undo that hangs ends with a timeout when virtual time passes its budget', async () => {
    const clock = new FakeClock();
    let error: Error | undefined | 'pending' = 'pending';
    void runBounded(record, () => new Promise<never>(() => {}), 60_000, clock).then((result) => (error = result));
    await settle();
    expect(error).toBe('pending');
    clock.advance(60_000);
    await settle();
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as unknown as Error).message).toMatch(/not done within 60 s$/);
  });

  it('UndoStack: each undo gets its budget on the given clock, and the next still runs', async () => {
    const clock = new FakeClock();
    const undo = new UndoStack(noJournal, () => 5_000, clock);
    undo.push('app', record);
    undo.push('app', record);
    const ran: number[] = [];
    const unwinding = undo.unwind(
      async (_record, signal) => {
        ran.push(clock.now());
        if (ran.length === 1) await new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      },
      { started: () => {}, finished: () => {} },
    );
    await settle();
    clock.advance(5_000);
    const failures = await unwinding;
    expect(failures).toHaveLength(1);
    expect(failures[0]!.error).toBeInstanceOf(TimeoutError);
    expect(ran).toHaveLength(2);
    expect(clock.pendingDeadlines).toBe(0);
  });
});
