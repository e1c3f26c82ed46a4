/**
 * Runs the stack's Duplicati jobs, one after the other, and waits until each has really run.
 * `run` only enqueues: a job just enqueued shows as "Active task: None" with the job in the
 * queue, so a job counts as done only after it was seen queued or active and then seen gone.
 */
import type { DuplicatiStatus, JobResult, RunOutcome, TaskReference } from '../adapters/duplicati.js';
import { AbortedError, CommandError, TimeoutError, throwIfAborted } from '../errors.js';
import { formatSeconds } from '../report.js';
import type { StackRun } from './context.js';

const allowedStatusFailures = 3;

const isJob = (backupId: string) => (task: TaskReference | undefined) => task?.backupId === backupId;

export function describeStatus(status: DuplicatiStatus): string {
  const active = status.active ? `task ${status.active.task} (backup ${status.active.backupId})` : 'none';
  const queue = status.queue.map((task) => `${task.task} (backup ${task.backupId})`).join(', ') || 'empty';
  return `server ${status.paused ? 'paused' : 'running'}, active: ${active}, queue: ${queue}`;
}

/** Polls `status`, tolerating a few failed polls in a row, until `until` says the wait is over. */
async function pollStatus(
  run: StackRun,
  what: string,
  until: (status: DuplicatiStatus) => boolean,
): Promise<DuplicatiStatus> {
  const { duplicati, clock } = run.adapters;
  const settings = run.global.duplicati;
  const started = clock.now();
  let failures = 0;
  let pausedSince: number | undefined;
  for (;;) {
    throwIfAborted(run.signal);
    let status: DuplicatiStatus | undefined;
    try {
      status = await duplicati.status(run.signal);
      failures = 0;
    } catch (error) {
      throwIfAborted(run.signal);
      failures += 1;
      run.log.warn(`Duplicati status failed (${failures} of ${allowedStatusFailures})`, { error: (error as Error).message });
      if (failures >= allowedStatusFailures) throw error;
    }
    if (status && until(status)) return status;
    if (status?.paused) {
      if (pausedSince === undefined) {
        pausedSince = clock.now();
        run.log.warn(`Duplicati server is paused: ${what} cannot go on until it is resumed`, { status: describeStatus(status) });
      } else if (clock.now() - pausedSince >= settings.pausedTimeoutMs) {
        throw new CommandError(
          `Duplicati server is paused: ${what} did not go on for ${formatSeconds(clock.now() - pausedSince)} (paused_timeout)`,
        );
      }
    } else {
      pausedSince = undefined;
    }
    if (clock.now() - started >= settings.waitTimeoutMs) {
      throw new TimeoutError(
        `${what}: not done after ${formatSeconds(settings.waitTimeoutMs)} (wait_timeout)${status ? `; ${describeStatus(status)}` : ''}`,
      );
    }
    // Never sleep past a deadline: a timeout is reported when it is reached, not a poll later.
    const deadlines = [started + settings.waitTimeoutMs];
    if (pausedSince !== undefined) deadlines.push(pausedSince + settings.pausedTimeoutMs);
    const untilDeadline = Math.max(0, Math.min(...deadlines) - clock.now());
    if (status && duplicati.waitForChange) {
      // A long-poll that breaks is no verdict: the next status call is, and counts its failures.
      await duplicati.waitForChange(status, untilDeadline, run.signal).catch(async (error: unknown) => {
        throwIfAborted(run.signal);
        run.log.warn('waiting for a change of the Duplicati server state failed', { error: (error as Error).message });
        await clock.sleep(Math.min(firstPollDelayMs * 10, untilDeadline), run.signal);
      });
    } else {
      await clock.sleep(Math.min(nextPollDelay(clock.now() - started, settings.pollIntervalMs), untilDeadline), run.signal);
    }
  }
}

export const firstPollDelayMs = 100;

/**
 * Polls come quickly at first and slow down as the wait goes on, to a tenth of the time waited
 * so far and at most poll_interval: a short job is seen to end at once, and a six-hour one
 * costs a `podman exec` every few seconds, not several a second.
 */
export function nextPollDelay(waitedMs: number, longestMs: number): number {
  return Math.min(longestMs, Math.max(firstPollDelayMs, waitedMs / 10));
}

/**
 * Before the stack is stopped, so a paused or busy server costs no downtime: a job that Duplicati runs or holds queued already (its own
 * schedule fired) would be reused by `run` and back up the live stack. Wait for the server to
 * be idle first; any of its jobs could be ours, since `run` alone maps names to IDs.
 */
export async function waitForDuplicatiIdle(run: StackRun): Promise<void> {
  const step = run.log.step('wait for Duplicati to be idle');
  try {
    await waitUntilIdle(run, 'Duplicati is busy before the stack is stopped; waiting until it is idle');
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
  step.done();
}

const isIdle = (status: DuplicatiStatus) => !status.paused && status.active === undefined && status.queue.length === 0;

async function waitUntilIdle(run: StackRun, busyWarning: string): Promise<void> {
  let warned = false;
  await pollStatus(run, 'the backup', (status) => {
    if (isIdle(status)) return true;
    if (!warned && !status.paused) run.log.warn(busyWarning, { status: describeStatus(status) });
    warned = true;
    return false;
  });
}

async function runJob(run: StackRun, job: string): Promise<void> {
  const { duplicati } = run.adapters;
  const step = run.log.step(`backup job ${job}`);
  try {
    const outcome = await duplicati.run(job, run.signal);
    if (outcome.output.trim() !== '') run.log.info('duplicati run output', { job, output: outcome.output });
    if (outcome.timedOut) {
      run.log.warn(`"run ${job}" did not return within run_timeout; it was ended, and the job is followed by polling`);
    }
    const backupId = outcome.backupId ?? (/^\d+$/.test(job) ? job : undefined);
    if (backupId === undefined) {
      // Queued or not, we cannot tell which task is ours: wait until the server is idle so no job
      // of ours runs while the stack starts again, then fail, since the result is not known.
      await pollStatus(run, `job ${job}`, (status) => status.active === undefined && status.queue.length === 0);
      throw new CommandError(`"run ${job}" printed no "Running backup NAME (ID: N)" line: cannot tell that the job ran`, outcome.output);
    }
    let seen = false;
    let polls = 0;
    const ours = isJob(backupId);
    const last = await pollStatus(run, `job ${job} (backup ${backupId})`, (status) => {
      polls += 1;
      if (ours(status.active) || status.queue.some(ours)) {
        if (!seen) run.log.info('job seen', { job, backup_id: backupId, status: describeStatus(status) });
        seen = true;
        return false;
      }
      if (!seen && polls === 1 && outcome.timedOut) {
        // `run` confirmed the enqueue on an idle server and then hung for run_timeout: a job
        // missing from the queue and the active slot after that has run and ended.
        run.log.warn(`job ${job} ended while "run" hung; it was enqueued (backup ${backupId}) and is no longer queued or active`);
        return true;
      }
      return seen;
    }).catch((error: Error) => {
      // The job was enqueued and not seen to end, and the stack is about to start again: say
      // so, since Duplicati would report that run as a success although it read a live stack.
      const note = `Duplicati may still hold job ${job} (backup ${backupId}): if it runs on after the stack has started again, it reads the running stack, so its result is not a consistent backup`;
      run.log.warn(note);
      if (!(error instanceof AbortedError)) error.message += `; ${note}`;
      throw error;
    });
    const result = await judgeResult(run, job, outcome);
    step.done({ backup_id: backupId, backup_name: outcome.backupName, status: describeStatus(last), result: result.result });
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
}

/**
 * Duplicati's own verdict on the job: Success passes, Warning passes unless warnings_fail,
 * Error and Fatal fail the stack with Duplicati's words. Unknown (the exec driver cannot see
 * it) passes, but is reported as unknown, never as a success.
 */
async function judgeResult(run: StackRun, job: string, outcome: RunOutcome): Promise<JobResult> {
  const result = await run.adapters.duplicati.result(outcome, run.signal);
  run.jobResults.push({ job, ...result });
  const words = result.message ? `: ${result.message}` : '';
  if (result.result === 'Error' || result.result === 'Fatal' || (result.result === 'Warning' && run.global.duplicati.warningsFail)) {
    throw new CommandError(`Duplicati reports ${result.result} for job ${job}${words}`);
  }
  if (result.result === 'Warning') run.log.warn(`Duplicati reports Warning for job ${job}${words}`);
  if (result.result === 'Unknown') run.log.info(`outcome of job ${job} unknown${words}`);
  return result;
}

/**
 * After the stop: a task that Duplicati started between the idle check and the stop may be
 * ours, taken of the live stack, and `run` would join it. Let it end first, so that ours is a
 * fresh task on the stopped stack.
 */
export async function waitForDuplicatiIdleAfterStop(run: StackRun): Promise<void> {
  await waitUntilIdle(run, 'Duplicati started a task before the stack was stopped; waiting for it to end before running a fresh job');
}

export async function runBackupJobs(run: StackRun): Promise<void> {
  run.timings.backupStartedAt = run.adapters.clock.now();
  for (const job of run.stack.jobs) await runJob(run, job);
  run.timings.backupEndedAt = run.adapters.clock.now();
}
