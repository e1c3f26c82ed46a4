/**
 * Duplicati as it really behaves (issue 10), against the stand-in: jobs that end before anyone
 * looks, jobs that fail at once or late, a `run` that hangs before or after it queued, a pause
 * and a SIGTERM while our job runs, and a log that is locked when first read. Each case checks
 * unit states, the exit code, the summary and the log.
 */
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { asUser, cli, jobRecords, jobStarted, logLines, resetRoot, resetWorld, root, sleep, standin, standinEvents, startCli, unitState, waitUntil, world, writeUserFile } from './world.js';

const passwordFile = path.join(root, 'duplicati-password');

// wait_timeout far above a run's time on a loaded machine: a job that ends unseen would have
// kept the stack down until it ran out, and failed it.
function useExecDriver(extra = ''): void {
  writeUserFile(path.join(root, 'stack-backup.yaml'), `duplicati:\n  wait_timeout: 900\n${extra}`);
}

function useApiDriver(extra = ''): void {
  writeUserFile(passwordFile, `${world.DUPLICATI_API_PASSWORD}\n`, 0o600);
  writeUserFile(
    path.join(root, 'stack-backup.yaml'),
    `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n  password_file: ${passwordFile}\n  wait_timeout: 900\n${extra}`,
  );
}

const jobEnd = (stack: string) => logLines(stack).find((line) => String(line.step).startsWith('backup job') && line.event === 'end');
const runEnd = (stack: string) => logLines(stack).find((line) => line.msg === 'stack run end' || String(line.msg).startsWith('stack run failed'));
const messages = (stack: string) => logLines(stack).map((line) => String(line.msg));
const eventTime = (pattern: RegExp) => Number(standinEvents().find((line) => pattern.test(line))?.split(' ')[0]);
const unitStartTime = (stack: string) => Date.parse(String(logLines(stack).find((line) => line.step === 'start unit' && line.event === 'start')?.time));

/** `run` enqueues, then hangs this long: the job ends before the first look. */
async function runReturnsLate(seconds: string): Promise<void> {
  await standin('set', 'duration', '0');
  await standin('set', 'hang_seconds', seconds);
  await standin('flag', 'hang_run', 'on');
}

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

// Each case is a whole run against real units; on a loaded machine one takes a minute or more.
vi.setConfig({ testTimeout: 400_000 });
/** How long a run may take to reach its job on a loaded machine. */
const startWithinMs = 240_000;

describe('a job that ends before the first look', () => {
  it('instant success (exec): done from its record at once, reported "completed", not at wait_timeout', async () => {
    useExecDriver();
    await runReturnsLate('3');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/composeapp\s+completed, result not seen/);
    expect(messages('composeapp')).toContain('job composeapp ended before it was seen queued or running; its record changed');
    expect(messages('composeapp').some((text) => text.startsWith('job composeapp completed: the backup completed (LastBackupFinished)'))).toBe(true);
    expect(jobEnd('composeapp')).toMatchObject({ outcome: 'done', result: 'Completed' });
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  it('instant success (api): done from its task, "backed up" as Duplicati said Success', async () => {
    useApiDriver();
    await standin('set', 'duration', '0');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/plainapp\s+backed up\s/);
    expect(jobEnd('plainapp')).toMatchObject({ outcome: 'done', result: 'Success', task: expect.any(Number) });
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it('instant failure (exec): the changed LastErrorDate fails the stack with LastErrorMessage, within seconds', async () => {
    useExecDriver();
    await runReturnsLate('3');
    await standin('set', 'outcome', 'Fatal');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain('wait_timeout');
    expect(result.stderr).toMatch(/composeapp\s+FAILED/);
    expect(result.stderr).toContain('Duplicati reports Fatal for job composeapp: The stand-in was told to end composeapp with Fatal (outcome setting)');
    expect(runEnd('composeapp')).toMatchObject({ level: 50, outcome: 'failed' });
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });
});

describe('a job that fails late', () => {
  it('slow failure (exec): seen running, then its record says it threw: FAILED with its message', async () => {
    useExecDriver();
    await standin('set', 'duration', '3');
    await standin('set', 'outcome', 'Fatal');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/plainapp\s+FAILED/);
    expect(result.stderr).toContain('Duplicati reports Fatal for job plainapp: The stand-in was told to end plainapp with Fatal (outcome setting)');
    expect(messages('plainapp')).toContain('job seen');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it('slow failure (api): the task is Failed, with its error message', async () => {
    useApiDriver();
    await standin('set', 'duration', '3');
    await standin('set', 'outcome', 'Fatal');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Duplicati reports Fatal for job plainapp: The stand-in was told to end plainapp with Fatal (outcome setting)');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });
});

describe('a `run` that hangs', () => {
  it('before it queued: "the job did not run" within seconds, and no job is queued later (run is bounded in the container)', async () => {
    useExecDriver('  run_timeout: 3\n');
    await standin('set', 'hang_seconds', '20');
    await standin('flag', 'hang_run_before', 'on');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/composeapp\s+FAILED/);
    expect(result.stderr).toContain('job composeapp did not run: "run" was ended after run_timeout, but within 5.0 s Duplicati neither queued nor ran it');
    expect(await unitState('composeapp-stack.service')).toBe('active');
    // The hung `run` would have queued the job 20 s after it was called, had it lived on.
    const called = eventTime(/ RUN_CALLED 1 composeapp /);
    await sleep(Math.max(0, called + 25_000 - Date.now()));
    expect(standinEvents().filter((line) => / ENQUEUE \d+ 1 composeapp/.test(line))).toEqual([]);
    expect(jobRecords()).toEqual([]);
  });

  it('after it queued: ended after run_timeout, the job followed to its end, the backup clean', async () => {
    useExecDriver('  run_timeout: 10\n');
    await standin('set', 'duration', '2');
    await standin('flag', 'hang_run', 'on');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('did not return within run_timeout');
    expect(result.stderr).toMatch(/composeapp\s+completed, result not seen/);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(jobRecords()[0]!.endedAt).toBeLessThanOrEqual(unitStartTime('composeapp'));
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });
});

describe('never our job running against a live stack', () => {
  it('pause mid-job (api): after paused_timeout the task is stopped, and ended before the stack starts again', async () => {
    useApiDriver('  paused_timeout: 3\n');
    await standin('set', 'duration', '60');
    const run = startCli(['composeapp']);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), startWithinMs);
    await standin('flag', 'paused', 'on');
    const result = await run.finished;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/composeapp\s+FAILED/);
    expect(result.stderr).toContain('paused_timeout');
    expect(result.stderr).toMatch(/Duplicati task \d+ of job composeapp was stopped before the stack started again/);
    expect(messages('composeapp').some((text) => /^stopping Duplicati task \d+ \(job composeapp\) before the stack starts again$/.test(text))).toBe(true);
    const stopped = eventTime(/ STOPPED \d+ 1 composeapp /);
    expect(stopped).toBeGreaterThan(0);
    expect(stopped).toBeLessThanOrEqual(unitStartTime('composeapp'));
    expect(jobRecords()).toEqual([]);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  it('pause mid-job (exec): the stack starts again, and the summary and the log name the job that may record an inconsistent version', async () => {
    useExecDriver('  paused_timeout: 3\n');
    await standin('set', 'duration', '60');
    const run = startCli(['plainapp']);
    await waitUntil('the plainapp job to start', () => jobStarted('plainapp'), startWithinMs);
    await standin('flag', 'paused', 'on');
    const result = await run.finished;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/plainapp\s+FAILED/);
    expect(result.stderr).toMatch(/Duplicati may still run job plainapp \(backup 2, task \d+\) after the stack has started again: it would read the live stack and may record an inconsistent version/);
    expect(messages('plainapp').some((text) => text.startsWith('Duplicati may still run job plainapp'))).toBe(true);
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it('SIGTERM mid-job (api): the task is stopped before the stack starts again, exit 143', async () => {
    useApiDriver();
    await standin('set', 'duration', '60');
    const run = startCli(['composeapp']);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), startWithinMs);
    run.child.kill('SIGTERM');
    const result = await run.finished;
    expect(result.code).toBe(143);
    expect(runEnd('composeapp')).toMatchObject({ outcome: 'failed', error: expect.stringMatching(/^aborted by SIGTERM; Duplicati task \d+ of job composeapp was stopped before the stack started again$/) });
    const stopped = eventTime(/ STOPPED \d+ 1 composeapp /);
    expect(stopped).toBeGreaterThan(0);
    expect(stopped).toBeLessThanOrEqual(unitStartTime('composeapp'));
    expect(jobRecords()).toEqual([]);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });
});

describe('the log endpoint', () => {
  it('locked when first read (DatabaseLockedException): read again, and the result judged', async () => {
    useApiDriver();
    await standin('set', 'log_locked', '2');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/plainapp\s+backed up\s/);
    expect(standinEvents().some((line) => / LOG_LOCKED 2$/.test(line))).toBe(true);
    expect(jobEnd('plainapp')).toMatchObject({ outcome: 'done', result: 'Success' });
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });
});

/** The `exec` events Podman recorded for the Duplicati container between two instants (epoch ms): each is a podman exec begun. */
async function execsBegun(from: number, to: number): Promise<number[]> {
  const result = await asUser([
    'env', '-u', 'CONTAINER_HOST', 'podman', 'events', '--stream=false', '--since', String(Math.floor(from / 1000) - 1), '--until', String(Math.ceil(to / 1000) + 1),
    '--filter', 'container=duplicati', '--filter', 'event=exec', '--format', '{{.Time}}',
  ]);
  return result.stdout
    .split('\n')
    .map((line) => Date.parse(line.trim().replace(' ', 'T').replace(/(\.\d{3})\d*/, '$1').replace(/ \+0000 UTC$/, 'Z')))
    .filter((when) => !Number.isNaN(when) && when >= from && when <= to);
}

const stepTime = (stack: string, step: string, event: 'start' | 'end') => Date.parse(String(logLines(stack).find((line) => line.step === step && line.event === event)?.time));

describe('the exec driver on the downtime path (issue 20)', () => {
  it('no podman exec begins while a stack is down, its timeline is logged, and each job\'s result is Duplicati\'s, read after the start: Warning, and an Error that fails its stack', async () => {
    useExecDriver();
    await standin('set', 'outcome_composeapp', 'Warning');
    await standin('set', 'outcome_plainapp', 'Error');
    const began = Date.now();
    const result = await cli(['composeapp', 'plainapp']);
    // One exec session for the run, and one podman exec per job, each up before its stack was
    // stopped (the idle step waits for it): no other podman exec, so none while a stack was down.
    expect(await execsBegun(began, Date.now())).toHaveLength(3);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/composeapp\s+backed up, warnings/);
    expect(result.stderr).toMatch(/plainapp\s+FAILED/);
    expect(result.stderr).toContain('Duplicati reports Error for job plainapp: Duplicati\'s log says Error (duplicati-server-util run --wait: "Backup status: Error")');
    expect(messages('composeapp').some((text) => text.startsWith('Duplicati reports Warning for job composeapp: Duplicati\'s log says Warning'))).toBe(true);
    expect(jobEnd('composeapp')).toMatchObject({ outcome: 'done', result: 'Warning' });
    for (const stack of ['composeapp', 'plainapp']) {
      const up = stepTime(stack, 'start unit', 'end');
      // The verdict was read once the stack ran again.
      const judged = Date.parse(String(logLines(stack).find((line) => String(line.step).startsWith('backup job') && line.event === 'end')?.time));
      expect(judged).toBeGreaterThanOrEqual(up);
      const timeline = String(logLines(stack).find((line) => String(line.msg).startsWith('timeline: '))?.msg);
      expect(timeline).toMatch(/^timeline: stop requested \+0 ms, unit inactive \+\d+ ms, last container exited \+\d+ ms, Duplicati idle confirmed \+-?\d+ ms, run requested \+\d+ ms, job queued \+\d+ ms, .*end seen \+\d+ ms, start requested \+\d+ ms, unit active \+\d+ ms$/);
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
    }
    expect(jobRecords().map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'plainapp CLEAN']);
  });

  it('a server before 2.2.0.3 ends run --wait without a result: "completed, result not seen", as before', async () => {
    useExecDriver();
    await standin('set', 'version', '2.2.0.1_stable_2025-11-09');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/composeapp\s+completed, result not seen/);
    expect(jobEnd('composeapp')).toMatchObject({ outcome: 'done', result: 'Completed' });
  });

  it('the exec session killed mid-job: the looks go on through fresh podman execs, and the backup completes clean', async () => {
    useExecDriver();
    await standin('set', 'duration', '6');
    const run = startCli(['composeapp']);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), startWithinMs);
    const sessions = await asUser(['pgrep', '-u', world.WORLD_USER!, '-f', '^podman exec -i duplicati sh -c while IFS= read -r r']);
    const pids = sessions.stdout.trim().split('\n').filter(Boolean);
    expect(pids).toHaveLength(1);
    await asUser(['kill', '-KILL', pids[0]!]);
    const result = await run.finished;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/composeapp\s+backed up\s/);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(jobRecords()[0]!.endedAt).toBeLessThanOrEqual(unitStartTime('composeapp'));
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });
});
