/**
 * Runs the stack's Duplicati jobs, one after the other, and waits until each has really run.
 * `run` only enqueues, and a job may end before anyone looks (a job that fails on start ends
 * in milliseconds), so a job's end is read from its task (REST API: `GET task/{id}`) or from
 * its record (exec: `LastBackupFinished`/`LastErrorDate` changed, see shared/notes/duplicati.md),
 * never only from catching it in the queue. When the run must give up while our task is
 * queued or running, the task is stopped (REST API) or the job is named as one that may read
 * the live stack.
 */
import { recordChange, UnknownJobError, type DuplicatiStatus, type JobRecord, type JobResult, type PreparedRun, type JobRun, type TaskReference } from '../adapters/duplicati.js';
import { CommandError, TimeoutError, errorMessage, throwIfAborted } from '../errors.js';
import { formatBytes, formatSeconds } from '../format.js';
import type { StepHandle } from '../report/logging.js';
import type { StackRun } from './context.js';

const allowedStatusFailures = 3;
/**
 * After `run` returned, a job that is neither queued nor active and whose record did not
 * change within this did not run (`run` hung before it sent its request, RunBackup.cs).
 */
export const didNotRunGraceMs = 5_000;
/** How long a stopped task may take to end before the stack starts again all the same. */
export const stopWaitMs = 30_000;
/** `stop` ends a task after its current file; past this, `abort` ends it at once. */
export const abortAfterMs = 5_000;
const progressLogEveryMs = 60_000;

const isJob = (backupId: string) => (task: TaskReference | undefined) => task?.backupId === backupId;

export class JobDidNotRunError extends CommandError {
  override name = 'JobDidNotRunError';
}

export function describeStatus(status: DuplicatiStatus): string {
  const active = status.active ? `task ${status.active.task} (backup ${status.active.backupId})` : 'none';
  const queue = status.queue.map((task) => `${task.task} (backup ${task.backupId})`).join(', ') || 'empty';
  return `server ${status.paused ? 'paused' : 'running'}, active: ${active}, queue: ${queue}`;
}

interface Wait {
  /** What the wait is for, as warnings and timeouts name it: "job web (backup 3)". */
  what: string;
  until: (status: DuplicatiStatus) => boolean | Promise<boolean>;
  /** The stack is down and waits behind another job's task: counted as queue time. */
  behind?: (status: DuplicatiStatus) => boolean;
  /** A deadline of the caller's: the wait wakes up by then to look again. */
  wakeBy?: () => number | undefined;
  /** Each look reads the jobs' records too once this backup is gone, in the same call where the driver can (exec). */
  jobsOnceGone?: string | undefined;
  /**
   * The stack is down and waits for this: look again as soon as a look returns (after
   * continuousPollGapMs), so an end is seen within one status call, not a back-off later.
   */
  continuous?: boolean;
}

/** Polls `status`, tolerating a few failed polls in a row, until `until` says the wait is over. */
async function pollStatus(run: StackRun, wait: Wait): Promise<DuplicatiStatus> {
  const { duplicati, clock } = run.adapters;
  const settings = run.global.duplicati;
  const started = clock.now();
  let failures = 0;
  let pausedSince: number | undefined;
  let behindSince: number | undefined;
  const countQueueTime = () => {
    if (behindSince === undefined) return;
    run.timings.queueMs = (run.timings.queueMs ?? 0) + (clock.now() - behindSince);
    behindSince = undefined;
  };
  /** A state the long-poll brought back: the next look needs no call of its own. */
  let brought: DuplicatiStatus | undefined;
  try {
    for (;;) {
      throwIfAborted(run.signal);
      let status: DuplicatiStatus | undefined;
      try {
        status = brought ?? (await duplicati.status(run.signal, wait.jobsOnceGone !== undefined ? { jobsOnceGone: wait.jobsOnceGone } : undefined));
        brought = undefined;
        failures = 0;
      } catch (error) {
        throwIfAborted(run.signal);
        failures += 1;
        run.log.warn(`Duplicati status failed (${failures} of ${allowedStatusFailures}) while waiting for ${wait.what}`, { error: errorMessage(error) });
        if (failures >= allowedStatusFailures) throw error;
      }
      if (status) {
        if (wait.behind?.(status)) behindSince ??= clock.now();
        else countQueueTime();
      }
      if (status && (await wait.until(status))) return status;
      if (status?.paused) {
        if (pausedSince === undefined) {
          pausedSince = clock.now();
          run.log.warn(`Duplicati server is paused: waiting for ${wait.what} cannot go on until it is resumed`, { status: describeStatus(status) });
        } else if (clock.now() - pausedSince >= settings.pausedTimeoutMs) {
          throw new CommandError(
            `Duplicati server is paused: ${wait.what} did not go on for ${formatSeconds(clock.now() - pausedSince)} (paused_timeout)`,
          );
        }
      } else {
        pausedSince = undefined;
      }
      if (clock.now() - started >= settings.waitTimeoutMs) {
        throw new TimeoutError(
          `waiting for ${wait.what}: not done after ${formatSeconds(settings.waitTimeoutMs)} (wait_timeout)${status ? `; ${describeStatus(status)}` : ''}`,
        );
      }
      // Never sleep past a deadline: a timeout is reported when it is reached, not a poll later.
      const deadlines = [started + settings.waitTimeoutMs];
      if (pausedSince !== undefined) deadlines.push(pausedSince + settings.pausedTimeoutMs);
      const wakeBy = wait.wakeBy?.();
      if (wakeBy !== undefined) deadlines.push(wakeBy);
      const untilDeadline = Math.max(0, Math.min(...deadlines) - clock.now());
      if (status && duplicati.waitForChange) {
        // A long-poll that breaks is no verdict: the next status call is, and counts its failures.
        const changed = await duplicati.waitForChange(status, untilDeadline, run.signal).catch(async (error: unknown) => {
          throwIfAborted(run.signal);
          run.log.warn('waiting for a change of the Duplicati server state failed', { error: errorMessage(error) });
          await clock.sleep(Math.min(firstPollDelayMs * 10, untilDeadline), run.signal);
        });
        // Its answer is the new state (a long-poll that ran out brings the same one: look again).
        if (changed && changed.eventId !== status.eventId) brought = changed;
      } else if (wait.continuous) {
        await clock.sleep(Math.min(continuousPollGapMs, untilDeadline), run.signal);
      } else {
        await clock.sleep(Math.min(nextPollDelay(clock.now() - started, settings.pollIntervalMs), untilDeadline), run.signal);
      }
    }
  } finally {
    countQueueTime();
  }
}

export const firstPollDelayMs = 100;
/**
 * Between two looks while the stack is down: the next look begins this long after the last one
 * returned. Each look is a status call (exec: `duplicati-server-util status` in the session, a
 * .NET start and a sign-in), so the end of a job is seen within one call of it.
 */
export const continuousPollGapMs = 50;

/**
 * Polls come quickly at first and slow down as the wait goes on, to a tenth of the time waited
 * so far and at most poll_interval: a short job is seen to end at once, and a six-hour one
 * costs a `podman exec` every few seconds, not several a second.
 */
export function nextPollDelay(waitedMs: number, longestMs: number): number {
  return Math.min(longestMs, Math.max(firstPollDelayMs, waitedMs / 10));
}

const isIdle = (status: DuplicatiStatus) => !status.paused && status.active === undefined && status.queue.length === 0;
const isBusy = (status: DuplicatiStatus) => status.active !== undefined || status.queue.length > 0;

/**
 * Before the stack is stopped, so a paused or busy server costs no downtime: a job that Duplicati runs or holds queued already (its own
 * schedule fired) would be reused by `run` and back up the live stack. Wait for the server to
 * be idle first; any of its jobs could be ours, since `run` alone maps names to IDs.
 * `readyFirstJob` (a backup's): then readies the first job's run (see Duplicati.ready).
 */
export async function waitForDuplicatiIdle(run: StackRun, options: { readyFirstJob?: boolean } = {}): Promise<void> {
  const step = run.log.step('wait for Duplicati to be idle');
  try {
    await waitUntilIdle(run, 'Duplicati to be idle before the stack is stopped', 'Duplicati is busy before the stack is stopped; waiting until it is idle', false);
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
  // What will run the first job is opened now, while the stack still runs (exec: its podman
  // exec), and waited for until it is up: its start must not fall on the downtime path.
  const first = run.stack.jobs[0];
  if (options.readyFirstJob && first !== undefined) await run.adapters.duplicati.ready?.(first);
  step.done();
}

async function waitUntilIdle(run: StackRun, what: string, busyWarning: string, stackIsDown: boolean): Promise<void> {
  let warned = false;
  await pollStatus(run, {
    what,
    // Only once the stack is down is a wait behind another task the stack's queue time.
    ...(stackIsDown ? { behind: isBusy } : {}),
    until: (status) => {
      if (isIdle(status)) return true;
      if (!warned && !status.paused) run.log.warn(busyWarning, { status: describeStatus(status) });
      warned = true;
      return false;
    },
  });
}

function percent(part: number): string {
  return `${Math.round(part * 100)}%`;
}


/** Follows one job until it has ended: its task (REST API) or its place in the queue and its record. */
async function followJob(
  run: StackRun,
  job: string,
  backupId: string,
  outcome: JobRun,
  runReturnedAt: number,
  step: StepHandle,
  recordOnPath: boolean,
): Promise<DuplicatiStatus> {
  const { duplicati, clock } = run.adapters;
  const ours = isJob(backupId);
  let seen = false;
  let lastProgressAt = clock.now();
  let progressShown = false;
  return pollStatus(run, {
    what: `job ${job} (backup ${backupId}${outcome.task !== undefined ? `, task ${outcome.task}` : ''})`,
    behind: (status) => status.queue.some(ours) && status.active !== undefined && !ours(status.active),
    wakeBy: () => (seen || outcome.task !== undefined ? undefined : runReturnedAt + didNotRunGraceMs),
    // Without a task to follow (exec), the record decides: where it is judged while the stack
    // is down, the look that shows the job gone reads it in the same call; where it is judged
    // once the stack runs again, the looks read the state only.
    jobsOnceGone: outcome.task === undefined && recordOnPath ? backupId : undefined,
    // While the stack is down, its end is looked for without pause.
    continuous: !run.stack.snapshot,
    until: async (status) => {
      outcome.recordAfter = status.jobs?.find((entry) => entry.id === backupId)?.record;
      if (ours(status.active) || status.queue.some(ours)) {
        if (!seen) run.log.info('job seen', { job, backup_id: backupId, task: outcome.task, status: describeStatus(status) });
        seen = true;
        if (ours(status.active)) run.timings.jobSeenAt ??= clock.now();
        // The terminal line shows Duplicati's progress at each look; the log gets a line a minute.
        const logNow = clock.now() - lastProgressAt >= progressLogEveryMs;
        if (ours(status.active) && duplicati.progress && (step.detail || logNow)) {
          const progress = await duplicati.progress(run.signal).catch(() => undefined);
          if (progress) {
            const text = `${progress.phase} ${percent(progress.overall)}, ${progress.filesDone} of ${progress.filesTotal} files, ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}`;
            step.detail?.(text);
            progressShown = true;
            if (logNow) {
              lastProgressAt = clock.now();
              run.log.info(`job ${job}: ${text}`, { job, progress });
            }
          }
        } else if (progressShown && !ours(status.active)) {
          step.detail?.('');
          progressShown = false;
        }
        return false;
      }
      if (outcome.task !== undefined && duplicati.task) {
        // Our task is neither queued nor active: its state says how it ended.
        const state = await duplicati.task(outcome.task, run.signal);
        if (state.status === 'Waiting' || state.status === 'Running') return false;
        outcome.taskEnd = state;
        return true;
      }
      if (seen) return true;
      // Never seen: it may have run and ended between two looks. Its record says so.
      const after = status.jobs ? outcome.recordAfter : (await duplicati.listJobs(run.signal)).find((entry) => entry.id === backupId)?.record;
      if (recordChange(outcome.recordBefore, after) !== 'none') {
        run.log.info(`job ${job} ended before it was seen queued or running; its record changed`, { job, backup_id: backupId });
        // Written when the task ended (Runner.cs): final, so the verdict reads this one.
        outcome.recordAfter = after;
        return true;
      }
      if (clock.now() - runReturnedAt >= didNotRunGraceMs) {
        throw new JobDidNotRunError(
          `job ${job} did not run: "run" ${outcome.timedOut ? 'was ended after run_timeout' : 'returned'}, but within ${formatSeconds(didNotRunGraceMs)} Duplicati neither queued nor ran it and its record did not change`,
          outcome.output,
        );
      }
      return false;
    },
  });
}

/**
 * The run gives up (paused_timeout, wait_timeout, a signal) while our task may be queued or
 * running, and the stack is about to start again: a task that goes on would read the live
 * stack and record it as a good version. Stop it where the driver can (REST API: stop, abort
 * after a grace), bounded; otherwise say so, naming the job. Never throws: the stack's restore
 * comes next, whatever happens here.
 */
async function stopOurTask(run: StackRun, job: string, backupId: string, outcome: JobRun, error: Error): Promise<void> {
  const { duplicati, clock } = run.adapters;
  // Not run.signal: it may have fired (SIGTERM), and this is part of the way back.
  const deadline = clock.timeout(stopWaitMs + 10_000, () => new TimeoutError(`stopping job ${job}: not done within ${formatSeconds(stopWaitMs + 10_000)}`));
  try {
    await stopWithin(run, job, backupId, outcome, error, deadline.signal);
  } finally {
    deadline.clear();
  }
}

async function stopWithin(run: StackRun, job: string, backupId: string, outcome: JobRun, error: Error, signal: AbortSignal): Promise<void> {
  const { duplicati, clock } = run.adapters;
  const ours = isJob(backupId);
  let task = outcome.task;
  try {
    const status = await duplicati.status(signal);
    const found = ours(status.active) ? status.active : status.queue.find(ours);
    if (!found) {
      // Neither queued nor active: nothing of ours can run on, unless the task says otherwise.
      if (task === undefined || !duplicati.task) return;
      const state = await duplicati.task(task, signal);
      if (state.status !== 'Waiting' && state.status !== 'Running') return;
    }
    task ??= found?.task;
  } catch (statusError) {
    run.log.warn(`cannot tell whether Duplicati still holds job ${job}: ${errorMessage(statusError)}`);
  }
  if (task !== undefined && duplicati.stopTask && duplicati.task) {
    try {
      run.log.warn(`stopping Duplicati task ${task} (job ${job}) before the stack starts again`, { job, task, reason: error.message });
      await duplicati.stopTask(task, 'stop', signal);
      const asked = clock.now();
      let aborted = false;
      for (;;) {
        const state = await duplicati.task(task, signal);
        if (state.status !== 'Waiting' && state.status !== 'Running') {
          run.log.info(`Duplicati task ${task} (job ${job}) has ended (${state.status}) before the stack starts again`, { job, task });
          error.message += `; Duplicati task ${task} of job ${job} was stopped before the stack started again`;
          return;
        }
        if (!aborted && clock.now() - asked >= abortAfterMs) {
          run.log.warn(`Duplicati task ${task} (job ${job}) did not stop within ${formatSeconds(abortAfterMs)}; aborting it`, { job, task });
          await duplicati.stopTask(task, 'abort', signal);
          aborted = true;
        }
        if (clock.now() - asked >= stopWaitMs) break;
        await clock.sleep(250, signal);
      }
    } catch (stopError) {
      run.log.warn(`cannot stop Duplicati task ${task} (job ${job}): ${errorMessage(stopError)}`, { job, task });
    }
  }
  (run.jobsMayStillRun ??= new Set()).add(job);
  const note = run.stack.snapshot
    ? `Duplicati may still run job ${job} (backup ${backupId}${task !== undefined ? `, task ${task}` : ''}): its snapshot is kept for it to read to the end`
    : `Duplicati may still run job ${job} (backup ${backupId}${task !== undefined ? `, task ${task}` : ''}) after the stack has started again: it would read the live stack and may record an inconsistent version`;
  run.log.warn(note, { job, backup_id: backupId, task });
  error.message += `; ${note}`;
}

/**
 * Whether the job's verdict waits until the stack runs again: reading it costs calls (the
 * record, `run --wait`'s last line, the log), and in stop mode nothing but the restore comes
 * after the last job unless post_backup hooks do. Its end is known on the path all the same.
 */
function judgedAfterStart(run: StackRun, index: number): boolean {
  return !run.stack.snapshot && index === run.stack.jobs.length - 1 && run.stack.hooks.post_backup.length === 0;
}

async function runJob(run: StackRun, job: string, index: number, prepared: PreparedRun | undefined): Promise<void> {
  const { duplicati, clock } = run.adapters;
  const step = run.log.step(`backup job ${job}`);
  const later = judgedAfterStart(run, index);
  let handedOver = false;
  try {
    // `run` reads the job's record itself, after the last idle check and just before it runs
    // the job (exec: in the same call), so that a run of Duplicati's own schedule cannot be
    // mistaken for ours; or the record was read while the stack stopped (prepared), after a
    // look begun after the stop showed Duplicati idle.
    const outcome = await duplicati.run(job, run.signal, prepared).catch((error: unknown) => {
      // Ended (SIGTERM, SIGINT, SIGHUP) while `run` was under way: it may have queued the job
      // all the same (ending the `podman exec` client does not end what runs in the container),
      // and the job would read the restarted stack. Nothing is known to stop: say so.
      if (run.signal.aborted && error instanceof Error) {
        const note = `Duplicati may still run job ${job} after the stack has started again ("run" was under way when the run was ended): it would read the live stack and may record an inconsistent version`;
        run.log.warn(note, { job });
        error.message += `; ${note}`;
      }
      throw error;
    });
    const runReturnedAt = clock.now();
    run.timings.runRequestedAt ??= outcome.requestedAt;
    run.timings.jobQueuedAt ??= outcome.queuedAt;
    if (outcome.output.trim() !== '') run.log.info('duplicati run output', { job, output: outcome.output });
    if (outcome.timedOut) {
      run.log.warn(`"run ${job}" did not return within run_timeout; it was ended, and the job is followed by polling`);
    }
    const backupId = outcome.backupId;
    if (backupId === undefined) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, outcome.output);
    // The next job's run is readied while this one runs (exec: its podman exec).
    const next = run.stack.jobs[index + 1];
    if (next !== undefined) void duplicati.ready?.(next);
    let last: DuplicatiStatus;
    try {
      last = await followJob(run, job, backupId, outcome, runReturnedAt, step, !later);
    } catch (error) {
      if (!(error instanceof JobDidNotRunError)) await stopOurTask(run, job, backupId, outcome, error as Error);
      throw error;
    }
    run.timings.jobEndSeenAt = clock.now();
    const verdict = async () => {
      const result = await judgeResult(run, job, outcome);
      step.done({ backup_id: backupId, backup_name: outcome.backupName, task: outcome.task, status: describeStatus(last), result: result.result });
    };
    if (!later) {
      await verdict();
      return;
    }
    // Its end is known: the stack starts again now, and the verdict is read after that.
    run.log.info(`job ${job} ended; its result is read once the stack runs again`, { job, backup_id: backupId });
    step.progressDone?.();
    handedOver = true;
    (run.afterStart ??= []).push(async () => {
      try {
        await verdict();
      } catch (error) {
        step.failed(error as Error);
        throw error;
      }
    });
  } catch (error) {
    if (!handedOver) step.failed(error as Error);
    throw error;
  }
}

/** "yyyyMMddTHHmmssZ" (Library.Utility.Utility.SerializeDateTime) or ISO, as epoch ms. */
export function recordInstant(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const compact = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(value);
  if (compact) {
    const [year, month, day, hour, minute, second] = compact.slice(1).map(Number) as [number, number, number, number, number, number];
    return Date.UTC(year, month - 1, day, hour, minute, second);
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * When Duplicati says the job began and ended: the task's TaskStarted and TaskFinished (REST
 * API, to the millisecond), else the record's LastBackupStarted and LastBackupFinished (or
 * LastErrorDate), whole seconds.
 */
function recordedSpan(outcome: JobRun): { startedAt?: number | undefined; endedAt?: number | undefined; inSeconds?: boolean } {
  if (outcome.taskEnd?.startedAt !== undefined || outcome.taskEnd?.finishedAt !== undefined) {
    return { startedAt: outcome.taskEnd.startedAt, endedAt: outcome.taskEnd.finishedAt };
  }
  const after: JobRecord | undefined = outcome.recordAfter;
  switch (recordChange(outcome.recordBefore, after)) {
    case 'finished':
      return { startedAt: recordInstant(after?.LastBackupStarted), endedAt: recordInstant(after?.LastBackupFinished), inSeconds: true };
    case 'error':
      return { endedAt: recordInstant(after?.LastErrorDate), inSeconds: true };
    default:
      return {};
  }
}

/**
 * Duplicati's own verdict on the job: Success passes, Warning passes unless warnings_fail,
 * Error and Fatal fail the stack with Duplicati's words. Completed (the exec driver saw the
 * record say the backup completed, but no result) and Unknown pass, reported as such, never as
 * a success.
 */
async function judgeResult(run: StackRun, job: string, outcome: JobRun): Promise<JobResult> {
  const result = await run.adapters.duplicati.result(outcome, run.signal);
  run.jobResults.push({ job, ...result });
  const span = recordedSpan(outcome);
  run.timings.jobStartedAt ??= span.startedAt;
  if (span.endedAt !== undefined) run.timings.jobEndedAt = span.endedAt;
  if (span.inSeconds) run.timings.jobRecordedInSeconds = true;
  const words = result.message ? `: ${result.message}` : '';
  if (result.result === 'Error' || result.result === 'Fatal' || (result.result === 'Warning' && run.global.duplicati.warningsFail)) {
    throw new CommandError(`Duplicati reports ${result.result} for job ${job}${words}`);
  }
  if (result.result === 'Warning') run.log.warn(`Duplicati reports Warning for job ${job}${words}`);
  if (result.result === 'Completed') run.log.info(`job ${job} completed${words}`);
  if (result.result === 'Unknown') run.log.info(`outcome of job ${job} unknown${words}`);
  return result;
}

/**
 * After the stop: a task that Duplicati started between the idle check and the stop may be
 * ours, taken of the live stack, and `run` would join it. Let it end first, so that ours is a
 * fresh task on the stopped stack. The stack is down meanwhile: that is queue time.
 */
export async function waitForDuplicatiIdleAfterStop(run: StackRun): Promise<void> {
  await waitUntilIdle(
    run,
    "another Duplicati task to end (it began before the stack was stopped)",
    'Duplicati started a task before the stack was stopped; waiting for it to end before running a fresh job',
    true,
  );
}

export async function runBackupJobs(run: StackRun): Promise<void> {
  run.timings.backupStartedAt = run.adapters.clock.now();
  const prepared = run.preparedRun;
  run.preparedRun = undefined;
  for (const [index, job] of run.stack.jobs.entries()) await runJob(run, job, index, index === 0 && prepared?.job === job ? prepared : undefined);
  run.timings.backupEndedAt = run.adapters.clock.now();
}

