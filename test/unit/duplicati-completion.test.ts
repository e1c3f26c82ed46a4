/**
 * steps/backup.ts against the fake world: a job's end read from its task (REST API) or its
 * record (exec), a `run` that queued nothing, our task stopped (or named) when the run gives
 * up, and the time a stack waits behind another job's task.
 */
import { describe, expect, it } from 'vitest';
import type { GlobalConfig } from '../../src/config/types.js';
import { AbortedError } from '../../src/errors.js';
import { abortAfterMs, didNotRunGraceMs } from '../../src/steps/backup.js';
import { addStack, globalConfig, hooks, runStack, stackConfig, worldWithStack, type FakeWorld } from '../fakes.js';

const unit = 'app-stack.service';

function withDuplicati(overrides: Partial<GlobalConfig['duplicati']>): GlobalConfig {
  return globalConfig({ duplicati: { ...globalConfig().duplicati, ...overrides } });
}

/** At the first status call after `run` queued the job: the run is then waiting for it. */
function whileOurJobIsUnderWay(world: FakeWorld, action: () => void): void {
  let done = false;
  world.duplicati.onStatus = () => {
    if (done || world.duplicati.tasks.length === 0) return;
    done = true;
    action();
  };
}

const downFor = (world: FakeWorld) => world.timeOf(`start ${unit}`)! - world.timeOf(`stop ${unit}`)!;

describe('a job that ends before anyone looks', () => {
  it('exec: never seen queued or running, but its record changed: done at once, not at wait_timeout', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 0;
    const { result, log } = await runStack(world, stackConfig(), { global: withDuplicati({ waitTimeoutMs: 120_000 }) });
    expect(result.ok).toBe(true);
    expect(downFor(world)).toBeLessThan(1000);
    expect(log.messages()).toContain('job app ended before it was seen queued or running; its record changed');
    expect(log.messages()).not.toContain('job seen');
  });

  it('REST API: the task it returned says Completed', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.duplicati.durationMs = 0;
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(downFor(world)).toBeLessThan(1000);
    expect(log.lines.find((line) => line.message === 'backup job app: done')?.fields.task).toBe(10);
  });

  it('REST API: a task that threw (Failed) fails the stack with its message', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.duplicati.throwing.add('1');
    world.duplicati.resultKind = 'Fatal';
    world.duplicati.resultMessage = 'backup 1 threw';
    const { result } = await runStack(world);
    expect(result.ok).toBe(false);
    expect(result.error).toBe('Duplicati reports Fatal for job app: backup 1 threw');
    expect(world.state(unit)).toBe('active');
  });
});

describe('calls while the stack is down', () => {
  it('exec: the record before is read while the stack stops, the looks read the state only, and the verdict comes once the stack runs again', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 2000;
    const { result: stackResult } = await runStack(world);
    expect(stackResult.ok).toBe(true);
    // The record (and the job's ID) was read once, after the stop was asked and before the run.
    expect(world.duplicati.prepareCalls).toHaveLength(1);
    expect(world.duplicati.prepareCalls[0]!.at).toBeGreaterThanOrEqual(world.timeOf(`stop ${unit}`)!);
    expect(world.duplicati.prepareCalls[0]!.at).toBeLessThanOrEqual(world.timeOf('duplicati run app')!);
    // One list, the preflight's check of the jobs, before the stop; none while the stack is down.
    expect(world.duplicati.listCallsAt).toHaveLength(1);
    expect(world.duplicati.listCallsAt[0]!).toBeLessThanOrEqual(world.timeOf(`stop ${unit}`)!);
    expect(world.duplicati.statusWithJobsCalls).toBe(0);
    // The verdict is read after the unit was started again.
    expect(world.duplicati.resultCalls).toHaveLength(1);
    expect(world.duplicati.resultCalls[0]!).toBeGreaterThanOrEqual(world.timeOf(`start ${unit}`)!);
  });

  it('exec with post_backup hooks: the verdict is read before them, while the stack is down, and the record after with the look that saw the job gone', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 2000;
    const stack = stackConfig({ hooks: hooks({ post_backup: ['tidy up'] }) });
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(true);
    expect(world.duplicati.statusWithJobsCalls).toBeGreaterThan(0);
    expect(world.duplicati.resultCalls[0]!).toBeLessThanOrEqual(world.timeOf('hook post_backup: tidy up')!);
    expect(world.actions.indexOf('hook post_backup: tidy up')).toBeLessThan(world.actions.indexOf(`start ${unit}`));
  });

  it('REST API: the task decides; the polls read no records', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(world.duplicati.statusWithJobsCalls).toBe(0);
    // One list, the preflight's check of the jobs, before the stop; none while the stack is down.
    expect(world.duplicati.listCallsAt).toHaveLength(1);
    expect(world.duplicati.listCallsAt[0]!).toBeLessThanOrEqual(world.timeOf(`stop ${unit}`)!);
  });
});

describe('a run that queued nothing', () => {
  it.each([false, true])('fails within the grace after run returned (run hung: %s), saying the job did not run', async (hung) => {
    const world = worldWithStack('active');
    world.duplicati.dropRuns = true;
    world.duplicati.runHangs = hung;
    const { result } = await runStack(world, stackConfig(), { global: withDuplicati({ waitTimeoutMs: 3_600_000 }) });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/^job app did not run: "run" (returned|was ended after run_timeout), but within 5\.0 s Duplicati neither queued nor ran it/);
    const waited = world.timeOf(`start ${unit}`)! - world.timeOf('duplicati run app')! - (hung ? 25_000 : 0);
    expect(waited).toBeGreaterThanOrEqual(didNotRunGraceMs);
    expect(waited).toBeLessThan(didNotRunGraceMs + 1000);
    expect(world.state(unit)).toBe('active');
  });
});

describe('never our job running against a live stack', () => {
  it('REST API, paused mid-job: paused_timeout stops our task, which ends before the stack starts', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.duplicati.durationMs = 60_000;
    whileOurJobIsUnderWay(world, () => (world.duplicati.paused = true));
    const { result, log } = await runStack(world, stackConfig(), { global: withDuplicati({ pausedTimeoutMs: 10_000 }) });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/paused_timeout/);
    expect(result.error).toContain('Duplicati task 10 of job app was stopped before the stack started again');
    expect(world.duplicati.stopCalls).toEqual(['stop 10']);
    const task = world.duplicati.tasks[0]!;
    expect(task.stopped).toBe(true);
    expect(task.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(task.sawLiveStack).toBe(false);
    expect(log.messages('warn')).toContain('stopping Duplicati task 10 (job app) before the stack starts again');
  });

  it('REST API, a task that ignores stop: aborted after the grace', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.duplicati.ignoreStop = true;
    world.duplicati.durationMs = 3_600_000;
    const { result } = await runStack(world, stackConfig(), { global: withDuplicati({ waitTimeoutMs: 60_000 }) });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/wait_timeout/);
    expect(world.duplicati.stopCalls).toEqual(['stop 10', 'abort 10']);
    const task = world.duplicati.tasks[0]!;
    expect(task.endedAt! - world.timeOf('duplicati run app')!).toBeGreaterThanOrEqual(60_000 + abortAfterMs);
    expect(task.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
  });

  it('REST API, SIGTERM mid-job: our task is stopped before the stack starts again', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.duplicati.durationMs = 600_000;
    const controller = new AbortController();
    whileOurJobIsUnderWay(world, () => controller.abort(new AbortedError('SIGTERM')));
    const { result } = await runStack(world, stackConfig(), { signal: controller.signal });
    expect(result.aborted).toBe(true);
    expect(result.error).toBe('aborted by SIGTERM; Duplicati task 10 of job app was stopped before the stack started again');
    expect(world.duplicati.tasks[0]!.stopped).toBe(true);
    expect(world.state(unit)).toBe('active');
  });

  it('exec, paused mid-job: the stack starts, and the log and the error name the job that may read it', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 60_000;
    whileOurJobIsUnderWay(world, () => (world.duplicati.paused = true));
    const { result, log } = await runStack(world, stackConfig(), { global: withDuplicati({ pausedTimeoutMs: 10_000 }) });
    expect(result.ok).toBe(false);
    const note = 'Duplicati may still run job app (backup 1, task 10) after the stack has started again: it would read the live stack and may record an inconsistent version';
    expect(result.error).toContain(note);
    expect(log.messages('warn')).toContain(note);
    expect(world.state(unit)).toBe('active');
  });
});

describe('ended while run is under way', () => {
  it('SIGTERM while "run" runs: the stack starts, and the error and the log name the job that may still run', async () => {
    const world = worldWithStack('active');
    const controller = new AbortController();
    const reason = new AbortedError('SIGTERM');
    world.duplicati.onRun = () => {
      controller.abort(reason);
      throw reason;
    };
    const { result, log } = await runStack(world, stackConfig(), { signal: controller.signal });
    expect(result.aborted).toBe(true);
    const note = 'Duplicati may still run job app after the stack has started again ("run" was under way when the run was ended): it would read the live stack and may record an inconsistent version';
    expect(result.error).toBe(`aborted by SIGTERM; ${note}`);
    expect(log.messages('warn')).toContain(note);
    expect(world.state(unit)).toBe('active');
  });
});

describe('queue time', () => {
  it('a stack down behind another job\'s task: counted, in the result and the end line', async () => {
    const world = addStack(worldWithStack('active'), 'other');
    world.duplicati.durationMs = 7000;
    world.onAction = (action) => {
      if (action === `stop ${unit}`) world.duplicati.schedule('2');
    };
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(result.queueMs).toBeGreaterThanOrEqual(6000);
    expect(result.queueMs).toBeLessThanOrEqual(8000);
    expect(log.lines.find((line) => line.message === 'stack run end')?.fields.queue_ms).toBe(result.queueMs);
  });

  it('none when nothing else runs', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world);
    expect(result.queueMs).toBeUndefined();
  });
});
