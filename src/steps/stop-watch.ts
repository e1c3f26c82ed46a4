/**
 * Duplicati watched while the stack stops (stop mode). After the stop, Duplicati must hold no
 * task begun before it (`run` would join such a task, taken of the live stack), and the job's
 * record must be read before its run. Both used to follow the stop, each a call on the downtime
 * path; here they overlap the unit's stop and its containers' exit: status is read one call
 * after the other from the moment the stop is asked, and once a look that began after that
 * moment shows Duplicati idle, the first job's record is read. When the stack is down, the run
 * goes ahead at once if every look since the stop showed Duplicati idle; a look that showed a
 * task (or a pause) hands over to the wait of before, and the record is read again at `run`.
 *
 * What is left unseen is the same as before: a task that starts between the newest look and the
 * run request (the time of one status call), which `run` would join.
 */
import type { DuplicatiStatus, PreparedRun } from '../adapters/duplicati.js';
import { errorMessage } from '../errors.js';
import { continuousPollGapMs, describeStatus, waitForDuplicatiIdleAfterStop } from './backup.js';
import type { StackRun, StopWatch, WatchVerdict } from './context.js';

const allowedFailures = 3;

const isIdle = (status: DuplicatiStatus) => !status.paused && status.active === undefined && status.queue.length === 0;

/** Starts the looks now: call it as the stop is asked (timings.unitStopIssuedAt set). */
export function watchDuplicatiDuringStop(run: StackRun): StopWatch {
  const { duplicati, clock } = run.adapters;
  const since = run.timings.unitStopIssuedAt ?? clock.now();
  const job = run.stack.jobs[0];
  // Ends the pause between looks; a look under way is let finish (ending it would end the
  // exec session the job's own polls need next).
  const pause = new AbortController();
  let stopped = false;
  let verdict: WatchVerdict | undefined;
  let wake: (() => void) | undefined;
  const decide = (value: WatchVerdict) => {
    verdict ??= value;
    wake?.();
  };
  let confirmedAt: number | undefined;
  let prepared: Promise<PreparedRun | undefined> | undefined;

  const loop = async () => {
    let failures = 0;
    while (!stopped && !run.signal.aborted && verdict === undefined) {
      const began = clock.now();
      let status: DuplicatiStatus;
      try {
        status = await duplicati.status(run.signal);
        failures = 0;
      } catch (error) {
        if (run.signal.aborted) break;
        failures += 1;
        run.log.warn(`Duplicati status failed (${failures} of ${allowedFailures}) while the stack stops`, { error: errorMessage(error) });
        if (failures >= allowedFailures) {
          decide({ kind: 'failed', error: error instanceof Error ? error : new Error(errorMessage(error)) });
          break;
        }
        continue;
      }
      if (!isIdle(status)) {
        run.log.info('Duplicati is busy or paused while the stack stops', { status: describeStatus(status) });
        decide({ kind: 'busy', status });
        break;
      }
      if (began >= since) {
        confirmedAt = clock.now();
        // The record, once: read after a look begun after the stop showed Duplicati idle.
        if (!prepared) {
          prepared = job !== undefined && duplicati.prepare ? duplicati.prepare(job, run.signal) : Promise.resolve(undefined);
          // Its failure is read by settle; until then it must not count as unhandled.
          prepared.catch(() => {});
        }
        wake?.();
      }
      if (stopped) break;
      await clock.sleep(continuousPollGapMs, pause.signal).catch(() => {});
    }
  };
  const looking = loop();

  return {
    async settle() {
      for (;;) {
        if (verdict) return verdict;
        if (confirmedAt !== undefined && prepared) {
          try {
            const value = await prepared;
            // A look may have seen a task meanwhile: that verdict wins.
            return verdict ?? { kind: 'idle', confirmedAt, prepared: value };
          } catch (error) {
            return { kind: 'failed', error: error instanceof Error ? error : new Error(errorMessage(error)) };
          }
        }
        if (run.signal.aborted) return { kind: 'failed', error: run.signal.reason instanceof Error ? run.signal.reason : new Error(String(run.signal.reason)) };
        const ended = await new Promise<boolean>((resolve) => {
          wake = () => resolve(false);
          void looking.then(() => resolve(true));
        });
        wake = undefined;
        if (ended && verdict === undefined && confirmedAt === undefined) {
          return { kind: 'failed', error: run.signal.reason instanceof Error ? run.signal.reason : new Error('the looks at Duplicati ended before one showed it idle') };
        }
      }
    },
    stop() {
      stopped = true;
      pause.abort();
    },
  };
}

/**
 * Once the stack is down: the looks made while it stopped either showed Duplicati idle since
 * the stop, and the job's record was read meanwhile, or they showed a task: then Duplicati is
 * waited for as before (queue time), and the record is read at `run`.
 */
export async function confirmIdleAfterStop(run: StackRun, verdict: WatchVerdict): Promise<void> {
  if (verdict.kind === 'failed') throw verdict.error;
  if (verdict.kind === 'idle') {
    run.timings.duplicatiIdleAt = verdict.confirmedAt;
    run.preparedRun = verdict.prepared;
    return;
  }
  await waitForDuplicatiIdleAfterStop(run);
  run.timings.duplicatiIdleAt = run.adapters.clock.now();
}
