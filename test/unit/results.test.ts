/**
 * Duplicati's own verdict on each job (src/steps/backup.ts judgeResult) as a user sees it: the
 * stack's result and error, its log lines and outcome, the run summary's labels (src/backup/run.ts),
 * and the long-poll of a driver that offers waitForChange in place of sleeping between polls.
 */
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { DuplicatiStatus, JobResultKind } from '../../src/adapters/duplicati.js';
import { readHistory } from '../../src/report/history.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { FakeWorld, addStack, globalConfig, removeTempRoots, runStack, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';

function warningsFail() {
  const global = globalConfig();
  return globalConfig({ duplicati: { ...global.duplicati, warningsFail: true } });
}

describe('judgeResult: Duplicati\'s result of each job', () => {
  it.each(['Error', 'Fatal'] as const)('%s fails the stack with Duplicati\'s words, and the stack is restored', async (kind) => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = kind;
    world.duplicati.resultMessage = 'The remote server returned an error: (403) Forbidden';
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(false);
    expect(result.outcome).toBe('failed');
    expect(result.error).toBe(`Duplicati reports ${kind} for job app: The remote server returned an error: (403) Forbidden`);
    expect(result.notRestored).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(world.actions.filter((action) => action.endsWith(unit))).toEqual([`stop ${unit}`, `start ${unit}`]);
    expect(world.duplicati.completed('1')).toHaveLength(1);
    expect(log.messages('error').some((line) => line.includes(`Duplicati reports ${kind} for job app`))).toBe(true);
  });

  it('Error without words: the message ends at the job name', async () => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Error';
    const { result } = await runStack(world);
    expect(result.error).toBe('Duplicati reports Error for job app');
  });

  it('a failed first job: the next job is not run', async () => {
    const world = worldWithStack('active');
    world.duplicati.job('2', 'extra', unit);
    world.duplicati.resultKind = 'Fatal';
    const { result } = await runStack(world, stackConfig({ jobs: ['app', 'extra'] }));
    expect(result.ok).toBe(false);
    expect(world.actions).toContain('duplicati run app');
    expect(world.actions).not.toContain('duplicati run extra');
    expect(world.state(unit)).toBe('active');
  });

  it('Warning passes, with a warning in the log', async () => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Warning';
    world.duplicati.resultMessage = 'Failed to read file /data/locked.db';
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(result.error).toBeUndefined();
    expect(result.outcome).toBe('warning');
    expect(log.messages('warn')).toContain('Duplicati reports Warning for job app: Failed to read file /data/locked.db');
    expect(world.state(unit)).toBe('active');
  });

  it('Warning fails the stack when duplicati.warnings_fail is true, and the stack is restored', async () => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Warning';
    world.duplicati.resultMessage = 'Failed to read file /data/locked.db';
    const { result } = await runStack(world, stackConfig(), { global: warningsFail() });
    expect(result.ok).toBe(false);
    expect(result.outcome).toBe('failed');
    expect(result.error).toBe('Duplicati reports Warning for job app: Failed to read file /data/locked.db');
    expect(world.state(unit)).toBe('active');
  });

  it('warnings_fail does not fail a Success', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world, stackConfig(), { global: warningsFail() });
    expect(result.ok).toBe(true);
    expect(result.outcome).toBe('success');
  });

  it('Unknown (the exec driver) passes, but the outcome is unknown, never success', async () => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Unknown';
    world.duplicati.resultMessage = 'the exec driver cannot see Duplicati\'s result';
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(result.outcome).toBe('unknown');
    expect(log.messages('info')).toContain('outcome of job app unknown: the exec driver cannot see Duplicati\'s result');
    expect(log.messages('warn').filter((line) => line.includes('Duplicati reports'))).toEqual([]);
  });

  it('Success: outcome success, no warning', async () => {
    const world = worldWithStack('active');
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(result.outcome).toBe('success');
    expect(log.messages('warn').filter((line) => line.includes('Duplicati reports'))).toEqual([]);
  });

  it.each([
    [['Success', 'Warning'], 'warning'],
    [['Warning', 'Unknown'], 'unknown'],
    [['Completed', 'Completed'], 'completed'],
    [['Completed', 'Unknown'], 'unknown'],
    [['Success', 'Success'], 'success'],
  ] as Array<[JobResultKind[], string]>)('two jobs %j: outcome %s (the worst one)', async (kinds, outcome) => {
    const world = worldWithStack('active');
    world.duplicati.job('2', 'extra', unit);
    const byJob: Record<string, JobResultKind> = { app: kinds[0]!, extra: kinds[1]! };
    world.duplicati.onRun = (job) => {
      world.duplicati.resultKind = byJob[job]!;
    };
    const { result } = await runStack(world, stackConfig({ jobs: ['app', 'extra'] }));
    expect(result.ok).toBe(true);
    expect(result.outcome).toBe(outcome);
  });
});

describe('runBackups: summary labels from the outcome', () => {
  it('backed up / backed up, warnings / ran, outcome unknown / FAILED, and the history keeps the outcome', async () => {
    const names = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
    const root = tempRoot(Object.fromEntries(names.map((name) => [`stacks/${name}.yaml`, `duplicati_jobs: [${name}]\n`])));
    const world = new FakeWorld();
    for (const name of names) addStack(world, name);
    const kinds: Record<string, JobResultKind> = { alpha: 'Success', beta: 'Warning', gamma: 'Unknown', delta: 'Error', epsilon: 'Completed' };
    world.duplicati.onRun = (job) => {
      world.duplicati.resultKind = kinds[job]!;
      world.duplicati.resultMessage = `words for ${job}`;
    };
    const output: string[] = [];
    const report = await runBackups({
      global: globalConfig({ root, file: path.join(root, 'stack-backup.yaml') }),
      stacks: names.map((name) => stackConfig({ name, file: path.join(root, 'stacks', `${name}.yaml`) })),
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: (text) => output.push(text) },
      signal: new AbortController().signal,
    });
    const lines = output.join('').split('\n');
    const line = (stack: string) => lines.find((entry) => entry.startsWith(`${stack} `));
    expect(line('alpha')).toMatch(/^alpha\s+backed up\s/);
    expect(line('beta')).toMatch(/^beta\s+backed up, warnings\s/);
    expect(line('gamma')).toMatch(/^gamma\s+ran, outcome unknown\s/);
    expect(line('delta')).toMatch(/^delta\s+FAILED\s+.*Duplicati reports Error for job delta: words for delta/);
    // The exec driver saw the backup finish in the record, not its result: said as such.
    expect(line('epsilon')).toMatch(/^epsilon\s+completed, result not seen\s/);
    expect(line('alpha')).not.toMatch(/warnings|unknown|FAILED/);
    expect(report.results.map((result) => result.outcome)).toEqual(['success', 'warning', 'unknown', 'failed', 'completed']);
    for (const name of names) expect(world.state(`${name}-stack.service`)).toBe('active');
    expect(readHistory(root).map((entry) => [entry.stack, entry.result, entry.outcome])).toEqual([
      ['alpha', 'success', 'success'],
      ['beta', 'success', 'warning'],
      ['gamma', 'success', 'unknown'],
      ['delta', 'failed', 'failed'],
      ['epsilon', 'success', 'completed'],
    ]);
  });
});

describe('pollStatus with a driver that can wait for a change (REST long-poll)', () => {
  /** Records each clock.sleep with the actions done so far, so sleeps can be placed in the run. */
  function watchSleeps(world: FakeWorld): Array<{ afterActions: number; ms: number }> {
    const sleeps: Array<{ afterActions: number; ms: number }> = [];
    const sleep = world.clock.sleep.bind(world.clock);
    vi.spyOn(world.clock, 'sleep').mockImplementation((ms, signal) => {
      sleeps.push({ afterActions: world.actions.length, ms });
      return sleep(ms, signal);
    });
    return sleeps;
  }

  /** A waitForChange that lets `stepMs` of virtual time pass, recording what it was given. */
  function longPoll(world: FakeWorld, stepMs = 2000): Array<{ since: DuplicatiStatus; maxWaitMs: number; afterActions: number }> {
    const calls: Array<{ since: DuplicatiStatus; maxWaitMs: number; afterActions: number }> = [];
    world.duplicati.waitForChange = async (since, maxWaitMs) => {
      calls.push({ since, maxWaitMs, afterActions: world.actions.length });
      world.clock.advance(Math.min(stepMs, maxWaitMs));
    };
    return calls;
  }

  it('the job\'s wait uses waitForChange, not the clock\'s sleep', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 7000;
    const sleeps = watchSleeps(world);
    const calls = longPoll(world);
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const runAt = world.actions.indexOf('duplicati run app') + 1;
    expect(runAt).toBeGreaterThan(0);
    expect(sleeps.filter((sleep) => sleep.afterActions >= runAt)).toEqual([]);
    const duringJob = calls.filter((call) => call.afterActions >= runAt);
    // 7 s of job in 2 s steps: several waits, each given the status just seen.
    expect(duringJob.length).toBeGreaterThanOrEqual(3);
    expect(duringJob.some((call) => call.since.active?.backupId === '1' || call.since.queue.some((task) => task.backupId === '1'))).toBe(true);
    for (const call of duringJob) {
      expect(call.maxWaitMs).toBeGreaterThan(0);
      expect(call.maxWaitMs).toBeLessThanOrEqual(globalConfig().duplicati.waitTimeoutMs);
    }
    expect(world.duplicati.completed('1')).toHaveLength(1);
  });

  it('a long-poll that breaks mid-job is no failure: the wait goes on and the backup completes', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 7000;
    let broken = 0;
    world.duplicati.waitForChange = async (_since, maxWaitMs) => {
      if (broken < 2) {
        broken += 1;
        throw new Error('socket hang up');
      }
      world.clock.advance(Math.min(2000, maxWaitMs));
    };
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(broken).toBe(2);
    expect(log.messages('warn').filter((message) => message.startsWith('waiting for a change of the Duplicati server state failed'))).toHaveLength(2);
    expect(world.duplicati.completed('1')[0]!.sawLiveStack).toBe(false);
  });

  it('without waitForChange (exec driver), the same wait sleeps between polls', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 7000;
    const sleeps = watchSleeps(world);
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const runAt = world.actions.indexOf('duplicati run app') + 1;
    expect(sleeps.filter((sleep) => sleep.afterActions >= runAt).length).toBeGreaterThan(0);
  });

  it('a busy server before the stop: the idle wait uses waitForChange too', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 6000;
    world.duplicati.schedule('1');
    const sleeps = watchSleeps(world);
    const calls = longPoll(world);
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const stopAt = world.actions.indexOf(`stop ${unit}`);
    expect(calls.filter((call) => call.afterActions <= stopAt).length).toBeGreaterThan(0);
    expect(sleeps.filter((sleep) => sleep.afterActions <= stopAt)).toEqual([]);
  });

  it('a paused server: the wait is bounded by paused_timeout, and the stack is never stopped', async () => {
    const world = worldWithStack('active');
    world.duplicati.paused = true;
    const calls = longPoll(world, 3_600_000);
    const { result } = await runStack(world);
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/paused/);
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) expect(call.maxWaitMs).toBeLessThanOrEqual(globalConfig().duplicati.pausedTimeoutMs);
    expect(world.actions).not.toContain(`stop ${unit}`);
  });
});
