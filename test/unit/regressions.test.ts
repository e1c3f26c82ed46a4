/**
 * Tests that show bugs found in src/ while writing the unit tests. Each one states what a user
 * would see and fails against the current code; see the report for file, line and cause.
 */
import { mkdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseJobList } from '../../src/adapters/duplicati.js';
import { runDoctor, type CheckResult } from '../../src/host/doctor.js';
import { unitNames } from '../../src/host/install.js';
import { loadGlobalConfig, selectStacks } from '../../src/config/load.js';
import { historyFile } from '../../src/report/history.js';
import { createJournal, journalFile } from '../../src/journal/journal.js';
import { recoverPending } from '../../src/recover.js';
import { formatSeconds } from '../../src/format.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { FakeWorld, addStack, globalConfig, hooks, runStack, stackConfig, removeTempRoots, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';

describe('regressions', () => {
  it('backup.ts: a job that ran and ended while "run" hung past run_timeout is not waited for until wait_timeout', async () => {
    // run_timeout 25 s; the job takes the default 5 s, so it has run and ended before "run"
    // is ended. It is never seen queued or active, and the stack stays down for wait_timeout
    // (6 h) and then fails, although the backup was taken of the stopped stack.
    const world = worldWithStack('active');
    world.duplicati.runHangs = true;
    const { result } = await runStack(world);
    const [task] = world.duplicati.completed('1');
    expect(task?.sawLiveStack).toBe(false);
    expect(result.downtimeMs).toBeLessThan(10 * 60_000);
    expect(result.ok).toBe(true);
  });

  it('backup.ts: one failed status call before the stop is tolerated like those during the wait', async () => {
    // The first status call of waitForDuplicatiIdle is outside pollStatus, so a single
    // failure (a podman exec hiccup) fails the stack, while 1-2 failures are tolerated elsewhere.
    const world = worldWithStack('active');
    world.duplicati.failStatus = 1;
    const { result } = await runStack(world);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(world.duplicati.completed('1')).toHaveLength(1);
  });

  it('backup.ts: Duplicati starting our job on its own schedule between the idle check and the stop does not count as our backup', async () => {
    // Duplicati's scheduler fires while the pre_stop hook runs (the stack is still up). `run`
    // is de-duplicated and returns that task, which backs up a live stack; it is reported as
    // a good backup. A check for an idle server right before `run`, after the stop, would
    // make the backup a fresh task of the stopped stack.
    const world = worldWithStack('active');
    world.duplicati.durationMs = 60_000;
    world.onHook = (hook) => {
      if (hook.environment.STACK_PHASE === 'pre_stop') world.duplicati.schedule('1');
    };
    const { result } = await runStack(world, stackConfig({ hooks: hooks({ pre_stop: ['maintenance on'] }) }));
    const startedAgain = world.timeOf(`start ${unit}`)!;
    const cleanBeforeRestart = world.duplicati
      .completed('1')
      .filter((task) => !task.sawLiveStack && task.endedAt! <= startedAgain);
    // The scheduled task read the live stack; the run waits it out after the stop and then
    // runs a fresh task of the stopped stack, which is the one it reports.
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(world.duplicati.completed('1').filter((task) => task.sawLiveStack)).toHaveLength(1);
    expect(cleanBeforeRestart).toHaveLength(1);
  });

  it('format.ts: formatSeconds never shows 60 seconds in a minute', () => {
    // Minutes are floored but seconds rounded: 119.6 s gives "1m60s", 3599.6 s "59m60s".
    expect(formatSeconds(119_600)).toBe('2m00s');
    expect(formatSeconds(3_599_600)).not.toMatch(/m60s$/);
  });

  it('load.ts: a custom unit: with "@" (a template instance) is found by its unit name', () => {
    // The schema accepts `unit: app@main.service`, but the argument is checked as a plain stack
    // name before the units are searched, so `stack-backup app@main.service` is a UsageError.
    const root = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\nunit: app@main.service\n' });
    const stacks = selectStacks(root, loadGlobalConfig(root, {}), ['app@main.service']);
    expect(stacks.map((stack) => stack.name)).toEqual(['app']);
  });
});

describe('regressions: the wait after the stop', () => {
  it('orchestrator.ts waitForStackDown: Duplicati failing while containers still exit leaves no unhandled rejection, and the stack is restored', async () => {
    // waitForStackDown starts the idle wait and awaits the container wait before attaching any
    // handler to it. When status fails 3 times (Duplicati restarting) while the Podman API is
    // still being asked, the idle promise rejects unhandled: Node 20 ends the process on that,
    // with the stack stopped and no undo run.
    const world = worldWithStack('active');
    world.containersLatencyMs = 2;
    world.containers[0]!.lingerMs = 3000;
    world.onHook = () => {
      world.duplicati.failStatus = 3;
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { result } = await runStack(world, stackConfig({ hooks: hooks({ pre_stop: ['maintenance on'] }) }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(result.ok).toBe(false);
      expect(world.state(unit)).toBe('active');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});

describe('regressions: a crash journal that can no longer be written', () => {
  // The disk holding <root>/logs fills up during the backup (Duplicati's temporary files often
  // live on the same disk): from then on the journal cannot be rewritten. Stand-in for ENOSPC:
  // a folder where writeJsonFileDurably puts its temporary file, so every later write fails.
  const breakJournal = (root: string) => mkdirSync(`${journalFile(root)}.${process.pid}.tmp`, { recursive: true });

  it('undo.ts unwind: failing to cross out a done undo does not stop the undos below it', async () => {
    // UndoStack.unwind calls journal.remove after each undo that worked, outside any try: when it
    // throws, unwind throws. The undos below are never run (the on-demand socket stays stopped,
    // maintenance mode stays on) and backupStack throws instead of returning a result, so
    // runBackups ends without running the next stacks or printing the summary. The undo itself
    // was done; the entry staying in the journal would only make the next run repeat it.
    const root = tempRoot();
    const world = worldWithStack('active').unit('app-proxy.socket', 'active');
    world.duplicati.onRun = () => breakJournal(root);
    const stack = stackConfig({ hooks: hooks({ pre_stop: ['maintenance on'], post_start: ['maintenance off'] }), freeze: { socket: 'app-proxy.socket', service: undefined } });
    const outcome = await runStack(world, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') }).catch((error: unknown) => error);
    expect(world.actions.filter((action) => action.startsWith('start ') || action.startsWith('hook post_start'))).toEqual([
      `start ${unit}`,
      'start app-proxy.socket',
      'hook post_start: maintenance off',
    ]);
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(outcome).not.toBeInstanceOf(Error);
  });

  it('recover.ts recoverPending: failing to cross out a recovered entry does not stop the recovery of the others', async () => {
    // Same in recoverPending: journal.remove runs inside the try whose finally only closes the
    // log, so its error ends the loop and recoverPending throws; the entries below (here the
    // socket of the stack) are not put back, and `stack-backup recover` fails with exit 1.
    const root = tempRoot();
    const dead = createJournal(root, 'dead-run');
    dead.add('app', { kind: 'unfreeze', socket: 'app-proxy.socket', service: undefined });
    dead.add('app', { kind: 'restore-unit', unit, stateBefore: 'active', start: true, startTimeoutMs: 120_000, preStart: { phase: 'pre_start', commands: [], environment: {}, cwd: root, timeoutMs: 1000 } });
    breakJournal(root);
    const world = worldWithStack('inactive').unit('app-proxy.socket', 'inactive');
    const outcome = await recoverPending(root, createJournal(root, 'recovery'), 'recovery', {
      systemd: world.systemd,
      runHook: world.runHook,
      clock: world.clock,
      progress: createProgress({ write: () => {} }, world.clock),
    }).catch((error: unknown) => error);
    expect(world.actions).toEqual([`start ${unit}`, 'start app-proxy.socket']);
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(outcome).not.toBeInstanceOf(Error);
  });
});

describe('regressions: the run history cannot be written', () => {
  it('run.ts runBackups: a history.json that cannot be written does not stop the next stacks or the summary', async () => {
    // appendHistory runs inside the stack loop with nothing around it but the log's finally: when
    // it throws (disk full, a damaged history.json), runBackups throws right after the first
    // stack. The next stacks are not backed up and no summary is printed, although the history
    // is only for `status` and monitoring; run.ts promises "a failed stack does not stop the next".
    const root = tempRoot();
    mkdirSync(`${historyFile(root)}.${process.pid}.tmp`, { recursive: true });
    const world = addStack(addStack(new FakeWorld(), 'alpha'), 'beta');
    const output: string[] = [];
    const outcome = await runBackups({
      global: globalConfig({ root }),
      stacks: [stackConfig({ name: 'alpha' }), stackConfig({ name: 'beta' })],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: (text) => output.push(text) },
      signal: new AbortController().signal,
    }).catch((error: unknown) => error);
    expect(world.actions).toContain('stop beta-stack.service');
    expect(world.state('beta-stack.service')).toBe('active');
    expect(outcome).not.toBeInstanceOf(Error);
    expect(output.join('')).toMatch(/^beta\s+backed up/m);
  });
});

describe('regressions: doctor and the job list', () => {
  /** A sound root and world for the doctor; `world` is changed by each test before the run. */
  async function doctorChecks(world: FakeWorld): Promise<CheckResult[]> {
    const root = tempRoot({ 'stack-backup.yaml': '', 'stacks/app.yaml': 'duplicati_jobs: [app]\n' });
    world.unit(unitNames(root).timer, 'active', 'loaded', 'enabled');
    return runDoctor(root, [], {
      environment: { XDG_RUNTIME_DIR: '/run/user/1000' },
      systemd: world.systemd,
      createEngine: () => world.engine,
      createDuplicati: () => world.duplicati,
      checkFolder: async () => {},
    });
  }

  /** Names of checks reported both OK and FAIL. */
  const contradictions = (checks: readonly CheckResult[]) =>
    checks.filter((check) => !check.ok && checks.some((other) => other.ok && other.what === check.what)).map((check) => check.what);

  it('doctor.ts: the Duplicati container cannot be looked up: not "OK" and then "FAIL" for the Podman API, with advice to start podman.socket', async () => {
    // After the ping succeeded and its OK line was added, containerState throws (the API
    // answers 500 for the container, say); the same catch then adds a FAIL for the Podman API
    // check too, advising "systemctl --user enable --now podman.socket", which the OK line
    // just showed is running. The failure belongs to the Duplicati container check.
    const world = worldWithStack('active');
    world.failing.add('containerState');
    const checks = await doctorChecks(world);
    expect(contradictions(checks)).toEqual([]);
    const failed = checks.filter((check) => !check.ok);
    expect(failed.map((check) => check.what)).toEqual(['the Duplicati container "duplicati" runs']);
  });

  it('doctor.ts: listing the jobs fails after the status answered: not "OK" and then "FAIL" for "Duplicati answers"', async () => {
    const world = worldWithStack('active');
    world.duplicati.listJobs = async () => {
      throw new Error('list-backups: exit 1: database is locked');
    };
    const checks = await doctorChecks(world);
    expect(contradictions(checks)).toEqual([]);
    expect(checks.filter((check) => !check.ok).map((check) => check.problem).join()).toContain('database is locked');
  });

  it('duplicati.ts parseJobList: a job\'s description line is not taken for a job', () => {
    // list-backups prints "ID: NAME", then the description indented by two spaces, then an empty
    // line (Duplicati/CommandLine/ServerUtil/Commands/ListBackups.cs). Lines are trimmed before
    // the "ID: NAME" match, so a description such as "2: offsite copy of job 1" becomes a job
    // with ID 2, and doctor reports a job "2" that `run 2` would not find.
    const output = ['Connecting to http://localhost:8200/...', '1: app', '  2: offsite copy of job 1', '', '3: db', ''].join('\n');
    expect(parseJobList(output)).toEqual([
      { id: '1', name: 'app' },
      { id: '3', name: 'db' },
    ]);
  });
});
