/**
 * Crash recovery: src/recover.ts replaying a journal a dead run left, src/backup/run.ts recovering
 * before it takes any stack and leaving the journal empty and the history written, and the
 * orchestrator writing each undo to the journal before its change. Real files in a temp root,
 * fakes for the outside world.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitCodeForReport, exitCodes } from '../../src/exit-codes.js';
import { historyFile, readHistory } from '../../src/report/history.js';
import { createJournal, journalFile, type HookCommands, type UndoRecord } from '../../src/journal/journal.js';
import { localDate } from '../../src/report/logging.js';
import { recoverPending, recoveryPlan } from '../../src/recover.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups, type RunReport } from '../../src/backup/run.js';
import { undoName } from '../../src/journal/undo-records.js';
import { FakeWorld, addStack, globalConfig, hooks, removeTempRoots, runStack, stackConfig, tempRoot, twoStackRun, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const deadRun = 'dead-run-0000';

function hookCommands(stack: string, phase: HookCommands['phase'], commands: string[], root = '/srv/stack-backup'): HookCommands {
  return {
    phase,
    commands,
    environment: { STACK_NAME: stack, STACK_UNIT: `${stack}-stack.service`, STACK_PHASE: phase, STACK_BACKUP_ROOT: root },
    cwd: root,
    timeoutMs: 300_000,
  };
}

function restoreUnit(stack: string, start = true, preStart: string[] = []): UndoRecord {
  return {
    kind: 'restore-unit',
    unit: `${stack}-stack.service`,
    stateBefore: start ? 'active' : 'inactive',
    start,
    startTimeoutMs: 120_000,
    preStart: hookCommands(stack, 'pre_start', preStart),
  };
}

/** Writes the journal a run that died would leave: entries in the order its steps pushed them. */
function leaveJournal(root: string, entries: Array<[string, UndoRecord]>): string[] {
  const journal = createJournal(root, deadRun);
  return entries.map(([stack, undo]) => journal.add(stack, undo));
}

const pendingNames = (root: string) => createJournal(root, 'reader').pending().map((entry) => `${entry.stack}: ${undoName(entry.undo)}`);

function recover(root: string, world: FakeWorld, messages: string[] = []) {
  return recoverPending(root, createJournal(root, 'recovery-run'), 'recovery-run', {
    systemd: world.systemd,
    runHook: world.runHook,
    clock: world.clock,
    progress: createProgress({ write: (text) => messages.push(text) }, world.clock),
  });
}

function logLines(root: string, stack: string, world: FakeWorld): Array<Record<string, unknown>> {
  const file = path.join(root, 'logs', `backup-${stack}-${localDate(world.clock.now())}.log`);
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** What a stack run that was killed during its backup left: post_start hooks, unfreeze, restore unit. */
function frozenStackJournal(): Array<[string, UndoRecord]> {
  return [
    ['app', { kind: 'hooks', hooks: hookCommands('app', 'post_start', ['maintenance off']) }],
    ['app', { kind: 'unfreeze', socket: 'app-proxy.socket', service: 'app-proxy.service' }],
    ['app', restoreUnit('app', true, ['fix permissions'])],
  ];
}

/** The world as that run left it: the unit, the socket and its service all stopped. */
function frozenStackWorld(): FakeWorld {
  return worldWithStack('inactive').unit('app-proxy.socket', 'inactive').unit('app-proxy.service', 'inactive');
}

describe('recoverPending', () => {
  it('replays the entries last first, puts the stack back and empties the journal', async () => {
    const root = tempRoot();
    leaveJournal(root, frozenStackJournal());
    const world = frozenStackWorld();
    const report = await recover(root, world);
    expect(world.actions).toEqual([
      'hook pre_start: fix permissions',
      'start app-stack.service',
      'start app-proxy.socket',
      'start app-proxy.service',
      'hook post_start: maintenance off',
    ]);
    expect(world.state('app-stack.service')).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.state('app-proxy.service')).toBe('active');
    expect(report).toEqual({ restored: ['app: restore unit', 'app: unfreeze on-demand socket', 'app: post_start hooks'], failed: [] });
    expect(pendingNames(root)).toEqual([]);
  });

  it('runs the hooks with the environment and folder written in the journal', async () => {
    const root = tempRoot();
    leaveJournal(root, [['app', { kind: 'hooks', hooks: hookCommands('app', 'post_start', ['maintenance off'], '/srv/old-root') }]]);
    const world = new FakeWorld();
    await recover(root, world);
    expect(world.hookRuns).toHaveLength(1);
    expect(world.hookRuns[0]).toMatchObject({ command: 'maintenance off', cwd: '/srv/old-root', environment: { STACK_NAME: 'app', STACK_PHASE: 'post_start', STACK_BACKUP_ROOT: '/srv/old-root' } });
  });

  it('a unit that was stopped before the dead run is left stopped, and the entry is done', async () => {
    const root = tempRoot();
    leaveJournal(root, [['app', restoreUnit('app', false)]]);
    const world = worldWithStack('inactive');
    const report = await recover(root, world);
    expect(world.actions).toEqual([]);
    expect(world.state('app-stack.service')).toBe('inactive');
    expect(report.restored).toEqual(['app: restore unit']);
    expect(pendingNames(root)).toEqual([]);
  });

  it('an undo that fails stays pending and is reported; the ones below it still run', async () => {
    const root = tempRoot();
    const ids = leaveJournal(root, frozenStackJournal());
    const world = frozenStackWorld();
    world.failing.add('start app-stack.service');
    const messages: string[] = [];
    const report = await recover(root, world, messages);
    expect(report.failed).toEqual(['app: restore unit: start app-stack.service: failed (injected)']);
    expect(report.restored).toEqual(['app: unfreeze on-demand socket', 'app: post_start hooks']);
    expect(world.state('app-stack.service')).toBe('inactive');
    expect(world.state('app-proxy.socket')).toBe('active');
    const left = createJournal(root, 'reader').pending();
    expect(left.map((entry) => entry.id)).toEqual([ids[2]]);
    expect(left[0]!.undo).toEqual(restoreUnit('app', true, ['fix permissions']));
    expect(messages.join('')).toContain('[app] error: recovery of "restore unit" failed: start app-stack.service: failed (injected)');
    // A second recovery, once the unit can start, finishes the job.
    world.failing.clear();
    const again = await recover(root, world);
    expect(again).toEqual({ restored: ['app: restore unit'], failed: [] });
    expect(world.state('app-stack.service')).toBe('active');
    expect(pendingNames(root)).toEqual([]);
  });

  it('entries of several stacks are replayed in reverse order across stacks', async () => {
    const root = tempRoot();
    leaveJournal(root, [
      ['alpha', restoreUnit('alpha')],
      ['beta', { kind: 'unfreeze', socket: 'beta-proxy.socket', service: undefined }],
      ['beta', restoreUnit('beta')],
    ]);
    const world = addStack(addStack(new FakeWorld(), 'alpha', 'inactive'), 'beta', 'inactive').unit('beta-proxy.socket', 'inactive');
    await recover(root, world);
    expect(world.actions).toEqual(['start beta-stack.service', 'start beta-proxy.socket', 'start alpha-stack.service']);
  });

  it('writes what it did to the stack\'s log file in <root>/logs, naming the dead run', async () => {
    const root = tempRoot();
    leaveJournal(root, [['app', restoreUnit('app')]]);
    const world = worldWithStack('inactive');
    await recover(root, world);
    const lines = logLines(root, 'app', world);
    expect(lines.every((line) => line.stack === 'app' && line.run === 'recovery-run')).toBe(true);
    const warning = lines.find((line) => line.recovery === true && line.level === 40);
    expect(warning?.msg).toBe(`recovering after run ${deadRun} (pid ${process.pid}) ended before restoring the stack: restore unit`);
    expect(warning?.undo).toEqual(restoreUnit('app'));
    expect(lines.some((line) => line.step === 'start unit' && line.outcome === 'done')).toBe(true);
    expect(lines.some((line) => line.msg === 'recovered: restore unit' && line.recovery === true)).toBe(true);
  });

  it('with nothing pending it does nothing', async () => {
    const root = tempRoot();
    const world = worldWithStack('inactive');
    expect(await recover(root, world)).toEqual({ restored: [], failed: [] });
    expect(world.actions).toEqual([]);
  });
});

/** Stacks alpha and beta in a fresh root, both units active; alpha has a pre_stop hook. */
const setup = () => twoStackRun({ alphaHooks: { pre_stop: ['alpha maintenance on'], post_start: ['alpha maintenance off'] } });

/** The exit code the CLI gives a finished run. */
const exitCodeOf = (report: RunReport) => exitCodeForReport(report, new AbortController().signal);

describe('recoveryPlan (recover --dry-run)', () => {
  it('lists what recover would do, last change first, with the exact commands, and changes nothing', async () => {
    const root = tempRoot();
    leaveJournal(root, frozenStackJournal());
    const world = frozenStackWorld();
    const plan = recoveryPlan(createJournal(root, 'reader').pending(), false).join('\n');
    expect(world.actions).toEqual([]);
    expect(pendingNames(root)).toHaveLength(3);
    const order = [
      '1. app: restore unit (left by run dead-run-0000',
      'pre_start hook: /bin/sh -c \'fix permissions\'',
      'systemctl --user start -- app-stack.service (start_timeout 2m00s)',
      '2. app: unfreeze on-demand socket',
      'systemctl --user start -- app-proxy.socket',
      'systemctl --user start -- app-proxy.service',
      '3. app: post_start hooks',
      'post_start hook: /bin/sh -c \'maintenance off\'',
      'Dry run: nothing was touched (3 pending undos).',
    ];
    const positions = order.map((text) => plan.indexOf(text));
    expect(positions.every((position) => position >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // And recover itself does what the plan said, in that order.
    await recover(root, world);
    expect(world.actions).toEqual(['hook pre_start: fix permissions', 'start app-stack.service', 'start app-proxy.socket', 'start app-proxy.service', 'hook post_start: maintenance off']);
  });

  it('a unit that was stopped before is named as left stopped; a live run is named', () => {
    const root = tempRoot();
    leaveJournal(root, [['app', restoreUnit('app', false)]]);
    const plan = recoveryPlan(createJournal(root, 'reader').pending(), true).join('\n');
    expect(plan).toContain('leave app-stack.service stopped (restore_policy previous, and it was inactive)');
    expect(plan).toContain('a run is in progress and holds the lock');
  });

  it('nothing pending', () => {
    expect(recoveryPlan([], false)).toEqual(['nothing to recover: no run left a stack stopped or frozen']);
  });
});

describe('runBackups and the crash journal', () => {
  it('first recovers what a dead run left, before any stack is taken, and the journal is empty afterwards', async () => {
    const { root, world, output, progress, run } = setup();
    // The dead run froze alpha's socket and stopped alpha, then was killed.
    world.unit('alpha-proxy.socket', 'inactive');
    world.units.get('alpha-stack.service')!.active = 'inactive';
    leaveJournal(root, [
      ['alpha', { kind: 'unfreeze', socket: 'alpha-proxy.socket', service: undefined }],
      ['alpha', restoreUnit('alpha')],
    ]);
    const report = await run();
    // Recovery, last entry first, before the first stack's first call (a status poll or its hook).
    expect(world.actions.slice(0, 3)).toEqual(['start alpha-stack.service', 'start alpha-proxy.socket', 'duplicati status']);
    expect(report.recovery).toEqual({ restored: ['alpha: restore unit', 'alpha: unfreeze on-demand socket'], failed: [] });
    expect(output.join('')).toContain('recovered: alpha: restore unit\nrecovered: alpha: unfreeze on-demand socket\n');
    expect(progress.join('')).toContain('warning: a previous run ended before restoring its stack; recovering first');
    expect(report.results.map((result) => [result.stack, result.ok])).toEqual([
      ['alpha', true],
      ['beta', true],
    ]);
    expect(world.state('alpha-stack.service')).toBe('active');
    expect(world.state('alpha-proxy.socket')).toBe('active');
    expect(createJournal(root, 'reader').pending()).toEqual([]);
    expect(exitCodeOf(report)).toBe(exitCodes.success);
  });

  it('a recovery that fails stays pending in the journal and is reported; the stacks are still backed up', async () => {
    const { root, world, output, run } = setup();
    world.unit('gone-stack.service', 'inactive');
    world.failing.add('start gone-stack.service');
    const [id] = leaveJournal(root, [['gone', restoreUnit('gone')]]);
    const report = await run();
    expect(report.recovery).toEqual({ restored: [], failed: ['gone: restore unit: start gone-stack.service: failed (injected)'] });
    expect(output.join('')).toContain('NOT RECOVERED: gone: restore unit: start gone-stack.service: failed (injected)\n');
    expect(report.results.map((result) => result.ok)).toEqual([true, true]);
    const left = createJournal(root, 'reader').pending();
    expect(left.map((entry) => [entry.id, entry.stack, entry.run])).toEqual([[id, 'gone', deadRun]]);
    expect(exitCodeOf(report)).toBe(exitCodes.stackFailed);
  });

  it('after a normal run the journal is empty and history.json has one entry per stack', async () => {
    const { root, world, run } = setup();
    const report = await run();
    expect(report.recovery).toEqual({ restored: [], failed: [] });
    expect(existsSync(journalFile(root))).toBe(true);
    expect(createJournal(root, 'reader').pending()).toEqual([]);
    expect(existsSync(historyFile(root))).toBe(true);
    const history = readHistory(root);
    expect(history.map((entry) => [entry.stack, entry.result, entry.notRestored])).toEqual([
      ['alpha', 'success', false],
      ['beta', 'success', false],
    ]);
    for (const entry of history) {
      const result = report.results.find((candidate) => candidate.stack === entry.stack)!;
      expect(entry.downtimeMs).toBe(result.downtimeMs);
      expect(entry.backupMs).toBe(result.backupMs);
      expect(entry.downtimeMs).toBeGreaterThanOrEqual(5000);
      expect(entry.backupMs).toBeGreaterThanOrEqual(5000);
      expect(entry.error).toBeUndefined();
      // ISO times keep whole milliseconds.
      expect(Date.parse(entry.endedAt) - Date.parse(entry.startedAt)).toBeGreaterThanOrEqual(entry.downtimeMs! - 1);
    }
    expect(history[0]!.run).toBe(history[1]!.run);
    expect(world.state('alpha-stack.service')).toBe('active');
    // A second run adds to it.
    await run();
    expect(readHistory(root).map((entry) => entry.stack)).toEqual(['alpha', 'beta', 'alpha', 'beta']);
  });

  it('a stack whose run fails leaves no journal entry behind: its undos ran', async () => {
    const { root, world, run } = setup();
    world.duplicati.onRun = (job) => {
      if (job === 'alpha') throw new Error('duplicati-server-util crashed');
    };
    const report = await run();
    expect(report.results.map((result) => [result.stack, result.ok, result.notRestored])).toEqual([
      ['alpha', false, false],
      ['beta', true, false],
    ]);
    expect(world.actions).toContain('stop alpha-stack.service');
    expect(world.actions).toContain('hook post_start: alpha maintenance off');
    expect(world.state('alpha-stack.service')).toBe('active');
    expect(createJournal(root, 'reader').pending()).toEqual([]);
    const alpha = readHistory(root).find((entry) => entry.stack === 'alpha')!;
    expect(alpha).toMatchObject({ result: 'failed', notRestored: false });
    expect(alpha.error).toContain('duplicati-server-util crashed');
  });

  it('an undo that failed stays in the journal, and the next run puts it back before anything else', async () => {
    const { root, world, output, run } = setup();
    world.failing.add('start beta-stack.service');
    const first = await run();
    expect(first.results.map((result) => [result.stack, result.ok, result.notRestored])).toEqual([
      ['alpha', true, false],
      ['beta', false, true],
    ]);
    expect(world.state('beta-stack.service')).toBe('inactive');
    const left = createJournal(root, 'reader').pending();
    expect(left.map((entry) => [entry.stack, entry.undo.kind])).toEqual([['beta', 'restore-unit']]);
    expect(left[0]!.undo).toMatchObject({ unit: 'beta-stack.service', start: true, stateBefore: 'active' });
    expect(readHistory(root).find((entry) => entry.stack === 'beta')).toMatchObject({ result: 'failed', notRestored: true });

    world.failing.clear();
    world.actions.length = 0;
    output.length = 0;
    const second = await run();
    expect(world.actions[0]).toBe('start beta-stack.service');
    expect(second.recovery).toEqual({ restored: ['beta: restore unit'], failed: [] });
    expect(second.results.map((result) => result.ok)).toEqual([true, true]);
    expect(world.state('beta-stack.service')).toBe('active');
    expect(createJournal(root, 'reader').pending()).toEqual([]);
  });

  it('a failed post_start hook stays pending too', async () => {
    const { root, world, run } = setup();
    world.hookResults.set('alpha maintenance off', { exitCode: 1 });
    const report = await run();
    expect(report.results[0]).toMatchObject({ stack: 'alpha', ok: false, notRestored: false });
    expect(world.state('alpha-stack.service')).toBe('active');
    expect(pendingNames(root)).toEqual(['alpha: post_start hooks']);
  });
});

describe('the orchestrator writes each undo before its change', () => {
  const stack = stackConfig({
    hooks: hooks({ pre_stop: ['maintenance on'], post_start: ['maintenance off'], pre_start: ['fix permissions'] }),
    freeze: { socket: 'app-proxy.socket', service: 'app-proxy.service' },
  });
  const world = () => worldWithStack('active').unit('app-proxy.socket', 'active').unit('app-proxy.service', 'active');
  const names = (root: string) => createJournal(root, 'reader').pending().map((entry) => undoName(entry.undo));

  it('while the backup job runs, the journal lists exactly the undos registered so far; after the run it is empty', async () => {
    const root = tempRoot();
    const fake = world();
    const seenDuringBackup: string[][] = [];
    fake.duplicati.onStatus = () => {
      if (fake.actions.includes('duplicati run app') && !fake.actions.includes('start app-stack.service')) seenDuringBackup.push(names(root));
    };
    const { result } = await runStack(fake, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') });
    expect(result.ok).toBe(true);
    expect(seenDuringBackup.length).toBeGreaterThan(0);
    for (const seen of seenDuringBackup) expect(seen).toEqual(['post_start hooks', 'unfreeze on-demand socket', 'restore unit']);
    const entries = JSON.parse(readFileSync(journalFile(root), 'utf8')) as { entries: unknown[] };
    expect(entries.entries).toEqual([]);
  });

  it('each entry is on disk before the change it reverses, and leaves only once that undo is done', async () => {
    const root = tempRoot();
    const fake = world();
    const seen: Record<string, string[]> = {};
    fake.onAction = (action) => {
      if (action.startsWith('stop ') || action.startsWith('start ') || action.startsWith('hook ')) seen[action] = names(root);
    };
    await runStack(fake, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') });
    expect(seen).toEqual({
      'hook pre_stop: maintenance on': ['post_start hooks'],
      'stop app-proxy.socket': ['post_start hooks', 'unfreeze on-demand socket'],
      'stop app-proxy.service': ['post_start hooks', 'unfreeze on-demand socket'],
      'stop app-stack.service': ['post_start hooks', 'unfreeze on-demand socket', 'restore unit'],
      'hook pre_start: fix permissions': ['post_start hooks', 'unfreeze on-demand socket', 'restore unit'],
      'start app-stack.service': ['post_start hooks', 'unfreeze on-demand socket', 'restore unit'],
      'start app-proxy.socket': ['post_start hooks', 'unfreeze on-demand socket'],
      'start app-proxy.service': ['post_start hooks', 'unfreeze on-demand socket'],
      'hook post_start: maintenance off': ['post_start hooks'],
    });
    expect(names(root)).toEqual([]);
  });

  it('the journal of a run killed during its backup puts the stack back completely', async () => {
    const root = tempRoot();
    const crashed = tempRoot();
    const fake = world();
    fake.duplicati.onStatus = () => {
      if (fake.actions.includes('duplicati run app') && !existsSync(journalFile(crashed))) {
        // SIGKILL now: what is on disk is all the next run has.
        mkdirSync(path.dirname(journalFile(crashed)), { recursive: true });
        copyFileSync(journalFile(root), journalFile(crashed));
      }
    };
    await runStack(fake, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') });
    // The world as the killed run left it: unit, socket and service stopped.
    const after = worldWithStack('inactive').unit('app-proxy.socket', 'inactive').unit('app-proxy.service', 'inactive');
    const report = await recover(crashed, after);
    expect(report.failed).toEqual([]);
    expect(after.actions).toEqual([
      'hook pre_start: fix permissions',
      'start app-stack.service',
      'start app-proxy.socket',
      'start app-proxy.service',
      'hook post_start: maintenance off',
    ]);
    expect(after.state('app-stack.service')).toBe('active');
    expect(after.state('app-proxy.socket')).toBe('active');
    expect(createJournal(crashed, 'reader').pending()).toEqual([]);
  });

  it('a stack whose undo fails leaves exactly that undo in the journal', async () => {
    const root = tempRoot();
    const fake = world();
    fake.failing.add('start app-proxy.socket');
    const { result } = await runStack(fake, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') });
    expect(result).toMatchObject({ ok: false, notRestored: true });
    expect(fake.state('app-stack.service')).toBe('active');
    expect(names(root)).toEqual(['unfreeze on-demand socket']);
  });

  it('a stack that fails in preflight writes nothing to the journal', async () => {
    const root = tempRoot();
    const fake = world();
    fake.containerStates.set('duplicati', 'exited');
    const { result } = await runStack(fake, stack, { global: globalConfig({ root }), journal: createJournal(root, 'run-1') });
    expect(result.ok).toBe(false);
    expect(existsSync(journalFile(root))).toBe(false);
  });
});
