/**
 * Each step of src/steps/ on its own, against the fakes: what it does to the world, what undo it
 * registers, and how it fails. Whole-run scenarios are in orchestrator.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { AbortedError, HookFailure, TimeoutError } from '../../src/errors.js';
import { continuousPollGapMs, runBackupJobs, waitForDuplicatiIdle } from '../../src/steps/backup.js';
import { freezeOnDemand } from '../../src/steps/freeze.js';
import { preStopHooks, runHookPhase } from '../../src/steps/hooks.js';
import { preflight } from '../../src/steps/preflight.js';
import { stopUnit } from '../../src/steps/stop-unit.js';
import { waitForContainers } from '../../src/steps/wait-containers.js';
import type { UndoRecord } from '../../src/journal/journal.js';
import { UndoStack, noJournal } from '../../src/journal/undo.js';
import { FakeWorld, globalConfig, hooks, readAfterStart, stackConfig, stackRun, unwind, worldWithStack } from '../fakes.js';

const unit = 'app-stack.service';

/** Aborts the controller once the virtual clock reaches `at`. */
function abortAt(world: FakeWorld, controller: AbortController, at: number, signalName = 'SIGTERM'): void {
  world.clock.onAdvance(() => {
    if (!controller.signal.aborted && world.clock.now() >= at) controller.abort(new AbortedError(signalName));
  });
}

describe('preflight', () => {
  it('without backup_mount checks nothing', async () => {
    const world = worldWithStack();
    await preflight(stackRun(world));
    expect(world.actions).toEqual([]);
  });

  it('reads backup_mount', async () => {
    const world = worldWithStack();
    const run = stackRun(world, stackConfig(), { global: globalConfig({ backupMount: '/mnt/backup' }) });
    await preflight(run);
    expect(world.actions).toEqual(['check /mnt/backup']);
    expect(run.log.messages()).toContain('check backup_mount: done');
  });

  it('an unreachable backup_mount fails with a message naming it', async () => {
    const world = worldWithStack();
    world.unreachableFolders.add('/mnt/backup');
    const run = stackRun(world, stackConfig(), { global: globalConfig({ backupMount: '/mnt/backup' }) });
    await expect(preflight(run)).rejects.toThrow(/backup_mount \/mnt\/backup is not reachable: no answer within 30 s/);
    expect(run.undo.size).toBe(0);
  });
});

describe('runHookPhase', () => {
  it('runs the commands in order with the stack environment, in the root folder', async () => {
    const world = worldWithStack();
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_stop: ['first', 'second'] }), hookTimeoutMs: 7000 }), {
      global: globalConfig({ root: '/srv/backup-root' }),
    });
    await runHookPhase(run, 'pre_stop');
    expect(world.hookRuns.map((hook) => hook.command)).toEqual(['first', 'second']);
    for (const hook of world.hookRuns) {
      expect(hook.environment).toEqual({
        STACK_NAME: 'app',
        STACK_UNIT: 'app-stack.service',
        STACK_PHASE: 'pre_stop',
        STACK_BACKUP_ROOT: '/srv/backup-root',
      });
      expect(hook.cwd).toBe('/srv/backup-root');
      expect(hook.timeoutMs).toBe(7000);
    }
  });

  it('a phase without commands runs nothing', async () => {
    const world = worldWithStack();
    await runHookPhase(stackRun(world), 'verify');
    expect(world.hookRuns).toEqual([]);
  });

  it('the first failing command ends the phase with its exit code; its output is logged', async () => {
    const world = worldWithStack();
    world.hookResults.set('second', { exitCode: 3, output: 'database locked\n' });
    const run = stackRun(world, stackConfig({ hooks: hooks({ post_stop: ['first', 'second', 'third'] }) }));
    const error = await runHookPhase(run, 'post_stop').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HookFailure);
    expect((error as Error).message).toBe('post_stop hook "second" failed with exit 3');
    expect((error as HookFailure).output).toBe('database locked\n');
    expect(world.hookRuns.map((hook) => hook.command)).toEqual(['first', 'second']);
    const outputLine = run.log.lines.find((line) => line.message === 'post_stop hook output');
    expect(outputLine?.fields.output).toBe('database locked\n');
    expect(run.log.messages('error')).toContain('post_stop hook: failed: post_stop hook "second" failed with exit 3');
  });

  it('a hook that runs past hook_timeout is a HookFailure saying it was killed', async () => {
    const world = worldWithStack();
    world.hookResults.set('sleep 1000', { exitCode: 0, hang: true });
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_backup: ['sleep 1000'] }), hookTimeoutMs: 10_000 }));
    const error = await runHookPhase(run, 'pre_backup').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HookFailure);
    expect((error as Error).message).toMatch(/pre_backup hook "sleep 1000" ran longer than 10 s and was killed/);
  });

  it('an aborted run starts no further hook', async () => {
    const world = worldWithStack();
    const controller = new AbortController();
    world.onHook = () => controller.abort(new AbortedError('SIGINT'));
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_stop: ['first', 'second'] }) }), { signal: controller.signal });
    await expect(runHookPhase(run, 'pre_stop')).rejects.toBeInstanceOf(AbortedError);
    expect(world.hookRuns.map((hook) => hook.command)).toEqual(['first']);
  });
});

describe('preStopHooks', () => {
  it('registers the post_start hooks as undo before pre_stop runs, even when pre_stop fails', async () => {
    const world = worldWithStack();
    world.hookResults.set('maintenance on', { exitCode: 1 });
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_stop: ['maintenance on'], post_start: ['maintenance off'] }) }));
    await expect(preStopHooks(run)).rejects.toThrow(/pre_stop hook "maintenance on" failed/);
    expect(run.undo.size).toBe(1);
    expect(await unwind(run)).toEqual([]);
    expect(world.actions).toEqual(['hook pre_stop: maintenance on', 'hook post_start: maintenance off']);
  });

  it('registers nothing when there are neither pre_stop nor post_start hooks', async () => {
    const world = worldWithStack();
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_backup: ['x'] }) }));
    await preStopHooks(run);
    expect(run.undo.size).toBe(0);
    expect(world.hookRuns).toEqual([]);
  });
});

describe('freezeOnDemand', () => {
  const freezeStack = (withService = true) =>
    stackConfig({ freeze: { socket: 'app-proxy.socket', service: withService ? 'app-proxy.service' : undefined } });

  it('does nothing without freeze settings', async () => {
    const world = worldWithStack();
    const run = stackRun(world);
    await freezeOnDemand(run);
    expect(world.actions).toEqual([]);
    expect(run.undo.size).toBe(0);
  });

  it.each([
    ['active', 'active'],
    ['active', 'inactive'],
    ['inactive', 'active'],
    ['inactive', 'inactive'],
  ])('socket %s, service %s: both stopped (socket first), then restored exactly', async (socketState, serviceState) => {
    const world = worldWithStack().unit('app-proxy.socket', socketState).unit('app-proxy.service', serviceState);
    const run = stackRun(world, freezeStack());
    await freezeOnDemand(run);
    expect(world.state('app-proxy.socket')).toBe('inactive');
    expect(world.state('app-proxy.service')).toBe('inactive');
    expect(world.actions).toEqual(['stop app-proxy.socket', 'stop app-proxy.service']);
    expect(await unwind(run)).toEqual([]);
    expect(world.state('app-proxy.socket')).toBe(socketState);
    expect(world.state('app-proxy.service')).toBe(serviceState);
    const starts = world.actions.filter((action) => action.startsWith('start'));
    expect(starts).toEqual([
      ...(socketState === 'active' ? ['start app-proxy.socket'] : []),
      ...(serviceState === 'active' ? ['start app-proxy.service'] : []),
    ]);
  });

  it('socket only, no service', async () => {
    const world = worldWithStack().unit('app-proxy.socket', 'active');
    const run = stackRun(world, freezeStack(false));
    await freezeOnDemand(run);
    expect(world.actions).toEqual(['stop app-proxy.socket']);
    await unwind(run);
    expect(world.state('app-proxy.socket')).toBe('active');
  });

  it('a failing socket stop still leaves the undo that restarts the socket', async () => {
    const world = worldWithStack().unit('app-proxy.socket', 'active').unit('app-proxy.service', 'inactive');
    world.failing.add('stop app-proxy.socket');
    const run = stackRun(world, freezeStack());
    await expect(freezeOnDemand(run)).rejects.toThrow(/stop app-proxy.socket/);
    expect(world.actions).not.toContain('stop app-proxy.service');
    await unwind(run);
    expect(world.actions).toContain('start app-proxy.socket');
    expect(world.state('app-proxy.socket')).toBe('active');
  });

  it('a failing state query touches nothing and registers no undo', async () => {
    const world = worldWithStack().unit('app-proxy.socket', 'active').unit('app-proxy.service', 'active');
    world.failing.add('state app-proxy.socket');
    const run = stackRun(world, freezeStack());
    await expect(freezeOnDemand(run)).rejects.toThrow(/state app-proxy.socket/);
    expect(run.undo.size).toBe(0);
    expect(world.actions).toEqual([]);
  });
});

describe('stopUnit', () => {
  it('records that the unit was active, stops it, and the undo starts it again', async () => {
    const world = worldWithStack('active');
    const run = stackRun(world);
    await stopUnit(run);
    expect(world.state(unit)).toBe('inactive');
    expect(run.timings.unitWasActive).toBe(true);
    expect(run.undo.size).toBe(1);
    await unwind(run);
    expect(world.state(unit)).toBe('active');
    expect(world.actions).toEqual([`stop ${unit}`, `start ${unit}`]);
    expect(run.timings.unitStartedAt).toBeDefined();
  });

  it('restore_policy previous and an inactive unit: the undo leaves it stopped and says why', async () => {
    const world = worldWithStack('inactive');
    const run = stackRun(world);
    await stopUnit(run);
    await unwind(run);
    expect(world.state(unit)).toBe('inactive');
    expect(world.actions).not.toContain(`start ${unit}`);
    const line = run.log.lines.find((entry) => entry.message === 'unit left stopped');
    expect(String(line?.fields.reason)).toContain('restore_policy previous and it was inactive');
  });

  it('a failing stop still leaves the undo that starts the unit', async () => {
    const world = worldWithStack('active');
    world.failing.add(`stop ${unit}`);
    const run = stackRun(world);
    await expect(stopUnit(run)).rejects.toThrow(/stop app-stack.service: failed/);
    expect(run.undo.size).toBe(1);
    await unwind(run);
    expect(world.actions).toEqual([`stop ${unit}`, `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
  });

  it('a failing state query stops nothing and registers no undo', async () => {
    const world = worldWithStack('active');
    world.failing.add(`state ${unit}`);
    const run = stackRun(world);
    await expect(stopUnit(run)).rejects.toThrow(/state app-stack.service/);
    expect(run.undo.size).toBe(0);
    expect(world.actions).toEqual([]);
    expect(world.state(unit)).toBe('active');
  });

  it('a failing pre_start hook fails the undo but the unit is still started', async () => {
    const world = worldWithStack('active');
    world.hookResults.set('fix permissions', { exitCode: 1 });
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_start: ['fix permissions'] }) }));
    await stopUnit(run);
    const failures = await unwind(run);
    expect(failures.map((failure) => failure.error)).toEqual([expect.any(HookFailure)]);
    expect(world.actions).toEqual([`stop ${unit}`, 'hook pre_start: fix permissions', `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
  });

  it('a failing pre_start hook and a failing start: one error naming both', async () => {
    const world = worldWithStack('active');
    world.hookResults.set('fix permissions', { exitCode: 1 });
    world.failing.add(`start ${unit}`);
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_start: ['fix permissions'] }) }));
    await stopUnit(run);
    const failures = await unwind(run);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.error).not.toBeInstanceOf(HookFailure);
    expect(failures[0]!.error.message).toMatch(/pre_start hook "fix permissions" failed.*; start app-stack.service: failed/);
  });

  it('pre_start hooks run in the undo before the start', async () => {
    const world = worldWithStack('active');
    const run = stackRun(world, stackConfig({ hooks: hooks({ pre_start: ['fix permissions'] }) }));
    await stopUnit(run);
    await unwind(run);
    expect(world.actions).toEqual([`stop ${unit}`, 'hook pre_start: fix permissions', `start ${unit}`]);
  });
});

describe('waitForContainers', () => {
  it('returns at once when no container runs', async () => {
    const world = worldWithStack('active');
    await world.systemd.stop(unit, 1000);
    const run = stackRun(world);
    const before = world.clock.now();
    await waitForContainers(run);
    expect(run.timings.containersGoneAt).toBe(before);
  });

  it('waits for containers that linger after the unit stopped', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 3000);
    world.container('app-db', unit, { 'io.podman.compose.project': 'app' }, 0);
    await world.systemd.stop(unit, 1000);
    const stoppedAt = world.clock.now();
    const run = stackRun(world);
    await waitForContainers(run);
    expect(world.containers.every((container) => container.state === 'exited')).toBe(true);
    expect(run.timings.containersGoneAt! - stoppedAt).toBeGreaterThanOrEqual(3000);
    expect(run.timings.containersGoneAt! - stoppedAt).toBeLessThan(3000 + 1000);
  });

  it('falls back to listing when watching events fails, and still waits', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 3000);
    world.failing.add('watch');
    await world.systemd.stop(unit, 1000);
    const stoppedAt = world.clock.now();
    const run = stackRun(world);
    await waitForContainers(run);
    expect(world.containers[0]!.state).toBe('exited');
    expect(run.timings.containersGoneAt! - stoppedAt).toBeGreaterThanOrEqual(3000);
    expect(run.log.messages('warn')).toContain('cannot follow container events; listing containers instead');
  });

  it('ignores containers of other stacks', async () => {
    const world = worldWithStack('active').unit('other-stack.service', 'active');
    world.container('other-web', 'other-stack.service', { 'io.podman.compose.project': 'other' });
    await world.systemd.stop(unit, 1000);
    const run = stackRun(world);
    await waitForContainers(run);
    expect(world.containers.find((container) => container.name === 'other-web')!.state).toBe('running');
  });

  it('uses container_label as the selector', async () => {
    const world = new FakeWorld().unit('quadlet.service', 'active');
    world.container('q-web', 'quadlet.service', { PODMAN_SYSTEMD_UNIT: 'quadlet.service' }, 2000);
    await world.systemd.stop('quadlet.service', 1000);
    const stoppedAt = world.clock.now();
    const run = stackRun(world, stackConfig({ unit: 'quadlet.service', selector: { key: 'PODMAN_SYSTEMD_UNIT', value: 'quadlet.service' } }));
    await waitForContainers(run);
    expect(run.timings.containersGoneAt! - stoppedAt).toBeGreaterThanOrEqual(2000);
  });

  it('containers still running after stop_timeout: a TimeoutError naming them', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 10 * 3_600_000);
    await world.systemd.stop(unit, 1000);
    const started = world.clock.now();
    const run = stackRun(world, stackConfig({ stopTimeoutMs: 30_000 }));
    const error = await waitForContainers(run).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toBe('containers still running 30 s after the stop: app-web (running)');
    expect(world.clock.now() - started).toBeGreaterThanOrEqual(30_000);
    expect(world.clock.now() - started).toBeLessThan(32_000);
  });

  it('a container Podman still lists as "removing" but whose processes are gone counts as stopped, and the log names its state', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' });
    await world.systemd.stop(unit, 1000);
    Object.assign(world.containers[0]!, { state: 'removing', processes: false });
    const started = world.clock.now();
    const run = stackRun(world, stackConfig({ stopTimeoutMs: 30_000 }));
    await waitForContainers(run);
    expect(run.timings.containersGoneAt).toBe(started);
    expect(run.log.messages('warn')).toContain('container app-web is in Podman state "removing" but runs no process; counted as stopped');
  });

  it('a container in a state this code does not know is waited for while its processes run', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' });
    await world.systemd.stop(unit, 1000);
    Object.assign(world.containers[0]!, { state: 'stopping', processes: true });
    const run = stackRun(world, stackConfig({ stopTimeoutMs: 30_000 }));
    const error = await waitForContainers(run).catch((caught: unknown) => caught);
    expect((error as Error).message).toBe('containers still running 30 s after the stop: app-web (stopping)');
    expect(run.log.messages('warn')).toContain('container app-web is in Podman state "stopping" and its processes still run; waiting for them');
  });

  it('an abort ends the wait', async () => {
    const world = new FakeWorld().unit(unit, 'active');
    world.container('app-web', unit, { 'io.podman.compose.project': 'app' }, 10 * 3_600_000);
    await world.systemd.stop(unit, 1000);
    const controller = new AbortController();
    const started = world.clock.now();
    abortAt(world, controller, started + 5000);
    const run = stackRun(world, stackConfig(), { signal: controller.signal });
    await expect(waitForContainers(run)).rejects.toBeInstanceOf(AbortedError);
    expect(world.clock.now() - started).toBeLessThan(7000);
    expect(run.timings.containersGoneAt).toBeUndefined();
  });
});

describe('waitForDuplicatiIdle', () => {
  it('an idle server: one status call, no warning', async () => {
    const world = worldWithStack();
    const run = stackRun(world);
    await waitForDuplicatiIdle(run);
    expect(world.actions).toEqual(['duplicati status']);
    expect(run.log.messages('warn')).toEqual([]);
  });

  it('a busy server: waits until its task ended, with a warning', async () => {
    const world = worldWithStack();
    world.duplicati.schedule('1');
    const run = stackRun(world);
    await waitForDuplicatiIdle(run);
    const [task] = world.duplicati.completed('1');
    expect(task!.endedAt).toBeLessThanOrEqual(world.clock.now());
    expect(run.log.messages('warn')[0]).toMatch(/Duplicati is busy before the stack is stopped/);
  });

  it('a paused server: fails after paused_timeout with a message saying paused', async () => {
    const world = worldWithStack();
    world.duplicati.paused = true;
    const run = stackRun(world, stackConfig(), { global: globalConfig({ duplicati: { ...globalConfig().duplicati, pausedTimeoutMs: 20_000 } }) });
    const started = world.clock.now();
    await expect(waitForDuplicatiIdle(run)).rejects.toThrow(/Duplicati server is paused.*paused_timeout/);
    expect(world.clock.now() - started).toBeGreaterThanOrEqual(20_000);
    expect(world.clock.now() - started).toBeLessThan(21_000);
  });

  it('a server resumed within paused_timeout: goes on', async () => {
    const world = worldWithStack();
    world.duplicati.paused = true;
    world.duplicati.onStatus = (call) => {
      if (call === 5) world.duplicati.paused = false;
    };
    await waitForDuplicatiIdle(stackRun(world));
    expect(world.duplicati.statusCalls).toBe(5);
  });
});

describe('runBackupJobs', () => {
  it('records when the backup started and ended', async () => {
    const world = worldWithStack('inactive');
    const run = stackRun(world);
    await runBackupJobs(run);
    expect(run.timings.backupEndedAt! - run.timings.backupStartedAt!).toBeGreaterThanOrEqual(world.duplicati.durationMs);
    expect(world.duplicati.completed('1')).toHaveLength(1);
  });

  it('a job queued behind the pickup delay is waited for until it ran', async () => {
    const world = worldWithStack('inactive');
    world.duplicati.pickupDelayMs = 4000;
    const run = stackRun(world);
    await runBackupJobs(run);
    const [task] = world.duplicati.completed('1');
    expect(task).toBeDefined();
    expect(task!.endedAt).toBeLessThanOrEqual(run.timings.backupEndedAt!);
    expect(run.log.lines.some((line) => line.message === 'job seen')).toBe(true);
  });

  it('the step log names the backup ID and name, once the verdict is read after the start', async () => {
    const world = worldWithStack('inactive');
    const run = stackRun(world);
    await runBackupJobs(run);
    expect(run.log.messages()).toContain('job app ended; its result is read once the stack runs again');
    expect(run.log.messages()).not.toContain('backup job app: done');
    await readAfterStart(run);
    const done = run.log.lines.find((line) => line.message === 'backup job app: done');
    expect(done?.fields).toMatchObject({ backup_id: '1', backup_name: 'app', result: 'Success' });
  });

  it('a short job is seen to end at once, not a poll_interval later', async () => {
    const world = worldWithStack('inactive');
    world.duplicati.durationMs = 1000;
    const run = stackRun(world, stackConfig(), { global: globalConfig({ duplicati: { ...globalConfig().duplicati, pollIntervalMs: 5000 } }) });
    await runBackupJobs(run);
    const [task] = world.duplicati.completed('1');
    expect(run.timings.backupEndedAt! - task!.endedAt!).toBeLessThan(1000);
  });

  it('stop mode: a long job is looked at one status call after the other, so its end is seen within one, not poll_interval later', async () => {
    const world = worldWithStack('inactive');
    world.duplicati.durationMs = 10 * 60_000;
    const pollIntervalMs = 5000;
    const run = stackRun(world, stackConfig(), { global: globalConfig({ duplicati: { ...globalConfig().duplicati, pollIntervalMs } }) });
    await runBackupJobs(run);
    const polls = world.timeline.filter((entry) => entry.action === 'duplicati status').map((entry) => entry.at);
    const gaps = polls.slice(1).map((at, index) => at - polls[index]!);
    expect(gaps.every((gap) => gap <= continuousPollGapMs)).toBe(true);
    const ended = world.duplicati.completed('1')[0]!.endedAt!;
    expect(run.timings.jobEndSeenAt! - ended).toBeLessThanOrEqual(continuousPollGapMs);
  });

  it('snapshot mode (the stack runs meanwhile): a long job is polled never more than poll_interval apart, and not several times a second', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 3 * 3_600_000;
    const pollIntervalMs = 5000;
    const stack = stackConfig({ snapshot: { driver: 'btrfs', paths: [{ source: '/srv/app', target: '/srv/snapshots/app' }] } });
    const run = stackRun(world, stack, { global: globalConfig({ duplicati: { ...globalConfig().duplicati, pollIntervalMs } }) });
    await runBackupJobs(run);
    const polls = world.timeline.filter((entry) => entry.action === 'duplicati status').map((entry) => entry.at);
    const gaps = polls.slice(1).map((at, index) => at - polls[index]!);
    expect(gaps.reduce((largest, gap) => Math.max(largest, gap), 0)).toBeLessThanOrEqual(pollIntervalMs);
    const waited = polls.at(-1)! - polls[0]!;
    expect(polls.length).toBeLessThan(waited / 1000);
    expect(world.duplicati.completed('1')[0]!.endedAt).toBeLessThanOrEqual(run.timings.backupEndedAt!);
  });

  it('a numeric job given as ID is followed even when run prints nothing', async () => {
    const world = worldWithStack('inactive');
    world.duplicati.runSilent = true;
    const run = stackRun(world, stackConfig({ jobs: ['1'] }));
    await runBackupJobs(run);
    expect(world.duplicati.completed('1')).toHaveLength(1);
    expect(world.duplicati.completed('1')[0]!.endedAt).toBeLessThanOrEqual(world.clock.now());
  });
});

describe('UndoStack', () => {
  const record = (unit: string): UndoRecord => ({
    kind: 'restore-unit',
    unit,
    stateBefore: 'active',
    start: true,
    startTimeoutMs: 1000,
    preStart: { phase: 'pre_start', commands: [], environment: {}, cwd: '/', timeoutMs: 1000 },
  });
  const executor =
    (log: string[], behaviour: Record<string, 'fail' | 'hang'> = {}) =>
    async (undo: UndoRecord, signal: AbortSignal) => {
      const name = (undo as { unit: string }).unit;
      log.push(name);
      if (behaviour[name] === 'fail') throw new Error(`${name} broke`);
      if (behaviour[name] === 'hang') await new Promise((resolve) => signal.addEventListener('abort', resolve));
    };

  it('runs the undos last first, collects failures, and the others still run', async () => {
    const undo = new UndoStack();
    const ran: string[] = [];
    undo.push('app', record('first'));
    undo.push('app', record('second'));
    undo.push('app', record('third'));
    const observed: string[] = [];
    const failures = await undo.unwind(executor(ran, { second: 'fail' }), {
      started: (name) => observed.push(`start ${name}`),
      finished: (name, error) => observed.push(`end ${name}${error ? ' failed' : ''}`),
    });
    expect(ran).toEqual(['third', 'second', 'first']);
    expect(failures.map((failure) => `${failure.name}: ${failure.error.message}`)).toEqual(['restore unit: second broke']);
    expect(observed).toEqual([
      'start restore unit',
      'end restore unit',
      'start restore unit',
      'end restore unit failed',
      'start restore unit',
      'end restore unit',
    ]);
    expect(undo.size).toBe(0);
  });

  it('an undo that does not end within its budget fails with a timeout and the next still runs', async () => {
    const undo = new UndoStack(noJournal, () => 20);
    const ran: string[] = [];
    undo.push('app', record('after'));
    undo.push('app', record('stuck'));
    const failures = await undo.unwind(executor(ran, { stuck: 'hang' }), { started: () => {}, finished: () => {} });
    expect(ran).toEqual(['stuck', 'after']);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.error).toBeInstanceOf(TimeoutError);
    expect(failures[0]!.error.message).toMatch(/^restore unit: not done within/);
  });

  it('each undo gets a fresh, not aborted signal', async () => {
    const undo = new UndoStack();
    const seen: boolean[] = [];
    undo.push('app', record('a'));
    await undo.unwind(async (_record, signal) => void seen.push(signal.aborted), { started: () => {}, finished: () => {} });
    expect(seen).toEqual([false]);
  });

  it('writes each undo to the journal before it is pushed, and crosses it out once done, not when it failed', async () => {
    const entries = new Map<string, string>();
    let next = 0;
    const journal = {
      add: (stack: string, undo: UndoRecord) => {
        const id = String(next++);
        entries.set(id, `${stack} ${(undo as { unit: string }).unit}`);
        return id;
      },
      update: () => {},
      remove: (id: string) => void entries.delete(id),
      pending: () => [],
    };
    const undo = new UndoStack(journal);
    undo.push('app', record('good'));
    undo.push('app', record('bad'));
    expect([...entries.values()]).toEqual(['app good', 'app bad']);
    await undo.unwind(executor([], { bad: 'fail' }), { started: () => {}, finished: () => {} });
    expect([...entries.values()]).toEqual(['app bad']);
  });
});
