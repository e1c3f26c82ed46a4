/**
 * The downtime path against the fake world (issue 20): Duplicati looked at while the stack
 * stops (the idle check and the job's record cost no downtime), the job followed one look after
 * the other, its verdict read once the stack runs again, and the timeline of it all in the log.
 */
import { describe, expect, it } from 'vitest';
import { timelineOf } from '../../src/backup/timeline.js';
import { continuousPollGapMs } from '../../src/steps/backup.js';
import { parseContainerEvents } from '../../src/adapters/podman.js';
import { stopUnit } from '../../src/steps/stop-unit.js';
import { waitForContainers } from '../../src/steps/wait-containers.js';
import { addStack, globalConfig, hooks, runStack, stackConfig, stackRun, worldWithStack } from '../fakes.js';

const unit = 'app-stack.service';

describe('Duplicati looked at while the stack stops', () => {
  it('idle all along: the record is read after the stop was asked and before `run`, which follows the containers\' exit', async () => {
    const world = worldWithStack('active');
    world.containers[0]!.lingerMs = 3000;
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    const stopAt = world.timeOf(`stop ${unit}`)!;
    const runAt = world.timeOf('duplicati run app')!;
    expect(world.duplicati.prepareCalls.map((call) => call.at)).toEqual([expect.any(Number)]);
    expect(world.duplicati.prepareCalls[0]!.at).toBeGreaterThanOrEqual(stopAt);
    // The containers took 3 s to exit: the run was asked once they had (within a re-list).
    expect(runAt - stopAt).toBeGreaterThanOrEqual(3000);
    expect(runAt - stopAt).toBeLessThan(3000 + 1000);
    // Readied before the stop: what will run the job (exec: its podman exec) was opened then.
    expect(world.duplicati.readyCalls[0]).toBe('app');
  });

  it('the stop waits until what will run the first job is ready (exec: its podman exec is up), so its start costs no downtime', async () => {
    const world = worldWithStack('active');
    let readyAt: number | undefined;
    world.duplicati.ready = async (job: string) => {
      world.duplicati.readyCalls.push(job);
      await world.clock.sleep(2000);
      readyAt = world.clock.now();
    };
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(readyAt).toBeDefined();
    expect(world.timeOf(`stop ${unit}`)!).toBeGreaterThanOrEqual(readyAt!);
  });

  it('a task that Duplicati\'s schedule started as the stack stopped: waited for (queue time), then a fresh run of ours on the stopped stack', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 4000;
    world.onAction = (action) => {
      if (action === `stop ${unit}`) world.duplicati.schedule('1');
    };
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(log.messages()).toContain('Duplicati is busy or paused while the stack stops');
    expect(result.queueMs).toBeGreaterThan(0);
    const tasks = world.duplicati.completed('1');
    expect(tasks).toHaveLength(2);
    // Ours is the second one, queued once the first had ended, and it never saw the live stack.
    expect(tasks[1]!.queuedAt).toBeGreaterThanOrEqual(tasks[0]!.endedAt!);
    expect(tasks[1]!.sawLiveStack).toBe(false);
  });

  it('a stop that fails ends the looks: no status call after the run ended', async () => {
    const world = worldWithStack('active');
    world.failing.add(`stop ${unit}`);
    const { result } = await runStack(world);
    expect(result.ok).toBe(false);
    const calls = world.duplicati.statusCalls;
    await world.clock.sleep(10_000);
    expect(world.duplicati.statusCalls).toBe(calls);
  });

  it('an unknown job is refused before the stop (issue 30): the stack is never stopped', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world, stackConfig({ jobs: ['nope'] }));
    expect(result.ok).toBe(false);
    expect(result.error).toBe('preflight: Duplicati has no backup job with the name or ID "nope" (stacks/app: duplicati_jobs; Duplicati has: app); nothing was touched');
    expect(world.state(unit)).toBe('active');
    expect(world.actions).not.toContain(`stop ${unit}`);
    expect(world.actions).not.toContain('duplicati run nope');
  });
});

describe('the containers\' exit', () => {
  it('a container\'s died event ends the wait at once, while Podman\'s list still says it runs (its cleanup comes later)', async () => {
    const world = worldWithStack('active');
    world.containers[0]!.lingerMs = 3000;
    world.listLagMs = 700;
    const run = stackRun(world);
    await stopUnit(run);
    await waitForContainers(run);
    expect(run.timings.containersGoneAt! - run.timings.unitStoppedAt!).toBe(3000);
  });

  it('without events (they cannot be followed), the list decides: once it no longer says the container runs', async () => {
    const world = worldWithStack('active');
    world.containers[0]!.lingerMs = 3000;
    world.listLagMs = 700;
    world.failing.add('watch');
    const run = stackRun(world);
    await stopUnit(run);
    await waitForContainers(run);
    expect(run.timings.containersGoneAt! - run.timings.unitStoppedAt!).toBeGreaterThanOrEqual(3700);
  });

  it('parseContainerEvents: Podman\'s compatible stream, one object per line; a cut line is left out', () => {
    const die = { status: 'die', id: 'abc', Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: {} } };
    const start = { status: 'start', id: 'def', Type: 'container', Action: 'start', Actor: { ID: 'def' } };
    expect(parseContainerEvents(`${JSON.stringify(die)}\n${JSON.stringify(start)}\n{"status":"di`)).toEqual([
      { id: 'abc', action: 'die' },
      { id: 'def', action: 'start' },
    ]);
  });
});

describe('the verdict, read once the stack runs again', () => {
  it('an Error read after the start fails the stack: FAILED, the unit running, the verify hooks not run', async () => {
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Error';
    world.duplicati.resultMessage = 'two files could not be read';
    const stack = stackConfig({ hooks: hooks({ verify: ['check'] }) });
    const { result, log } = await runStack(world, stack);
    expect(result.ok).toBe(false);
    expect(result.outcome).toBe('failed');
    expect(result.error).toBe('Duplicati reports Error for job app: two files could not be read');
    expect(world.duplicati.resultCalls[0]!).toBeGreaterThanOrEqual(world.timeOf(`start ${unit}`)!);
    expect(world.state(unit)).toBe('active');
    expect(world.actions).not.toContain('hook verify: check');
    expect(log.lines.find((line) => line.message.startsWith('backup job app: failed'))).toBeDefined();
  });

  it('two jobs: the first judged while the stack is down (a failure stops the run there), the last after the start', async () => {
    const world = addStack(worldWithStack('active'), 'db', 'active');
    const { result } = await runStack(world, stackConfig({ jobs: ['app', 'db'] }));
    expect(result.ok).toBe(true);
    const startAt = world.timeOf(`start ${unit}`)!;
    expect(world.duplicati.resultCalls).toHaveLength(2);
    expect(world.duplicati.resultCalls[0]!).toBeLessThanOrEqual(world.timeOf('duplicati run db')!);
    expect(world.duplicati.resultCalls[1]!).toBeGreaterThanOrEqual(startAt);
    // The second job's run was readied while the first ran.
    expect(world.duplicati.readyCalls).toEqual(['app', 'db']);
  });

  it('snapshot mode (the stack already runs): judged at once, looked at with the poll_interval back-off', async () => {
    const world = worldWithStack('active');
    world.snapshots.source('/srv/app');
    world.duplicati.durationMs = 60_000;
    const stack = stackConfig({ snapshot: { driver: 'btrfs', paths: [{ source: '/srv/app', target: '/srv/snapshots/app' }] } });
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(true);
    expect(world.duplicati.resultCalls[0]!).toBeLessThanOrEqual(world.timeOf('remove snapshot /srv/snapshots/app')!);
    const polls = world.timeline.filter((entry) => entry.action === 'duplicati status').map((entry) => entry.at);
    expect(polls.length).toBeLessThan(60);
  });
});

describe('the end of a job while the stack is down', () => {
  it('is seen within one look, however long the job ran', async () => {
    for (const durationMs of [2000, 60_000, 45 * 60_000]) {
      const world = worldWithStack('active');
      world.duplicati.durationMs = durationMs;
      const run = await runStack(world);
      expect(run.result.ok).toBe(true);
      const ended = world.duplicati.completed('1')[0]!.endedAt!;
      // The end is seen at the first look after it, and the start asked at once.
      expect(world.timeOf(`start ${unit}`)! - ended).toBeLessThanOrEqual(continuousPollGapMs);
    }
  });
});

describe('the timeline', () => {
  it('one log line names each instant of the downtime path, in order, and the gaps that are stack-backup\'s', async () => {
    const world = worldWithStack('active');
    world.duplicati.useTaskApi();
    world.containers[0]!.lingerMs = 1500;
    const { result, log } = await runStack(world);
    expect(result.ok).toBe(true);
    const line = log.lines.find((entry) => entry.message.startsWith('timeline: '))!;
    expect(line.message).toMatch(
      /^timeline: stop requested \+0 ms, unit inactive \+\d+ ms, last container exited \+\d+ ms, Duplicati idle confirmed \+\d+ ms, run requested \+\d+ ms, job queued \+\d+ ms, .*end seen \+\d+ ms, start requested \+\d+ ms, unit active \+\d+ ms$/,
    );
    const gaps = line.fields.timeline_gaps_ms as Record<string, number>;
    expect(gaps['stack down to job queued']).toBeGreaterThanOrEqual(0);
    expect(gaps['end seen to start requested']).toBeGreaterThanOrEqual(0);
    const instants = Object.values(line.fields.timeline as Record<string, string>).map((text) => Date.parse(text));
    expect(instants[0]).toBe(world.timeOf(`stop ${unit}`));
  });

  it('timelineOf: only for a stack stopped and started again; whole-second records are said to be so, and give no gap', () => {
    expect(timelineOf({ unitStopIssuedAt: 1000 })).toBeUndefined();
    const timeline = timelineOf({
      unitStopIssuedAt: 1000,
      unitStoppedAt: 1500,
      containersGoneAt: 1600,
      duplicatiIdleAt: 1400,
      runRequestedAt: 1610,
      jobQueuedAt: 1650,
      jobStartedAt: 1000,
      jobEndedAt: 4000,
      jobRecordedInSeconds: true,
      jobEndSeenAt: 4100,
      unitStartIssuedAt: 4110,
      unitStartedAt: 6000,
    })!;
    expect(timeline.text).toContain('Duplicati idle confirmed +400 ms');
    expect(timeline.text).toContain('job ended (as Duplicati records it) +3000 ms (whole seconds)');
    expect(timeline.gaps).toEqual({ 'stack down to job queued': 50, 'end seen to start requested': 10 });
  });
});

describe('configuration the looks honour', () => {
  it('wait_timeout bounds a job followed one look after the other', async () => {
    const world = worldWithStack('active');
    world.duplicati.durationMs = 3_600_000;
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, waitTimeoutMs: 120_000 } });
    const { result } = await runStack(world, stackConfig(), { global });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/wait_timeout/);
    expect(world.state(unit)).toBe('active');
  });
});
