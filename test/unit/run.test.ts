/**
 * src/backup/run.ts runBackups over several stacks in a temp root: the real lock in logs/, real log
 * files, fake adapters for the outside world.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AbortedError, LockHeldError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/exit-codes.js';
import { localDate } from '../../src/report/logging.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { FakeWorld, globalConfig, removeTempRoots, twoStackRun } from '../fakes.js';

afterAll(removeTempRoots);

/** Two stacks, alpha and beta, in a fresh root; alpha's pre_stop hook fails when `failAlpha`. */
const setup = (options: { failAlpha?: boolean } = {}) => twoStackRun({ alphaHooks: { pre_stop: ['alpha maintenance on'] }, ...options });

const summaryLine = (output: string[], stack: string) =>
  output.join('').split('\n').find((line) => line.startsWith(`${stack} `));

describe('runBackups', () => {
  it('a failed stack does not stop the next; the summary lists both', async () => {
    const { world, output, run } = setup({ failAlpha: true });
    const report = await run();
    expect(report.results.map((result) => [result.stack, result.ok])).toEqual([
      ['alpha', false],
      ['beta', true],
    ]);
    expect(report.skipped).toEqual([]);
    expect(world.state('alpha-stack.service')).toBe('active');
    expect(world.state('beta-stack.service')).toBe('active');
    expect(world.actions).not.toContain('stop alpha-stack.service');
    expect(world.actions).toContain('stop beta-stack.service');
    expect(world.duplicati.completed('2')).toHaveLength(1);
    expect(summaryLine(output, 'alpha')).toMatch(/^alpha\s+FAILED\s+.*pre_stop hook "alpha maintenance on" failed with exit 1/);
    expect(summaryLine(output, 'beta')).toMatch(/^beta\s+backed up\s/);
    expect(output.join('')).toMatch(/Logs: .*backup-alpha-.*\.log, .*backup-beta-.*\.log/);
  });

  it('a stack that could not be started again shows as FAILED, NOT RESTORED', async () => {
    const { world, output, run } = setup();
    world.failing.add('start beta-stack.service');
    const report = await run();
    expect(report.results.map((result) => result.ok)).toEqual([true, false]);
    expect(summaryLine(output, 'beta')).toMatch(/^beta\s+FAILED, NOT RESTORED\s+.*restore: restore unit: start beta-stack.service/);
    expect(summaryLine(output, 'alpha')).toMatch(/^alpha\s+backed up/);
  });

  it('writes logs/backup-<stack>-YYYY-MM-DD.log with JSON lines carrying step and outcome', async () => {
    const { root, world, run } = setup({ failAlpha: true });
    const report = await run();
    const date = localDate(world.clock.now());
    expect(date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    for (const stack of ['alpha', 'beta']) {
      const file = path.join(root, 'logs', `backup-${stack}-${date}.log`);
      expect(existsSync(file)).toBe(true);
      expect(report.results.find((result) => result.stack === stack)!.logFile).toBe(file);
      const entries = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(entries.every((entry) => entry.stack === stack && typeof entry.run === 'string')).toBe(true);
      const ends = entries.filter((entry) => entry.event === 'end');
      expect(ends.length).toBeGreaterThan(0);
      for (const entry of ends) {
        expect(typeof entry.step).toBe('string');
        expect(['done', 'failed']).toContain(entry.outcome);
        expect(typeof entry.duration_ms).toBe('number');
      }
    }
    const alpha = readFileSync(path.join(root, 'logs', `backup-alpha-${date}.log`), 'utf8');
    const failedHook = alpha
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((entry) => entry.step === 'pre_stop hook' && entry.outcome === 'failed');
    expect(failedHook).toMatchObject({ error: 'pre_stop hook "alpha maintenance on" failed with exit 1', output: 'cannot reach alpha\n' });
    const beta = readFileSync(path.join(root, 'logs', `backup-beta-${date}.log`), 'utf8');
    expect(beta).toContain('"step":"backup job beta","event":"end","outcome":"done"');
    // Both stacks of one run share the run ID.
    const runId = (text: string) => (JSON.parse(text.split('\n')[0]!) as { run: string }).run;
    expect(runId(alpha)).toBe(runId(beta));
  });

  it('a second run on the same root is refused with LockHeldError while the first holds the lock', async () => {
    const first = setup();
    let entered!: () => void;
    const inHook = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    first.world.onHook = async () => {
      entered();
      await gate;
    };
    const running = first.run();
    await inHook;
    const second = await runBackups({
      global: globalConfig({ root: first.root }),
      stacks: first.stacks,
      adapters: new FakeWorld().adapters(),
      progress: createProgress({ write: () => {} }, first.world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    }).catch((error: unknown) => error);
    expect(second).toBeInstanceOf(LockHeldError);
    expect(exitCodeFor(second)).toBe(75);
    release();
    const report = await running;
    expect(report.results.map((result) => result.ok)).toEqual([true, true]);
    // Released at the end: the next run gets the lock.
    const third = await first.run();
    expect(third.results).toHaveLength(2);
  });

  it('the lock lives in logs/ under the root', async () => {
    const { root, world, run } = setup();
    let seen: string[] = [];
    world.onHook = () => {
      seen = readdirSync(path.join(root, 'logs'));
    };
    await run();
    expect(seen).toContain('stack-backup.lock');
    expect(readdirSync(path.join(root, 'logs'))).not.toContain('stack-backup.lock');
  });

  it('stacks not started before an abort are listed as not run', async () => {
    const { world, output, run } = setup();
    const controller = new AbortController();
    world.onHook = (hook) => {
      if (hook.environment.STACK_NAME === 'alpha') controller.abort(new AbortedError('SIGTERM'));
    };
    const report = await run(controller.signal);
    expect(report.results.map((result) => [result.stack, result.aborted])).toEqual([['alpha', true]]);
    expect(report.skipped).toEqual(['beta']);
    expect(world.actions.some((action) => action.includes('beta'))).toBe(false);
    expect(summaryLine(output, 'beta')).toMatch(/^beta\s+not run\s+.*run aborted before this stack/);
    expect(world.state('alpha-stack.service')).toBe('active');
  });
});
