import { describe, expect, it } from 'vitest';
import type { GlobalConfig, StackConfig } from '../../src/config/types.js';
import { AbortedError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/exit-codes.js';
import { FakeWorld, addStack, globalConfig, hooks, runStack, stackConfig, worldWithStack } from '../fakes.js';

describe('one stack, happy path', () => {
  it('stops the unit, waits for the containers, runs the job on the stopped stack, starts the unit again', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(world.state('app-stack.service')).toBe('active');
    const tasks = world.duplicati.completed('1');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.sawLiveStack).toBe(false);
    expect(world.actions.filter((action) => !action.startsWith('duplicati status'))).toEqual([
      'stop app-stack.service',
      'duplicati run app',
      'start app-stack.service',
    ]);
    expect(result.downtimeMs).toBeGreaterThanOrEqual(5000);
    expect(result.backupMs).toBeGreaterThanOrEqual(5000);
  });
});

const unit = 'app-stack.service';
const phases = ['pre_stop', 'post_stop', 'pre_backup', 'post_backup', 'pre_start', 'post_start', 'verify'] as const;

/** Actions other than status polls: what a person would notice. */
const visible = (world: FakeWorld) => world.actions.filter((action) => action !== 'duplicati status');

/** A stack with one hook command per phase (named `<phase>-cmd`) and a frozen on-demand socket. */
function fullStack(overrides: Partial<StackConfig> = {}): StackConfig {
  return stackConfig({
    hooks: hooks(Object.fromEntries(phases.map((phase) => [phase, [`${phase}-cmd`]]))),
    freeze: { socket: 'app-proxy.socket', service: 'app-proxy.service' },
    ...overrides,
  });
}

function fullWorld(): FakeWorld {
  return worldWithStack('active').unit('app-proxy.socket', 'active').unit('app-proxy.service', 'inactive');
}

function withDuplicati(overrides: Partial<GlobalConfig['duplicati']>): GlobalConfig {
  return globalConfig({ duplicati: { ...globalConfig().duplicati, ...overrides } });
}

/** The one completed task of backup `id`, which must exist. */
function onlyTask(world: FakeWorld, id = '1') {
  const tasks = world.duplicati.completed(id);
  expect(tasks).toHaveLength(1);
  return tasks[0]!;
}

describe('a good run', () => {
  it('runs every phase in order, multiple commands per phase in their order', async () => {
    const world = fullWorld();
    const stack = fullStack({
      hooks: hooks({
        pre_stop: ['maintenance on', 'flush caches'],
        post_stop: ['snapshot db'],
        pre_backup: ['list files'],
        post_backup: ['drop snapshot', 'report'],
        pre_start: ['fix permissions'],
        post_start: ['maintenance off', 'warm caches'],
        verify: ['curl health'],
      }),
    });
    const { result } = await runStack(world, stack);
    expect(result).toMatchObject({ ok: true, error: undefined, restoreErrors: [], aborted: false });
    expect(visible(world)).toEqual([
      'hook pre_stop: maintenance on',
      'hook pre_stop: flush caches',
      'stop app-proxy.socket',
      'stop app-proxy.service',
      `stop ${unit}`,
      'hook post_stop: snapshot db',
      'hook pre_backup: list files',
      'duplicati run app',
      'hook post_backup: drop snapshot',
      'hook post_backup: report',
      'hook pre_start: fix permissions',
      `start ${unit}`,
      'start app-proxy.socket',
      'hook post_start: maintenance off',
      'hook post_start: warm caches',
      'hook verify: curl health',
    ]);
    expect(world.state(unit)).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.state('app-proxy.service')).toBe('inactive');
    expect(onlyTask(world).sawLiveStack).toBe(false);
  });

  it('every hook gets STACK_NAME, STACK_UNIT, STACK_PHASE, STACK_BACKUP_ROOT and runs in the root', async () => {
    const world = fullWorld();
    const global = globalConfig({ root: '/srv/backups-root' });
    await runStack(world, fullStack(), { global });
    expect(world.hookRuns.map((hook) => hook.environment.STACK_PHASE)).toEqual([...phases]);
    for (const hook of world.hookRuns) {
      expect(hook.command).toBe(`${hook.environment.STACK_PHASE}-cmd`);
      expect(hook.environment).toMatchObject({ STACK_NAME: 'app', STACK_UNIT: unit, STACK_BACKUP_ROOT: '/srv/backups-root' });
      expect(hook.cwd).toBe('/srv/backups-root');
    }
  });

  it('reports downtime from the stop to the start and logs the end', async () => {
    const world = worldWithStack('active');
    const { result, log } = await runStack(world);
    expect(result.downtimeMs).toBe(world.timeOf(`start ${unit}`)! - world.timeOf(`stop ${unit}`)!);
    const end = log.lines.find((line) => line.message === 'stack run end');
    expect(end?.fields).toMatchObject({ outcome: 'success', unit_was_active: true, restore_errors: [] });
  });

  it('runs several jobs in order, each on the stopped stack, the next only after the previous ran', async () => {
    const world = worldWithStack('active');
    world.duplicati.job('2', 'app-files', unit);
    const { result } = await runStack(world, stackConfig({ jobs: ['app', 'app-files'] }));
    expect(result.ok).toBe(true);
    expect(visible(world)).toEqual([`stop ${unit}`, 'duplicati run app', 'duplicati run app-files', `start ${unit}`]);
    const first = onlyTask(world, '1');
    const second = onlyTask(world, '2');
    expect(world.timeOf('duplicati run app-files')!).toBeGreaterThanOrEqual(first.endedAt!);
    expect(second.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(first.sawLiveStack).toBe(false);
    expect(second.sawLiveStack).toBe(false);
    expect(result.backupMs).toBeGreaterThanOrEqual(2 * world.duplicati.durationMs);
  });

  it('a failing first job: the second is not run, the stack restored', async () => {
    const world = worldWithStack('active');
    world.duplicati.job('2', 'app-files', unit);
    // Duplicati says the first job ended Fatal: the stack fails there.
    world.duplicati.resultKind = 'Fatal';
    const { result } = await runStack(world, stackConfig({ jobs: ['app', 'app-files'] }));
    expect(result.ok).toBe(false);
    expect(visible(world)).toEqual([`stop ${unit}`, 'duplicati run app', `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
  });
});

describe('Duplicati behaviours', () => {
  it.each([2000, 20_000])('queue race: a job waiting %i ms in the queue is not reported done before it ran', async (pickupDelayMs) => {
    const world = worldWithStack('active');
    world.duplicati.pickupDelayMs = pickupDelayMs;
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    const task = onlyTask(world);
    expect(task.startedAt! - task.queuedAt).toBe(pickupDelayMs);
    expect(task.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(task.sawLiveStack).toBe(false);
    const seen = log.lines.find((line) => line.message === 'job seen');
    expect(String(seen?.fields.status)).toContain('active: none');
  });

  it('a job that never shows up in the queue is not reported as backed up', async () => {
    const world = worldWithStack('active');
    world.duplicati.dropRuns = true;
    const global = withDuplicati({ waitTimeoutMs: 600_000 });
    const { result } = await runStack(world, stackConfig(), { global });
    expect(result.ok).toBe(false);
    expect(result.error).toBeDefined();
    expect(world.duplicati.completed('1')).toEqual([]);
    expect(world.state(unit)).toBe('active');
  });

  it('a server paused while our job is queued: fails within paused_timeout, saying paused, stack restored', async () => {
    const world = worldWithStack('active');
    world.duplicati.onRun = () => {
      world.duplicati.paused = true;
    };
    const global = withDuplicati({ pausedTimeoutMs: 30_000 });
    const { result, log } = await runStack(world, stackConfig(), { global });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/paused/);
    expect(result.error).toMatch(/paused_timeout/);
    const waited = world.timeOf(`start ${unit}`)! - world.timeOf('duplicati run app')!;
    expect(waited).toBeGreaterThanOrEqual(30_000);
    expect(waited).toBeLessThan(31_000);
    expect(world.state(unit)).toBe('active');
    expect(log.messages('warn').some((message) => message.includes('Duplicati server is paused'))).toBe(true);
  });

  it('a server paused before the stop: fails with the stack never stopped', async () => {
    const world = worldWithStack('active');
    world.duplicati.paused = true;
    const { result } = await runStack(world);
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/Duplicati server is paused/);
    expect(visible(world)).toEqual([]);
    expect(world.state(unit)).toBe('active');
    expect(result.downtimeMs).toBeUndefined();
  });

  it('"run" outliving run_timeout: the job is still followed and the backup is clean', async () => {
    const world = worldWithStack('active');
    world.duplicati.runHangs = true;
    world.duplicati.durationMs = 60_000;
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    const task = onlyTask(world);
    expect(task.sawLiveStack).toBe(false);
    expect(task.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(log.messages('warn').some((message) => message.includes('did not return within run_timeout'))).toBe(true);
  });

  it('"run" printing nothing: the job is followed by the ID from the job list, and the backup is clean', async () => {
    const world = worldWithStack('active');
    world.duplicati.runSilent = true;
    world.duplicati.pickupDelayMs = 1000;
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const task = onlyTask(world);
    expect(task.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(task.sawLiveStack).toBe(false);
    expect(world.state(unit)).toBe('active');
  });

  it('an unknown job: refused before the stop, naming it and the closest job; the stack never stopped', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world, stackConfig({ jobs: ['ap'] }));
    expect(result.ok).toBe(false);
    expect(result.error).toBe('preflight: Duplicati has no backup job with the name or ID "ap" (did you mean "app"?) (stacks/app: duplicati_jobs; Duplicati has: app); nothing was touched');
    expect(world.state(unit)).toBe('active');
    expect(visible(world)).toEqual([]);
  });

  it('a job running longer than wait_timeout: fails naming wait_timeout, stack restored', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 2 * 3_600_000;
    const global = withDuplicati({ waitTimeoutMs: 3_600_000 });
    const { result } = await runStack(world, stackConfig(), { global });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/wait_timeout/);
    expect(result.error).toMatch(/1h00m/);
    expect(world.state(unit)).toBe('active');
    const waited = world.timeOf(`start ${unit}`)! - world.timeOf('duplicati run app')!;
    expect(waited).toBeGreaterThanOrEqual(3_600_000);
    expect(waited).toBeLessThan(3_601_000);
  });

  it('Duplicati busy with our job before the stop: waits for it, then a fresh task backs up the stopped stack', async () => {
    const world = worldWithStack('active');
    world.duplicati.schedule('1');
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const [early, ours] = world.duplicati.completed('1');
    expect(early!.sawLiveStack).toBe(true); // the scheduled run, which we did not cause
    expect(world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(early!.endedAt!);
    expect(ours).toBeDefined();
    expect(ours!.task).not.toBe(early!.task);
    expect(ours!.sawLiveStack).toBe(false);
    expect(ours!.startedAt!).toBeGreaterThanOrEqual(world.timeOf(`stop ${unit}`)!);
    expect(ours!.endedAt!).toBeLessThanOrEqual(world.timeOf(`start ${unit}`)!);
  });

  it('Duplicati queued with our job (not yet started) before the stop: that queued run is not reused', async () => {
    const world = worldWithStack('active');
    world.duplicati.pickupDelayMs = 10_000;
    world.duplicati.schedule('1');
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const tasks = world.duplicati.completed('1');
    expect(tasks).toHaveLength(2);
    expect(world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(tasks[0]!.endedAt!);
    expect(tasks[1]!.sawLiveStack).toBe(false);
  });

  it('Duplicati busy with another stack\'s job before the stop: the stack stays up until it ended', async () => {
    const world = addStack(worldWithStack('active'), 'other');
    world.duplicati.durationMs = 60_000;
    world.duplicati.schedule('2');
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    const other = onlyTask(world, '2');
    expect(world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(other.endedAt!);
    expect(onlyTask(world, '1').sawLiveStack).toBe(false);
    expect(log.messages('warn').some((message) => message.includes('Duplicati is busy'))).toBe(true);
  });

  it.each([1, 2])('status failing %i time(s) in a row during the wait is tolerated', async (failures) => {
    const world = worldWithStack('active');
    world.duplicati.onRun = () => {
      world.duplicati.failStatus = failures;
    };
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(onlyTask(world).sawLiveStack).toBe(false);
    const warnings = log.messages('warn').filter((message) => message.startsWith('Duplicati status failed'));
    expect(warnings).toHaveLength(failures);
    expect(warnings.at(-1)).toBe(`Duplicati status failed (${failures} of 3) while waiting for job app (backup 1)`);
  });

  it('status failing 3 times in a row fails the stack, which is restored', async () => {
    const world = worldWithStack('active');
    world.duplicati.onRun = () => {
      world.duplicati.failStatus = 3;
    };
    const { result } = await runStack(world);
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/status: exit 125/);
    expect(world.state(unit)).toBe('active');
  });

  it('status failures that are not in a row are each tolerated', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 30_000;
    world.duplicati.onStatus = (call) => {
      if (call % 3 === 0) world.duplicati.failStatus = 2;
    };
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
  });
});

describe('a failure at each phase', () => {
  interface Case {
    title: string;
    inject: (world: FakeWorld) => void;
    stack?: Partial<StackConfig>;
    error?: RegExp;
    /** Actions that must have happened. */
    done: string[];
    /** Actions that must never have happened. */
    never: string[];
    /** The unit stopped and the backup run? */
    backupTaken: boolean;
  }
  const cases: Case[] = [
    {
      title: 'pre_stop hook',
      inject: (world) => world.hookResults.set('pre_stop-cmd', { exitCode: 1 }),
      error: /pre_stop hook "pre_stop-cmd" failed/,
      done: ['hook post_start: post_start-cmd'],
      never: ['stop app-proxy.socket', `stop ${unit}`, `start ${unit}`, 'duplicati run app', 'hook pre_start: pre_start-cmd', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      title: 'freeze: stopping the socket',
      inject: (world) => world.failing.add('stop app-proxy.socket'),
      error: /stop app-proxy.socket: failed/,
      done: ['start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['stop app-proxy.service', `stop ${unit}`, `start ${unit}`, 'duplicati run app', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      title: 'querying the unit state (preflight: nothing touched)',
      inject: (world) => world.failing.add(`state ${unit}`),
      error: /preflight: state app-stack.service: failed.*nothing was touched/,
      done: [],
      never: ['hook pre_stop: pre_stop-cmd', 'stop app-proxy.socket', `stop ${unit}`, `start ${unit}`, 'hook post_start: post_start-cmd', 'duplicati run app'],
      backupTaken: false,
    },
    {
      title: 'stopping the unit',
      inject: (world) => world.failing.add(`stop ${unit}`),
      error: /stop app-stack.service: failed/,
      done: [`stop ${unit}`, 'hook pre_start: pre_start-cmd', `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['hook post_stop: post_stop-cmd', 'duplicati run app', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      title: 'containers not exiting within stop_timeout',
      inject: (world) => {
        world.containers[0]!.lingerMs = 100 * 3_600_000;
      },
      stack: { stopTimeoutMs: 20_000 },
      error: /containers still running 20 s after the stop: app-web/,
      done: [`stop ${unit}`, `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['hook post_stop: post_stop-cmd', 'duplicati run app', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      title: 'post_stop hook',
      inject: (world) => world.hookResults.set('post_stop-cmd', { exitCode: 2 }),
      error: /post_stop hook "post_stop-cmd" failed with exit 2/,
      done: [`stop ${unit}`, `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['hook pre_backup: pre_backup-cmd', 'duplicati run app', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      title: 'pre_backup hook',
      inject: (world) => world.hookResults.set('pre_backup-cmd', { exitCode: 1 }),
      error: /pre_backup hook "pre_backup-cmd" failed/,
      done: [`stop ${unit}`, 'hook post_stop: post_stop-cmd', `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['duplicati run app', 'hook post_backup: post_backup-cmd', 'hook verify: verify-cmd'],
      backupTaken: false,
    },
    {
      // Duplicati is asked for its jobs before anything is touched (issue 30): never stopped.
      title: 'the preflight (unknown job)',
      inject: () => {},
      stack: { jobs: ['ghost'] },
      error: /^preflight: Duplicati has no backup job with the name or ID "ghost" \(stacks\/app: duplicati_jobs; Duplicati has: app\); nothing was touched$/,
      done: [],
      never: ['hook pre_stop: pre_stop-cmd', `stop ${unit}`, 'stop app-proxy.socket', 'duplicati run ghost', `start ${unit}`],
      backupTaken: false,
    },
    {
      title: 'post_backup hook',
      inject: (world) => world.hookResults.set('post_backup-cmd', { exitCode: 1 }),
      error: /post_backup hook "post_backup-cmd" failed/,
      done: ['duplicati run app', 'hook pre_start: pre_start-cmd', `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd'],
      never: ['hook verify: verify-cmd'],
      backupTaken: true,
    },
    {
      title: 'verify hook',
      inject: (world) => world.hookResults.set('verify-cmd', { exitCode: 1 }),
      error: /verify hook "verify-cmd" failed/,
      done: ['duplicati run app', `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd', 'hook verify: verify-cmd'],
      never: [],
      backupTaken: true,
    },
  ];

  it.each(cases)('$title: fails, the stack is restored, later steps never run', async (entry) => {
    const world = fullWorld();
    entry.inject(world);
    const { result, log } = await runStack(world, fullStack(entry.stack));
    expect(result.ok).toBe(false);
    expect(result.aborted).toBe(false);
    expect(result.error).toMatch(entry.error!);
    expect(result.restoreErrors).toEqual([]);
    expect(result.notRestored).toBe(false);
    for (const action of entry.done) expect(world.actions).toContain(action);
    for (const action of entry.never) expect(world.actions).not.toContain(action);
    expect(world.state(unit)).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.state('app-proxy.service')).toBe('inactive');
    const tasks = world.duplicati.completed('1');
    expect(tasks).toHaveLength(entry.backupTaken ? 1 : 0);
    for (const task of tasks) expect(task.sawLiveStack).toBe(false);
    expect(log.messages('error').some((message) => message.startsWith('stack run failed: '))).toBe(true);
  });

  it('the undos run in reverse order of the changes: unit, then socket, then post_start hooks', async () => {
    const world = fullWorld();
    world.hookResults.set('pre_backup-cmd', { exitCode: 1 });
    await runStack(world, fullStack());
    const after = visible(world).slice(visible(world).indexOf('hook pre_backup: pre_backup-cmd') + 1);
    expect(after).toEqual(['hook pre_start: pre_start-cmd', `start ${unit}`, 'start app-proxy.socket', 'hook post_start: post_start-cmd']);
  });

  it('a failed start is a restore error, the result FAILED, and the other undos still run', async () => {
    const world = fullWorld();
    world.failing.add(`start ${unit}`);
    const { result, log } = await runStack(world, fullStack());
    expect(result.ok).toBe(false);
    expect(result.error).toBeUndefined();
    expect(result.restoreErrors).toHaveLength(1);
    expect(result.restoreErrors[0]).toMatch(/^restore unit: start app-stack.service: failed/);
    expect(result.notRestored).toBe(true);
    expect(world.state(unit)).toBe('inactive');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.actions).toContain('hook post_start: post_start-cmd');
    expect(world.actions).not.toContain('hook verify: verify-cmd');
    expect(onlyTask(world).sawLiveStack).toBe(false);
    expect(result.downtimeMs).toBeUndefined();
    expect(log.messages('error')).toContain('undo "restore unit" failed: start app-stack.service: failed (injected)');
  });

  it('a failing post_start hook is a restore error; the unit is still up', async () => {
    const world = fullWorld();
    world.hookResults.set('post_start-cmd', { exitCode: 4 });
    const { result } = await runStack(world, fullStack());
    expect(result.ok).toBe(false);
    expect(result.restoreErrors).toEqual(['post_start hooks: post_start hook "post_start-cmd" failed with exit 4']);
    expect(result.notRestored).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(world.actions).not.toContain('hook verify: verify-cmd');
  });

  it('a failing pre_start hook is a restore error, yet the unit is started and the other undos run', async () => {
    const world = fullWorld();
    world.hookResults.set('pre_start-cmd', { exitCode: 1 });
    const { result } = await runStack(world, fullStack());
    expect(result.ok).toBe(false);
    expect(result.error).toBeUndefined();
    expect(result.restoreErrors).toEqual(['restore unit: pre_start hook "pre_start-cmd" failed with exit 1']);
    expect(result.notRestored).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.actions).toContain('hook post_start: post_start-cmd');
    expect(world.actions).not.toContain('hook verify: verify-cmd');
    expect(onlyTask(world).sawLiveStack).toBe(false);
  });

  it('restore_policy previous with an inactive unit and a failing pre_start hook: still left stopped', async () => {
    const world = worldWithStack('inactive');
    world.hookResults.set('prepare', { exitCode: 1 });
    const { result } = await runStack(world, stackConfig({ hooks: hooks({ pre_start: ['prepare'] }) }));
    expect(result.ok).toBe(false);
    expect(world.state(unit)).toBe('inactive');
    expect(world.actions).not.toContain(`start ${unit}`);
  });

  it('a failing socket restart does not keep post_start hooks from running', async () => {
    const world = fullWorld();
    world.failing.add('start app-proxy.socket');
    const { result } = await runStack(world, fullStack());
    expect(result.ok).toBe(false);
    expect(result.restoreErrors).toEqual([expect.stringMatching(/^unfreeze on-demand socket: start app-proxy.socket: failed/)]);
    expect(result.notRestored).toBe(true);
    expect(world.state(unit)).toBe('active');
    expect(world.actions).toContain('hook post_start: post_start-cmd');
  });

  it('an unreachable backup_mount: nothing is touched, not even hooks', async () => {
    const world = fullWorld();
    world.unreachableFolders.add('/mnt/backup');
    const { result } = await runStack(world, fullStack(), { global: globalConfig({ backupMount: '/mnt/backup' }) });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/backup_mount \/mnt\/backup is not reachable/);
    expect(world.actions).toEqual(['check /mnt/backup']);
    expect(world.state(unit)).toBe('active');
  });
});

describe('restore policy and the state before the run', () => {
  it.each([
    ['previous', 'active', 'active', true],
    ['previous', 'inactive', 'inactive', false],
    ['previous', 'failed', 'inactive', false],
    ['always', 'active', 'active', true],
    ['always', 'inactive', 'active', true],
    ['always', 'failed', 'active', true],
  ] as const)('restore_policy %s, unit %s before: %s after', async (policy, before, after, started) => {
    const world = worldWithStack(before);
    const { result } = await runStack(world, stackConfig({ restorePolicy: policy }));
    expect(result.ok).toBe(true);
    expect(world.state(unit)).toBe(after);
    expect(world.actions.includes(`start ${unit}`)).toBe(started);
    expect(onlyTask(world).sawLiveStack).toBe(false);
  });

  it('a unit that was activating counts as up and is started again', async () => {
    const world = worldWithStack('active');
    world.units.get(unit)!.active = 'activating';
    await runStack(world);
    expect(world.state(unit)).toBe('active');
  });
});

describe('freeze of the on-demand socket', () => {
  it.each([
    ['active', 'active'],
    ['active', 'inactive'],
    ['inactive', 'active'],
    ['inactive', 'inactive'],
  ])('socket %s, service %s: stopped before the unit, then back to exactly that', async (socketBefore, serviceBefore) => {
    const world = worldWithStack('active').unit('app-proxy.socket', socketBefore).unit('app-proxy.service', serviceBefore);
    const stack = stackConfig({ freeze: { socket: 'app-proxy.socket', service: 'app-proxy.service' } });
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(true);
    const stops = visible(world).filter((action) => action.startsWith('stop'));
    expect(stops).toEqual(['stop app-proxy.socket', 'stop app-proxy.service', `stop ${unit}`]);
    expect(world.state('app-proxy.socket')).toBe(socketBefore);
    expect(world.state('app-proxy.service')).toBe(serviceBefore);
    expect(world.state(unit)).toBe('active');
    const task = onlyTask(world);
    expect(world.timeOf('start app-proxy.socket') ?? Infinity).toBeGreaterThanOrEqual(task.endedAt!);
    expect(world.timeOf('start app-proxy.service') ?? Infinity).toBeGreaterThanOrEqual(task.endedAt!);
  });
});

describe('containers', () => {
  it('containers lingering after the unit stopped are waited for; the backup starts after they exited', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 3000);
    world.container('app-db', unit, { 'io.podman.compose.project': 'app' }, 1000);
    world.duplicati.job('1', 'app', unit);
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const task = onlyTask(world);
    expect(task.startedAt! - world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(3000);
    expect(task.sawLiveStack).toBe(false);
  });

  it('with container events unavailable, listing still waits for them', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 3000);
    world.duplicati.job('1', 'app', unit);
    world.failing.add('watch');
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(onlyTask(world).startedAt! - world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(3000);
    expect(log.messages('warn')).toContain('cannot follow container events; listing containers instead');
  });
});

describe('abort', () => {
  it('SIGTERM during the backup wait: aborted, the stack restored, post_start hooks run', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 600_000;
    const controller = new AbortController();
    let abortedAt: number | undefined;
    world.duplicati.onStatus = (call) => {
      // The first look once the job is queued: the run is waiting for it.
      if (abortedAt === undefined && world.duplicati.tasks.length > 0) {
        abortedAt = call;
        controller.abort(new AbortedError('SIGTERM'));
      }
    };
    const stack = stackConfig({ hooks: hooks({ post_start: ['maintenance off'], verify: ['check'] }) });
    const { result } = await runStack(world, stack, { signal: controller.signal });
    expect(result.ok).toBe(false);
    expect(result.aborted).toBe(true);
    // The exec driver cannot stop the task: the job is named as one that may read the live stack.
    expect(result.error).toBe(
      'aborted by SIGTERM; Duplicati may still run job app (backup 1, task 10) after the stack has started again: it would read the live stack and may record an inconsistent version',
    );
    expect(result.restoreErrors).toEqual([]);
    expect(world.state(unit)).toBe('active');
    expect(world.actions).toContain('hook post_start: maintenance off');
    expect(world.actions).not.toContain('hook verify: check');
    expect(result.backupMs).toBeUndefined();
    // one during the wait, then one to see whether Duplicati still holds our job
    expect(world.duplicati.statusCalls).toBe(abortedAt! + 1);
    expect(exitCodeFor(controller.signal.reason)).toBe(143);
  });

  it('SIGINT from a pre_backup hook: no backup, the stack restored with its pre_start hook', async () => {
    const world = worldWithStack('active');
    const controller = new AbortController();
    world.onHook = (hook) => {
      if (hook.environment.STACK_PHASE === 'pre_backup') controller.abort(new AbortedError('SIGINT'));
    };
    const stack = stackConfig({ hooks: hooks({ pre_backup: ['prepare'], pre_start: ['fix permissions'] }) });
    const { result } = await runStack(world, stack, { signal: controller.signal });
    expect(result.aborted).toBe(true);
    expect(result.error).toBe('aborted by SIGINT');
    expect(visible(world)).toEqual([`stop ${unit}`, 'hook pre_backup: prepare', 'hook pre_start: fix permissions', `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
    expect(exitCodeFor(controller.signal.reason)).toBe(130);
  });

  it('an abort while containers are still exiting: the stack restored, no backup', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 60_000);
    world.duplicati.job('1', 'app', unit);
    const controller = new AbortController();
    const stopAt = world.clock.now();
    world.clock.onAdvance(() => {
      if (!controller.signal.aborted && world.clock.now() >= stopAt + 5000) controller.abort(new AbortedError('SIGHUP'));
    });
    const { result } = await runStack(world, stackConfig(), { signal: controller.signal });
    expect(result.aborted).toBe(true);
    expect(world.actions).not.toContain('duplicati run app');
    expect(world.state(unit)).toBe('active');
  });
});
