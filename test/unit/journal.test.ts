/**
 * The crash journal (src/journal/journal.ts) and its files (src/adapters/state-files.ts) in a temp root,
 * the undo stack writing to it (src/journal/undo.ts), and the undo records carried out against the fakes
 * (src/steps/undo-actions.ts).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonFile, writeJsonFileDurably } from '../../src/state-files.js';
import { HookFailure } from '../../src/errors.js';
import { createJournal, journalFile, type HookCommands, type UndoRecord } from '../../src/journal/journal.js';
import { preStopHooks } from '../../src/steps/hooks.js';
import { stopUnit } from '../../src/steps/stop-unit.js';
import { performUndo } from '../../src/steps/undo-actions.js';
import { undoName, undoTimeoutMs } from '../../src/journal/undo-records.js';
import { UndoStack } from '../../src/journal/undo.js';
import { FakeWorld, MemoryLog, hooks, removeTempRoots, stackConfig, stackRun, tempRoot, unwind, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';

function hookCommands(phase: HookCommands['phase'], commands: string[], timeoutMs = 300_000): HookCommands {
  return {
    phase,
    commands,
    environment: { STACK_NAME: 'app', STACK_UNIT: unit, STACK_PHASE: phase, STACK_BACKUP_ROOT: '/srv/recorded-root' },
    cwd: '/srv/recorded-root',
    timeoutMs,
  };
}

function restoreUnit(overrides: Partial<Extract<UndoRecord, { kind: 'restore-unit' }>> = {}): UndoRecord {
  return { kind: 'restore-unit', unit, stateBefore: 'active', start: true, startTimeoutMs: 120_000, preStart: hookCommands('pre_start', []), ...overrides };
}

const unfreeze = (socket: string | undefined, service: string | undefined): UndoRecord => ({ kind: 'unfreeze', socket, service });

/** The raw journal file as another process (the next run, `status`) would read it. */
function journalOnDisk(root: string): { version: number; entries: Array<{ id: string; stack: string; run: string; pid: number; recordedAt: string; undo: UndoRecord }> } {
  return JSON.parse(readFileSync(journalFile(root), 'utf8'));
}

describe('createJournal', () => {
  it('a root without a journal has nothing pending, and reading it creates no file', () => {
    const root = tempRoot();
    expect(createJournal(root, 'run-1').pending()).toEqual([]);
    expect(existsSync(path.join(root, 'logs'))).toBe(false);
  });

  it('add writes the entry to <root>/logs/journal.json at once, with stack, run, pid and time', () => {
    const root = tempRoot();
    const journal = createJournal(root, 'run-1');
    const before = Date.now();
    const id = journal.add('app', restoreUnit());
    expect(journalFile(root)).toBe(path.join(root, 'logs', 'journal.json'));
    const file = journalOnDisk(root);
    expect(file.version).toBe(1);
    expect(file.entries).toHaveLength(1);
    const [entry] = file.entries;
    expect(entry).toMatchObject({ id, stack: 'app', run: 'run-1', pid: process.pid, undo: restoreUnit() });
    expect(Date.parse(entry!.recordedAt)).toBeGreaterThanOrEqual(before - 1000);
    // Another journal on the same root (the next run after a crash) sees it.
    expect(createJournal(root, 'run-2').pending()).toEqual(file.entries);
  });

  it('gives each entry its own id; remove crosses out only that one and keeps the order of the rest', () => {
    const root = tempRoot();
    const journal = createJournal(root, 'run-1');
    const first = journal.add('app', { kind: 'hooks', hooks: hookCommands('post_start', ['maintenance off']) });
    const second = journal.add('app', unfreeze('app-proxy.socket', undefined));
    const third = journal.add('app', restoreUnit());
    expect(new Set([first, second, third]).size).toBe(3);
    journal.remove(second);
    expect(createJournal(root, 'other').pending().map((entry) => [entry.id, entry.undo.kind])).toEqual([
      [first, 'hooks'],
      [third, 'restore-unit'],
    ]);
    journal.remove(first);
    journal.remove(third);
    expect(journalOnDisk(root)).toEqual({ version: 1, entries: [] });
  });

  it('removing an id that is not there changes nothing', () => {
    const root = tempRoot();
    const journal = createJournal(root, 'run-1');
    const id = journal.add('app', restoreUnit());
    journal.remove('no-such-id');
    expect(journal.pending().map((entry) => entry.id)).toEqual([id]);
  });

  it('entries of several runs and stacks are kept side by side', () => {
    const root = tempRoot();
    createJournal(root, 'dead-run').add('alpha', restoreUnit({ unit: 'alpha-stack.service' }));
    createJournal(root, 'new-run').add('beta', restoreUnit({ unit: 'beta-stack.service' }));
    expect(createJournal(root, 'x').pending().map((entry) => `${entry.run} ${entry.stack}`)).toEqual(['dead-run alpha', 'new-run beta']);
  });

  it('the journal holds hook commands, so only the user can read or write it; no temporary file is left', () => {
    const root = tempRoot();
    const journal = createJournal(root, 'run-1');
    journal.remove(journal.add('app', { kind: 'hooks', hooks: hookCommands('post_start', ['curl -H "token: secret" ...']) }));
    journal.add('app', restoreUnit());
    expect(statSync(journalFile(root)).mode & 0o077).toBe(0);
    expect(readdirSync(path.join(root, 'logs'))).toEqual(['journal.json']);
  });
});

describe('state files', () => {
  it('readJsonFile gives the fallback for a missing file and the parsed contents otherwise', () => {
    const root = tempRoot({ 'logs/state.json': '{"version":1,"runs":[1,2]}\n' });
    expect(readJsonFile(path.join(root, 'logs', 'missing.json'), { empty: true })).toEqual({ empty: true });
    expect(readJsonFile(path.join(root, 'logs', 'state.json'), {})).toEqual({ version: 1, runs: [1, 2] });
  });

  it('readJsonFile does not hide a file it cannot read behind the fallback', () => {
    const root = tempRoot();
    mkdirSync(path.join(root, 'logs', 'state.json'), { recursive: true });
    expect(() => readJsonFile(path.join(root, 'logs', 'state.json'), {})).toThrow(/EISDIR/);
  });

  it('writeJsonFileDurably creates the folder and writes readable JSON ending in a newline', () => {
    const root = tempRoot();
    const file = path.join(root, 'logs', 'deep', 'state.json');
    writeJsonFileDurably(file, { version: 1, runs: ['a'] });
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({ version: 1, runs: ['a'] });
    writeJsonFileDurably(file, { version: 1, runs: [] });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, runs: [] });
    expect(readdirSync(path.dirname(file))).toEqual(['state.json']);
  });

  it('a write that fails before the rename leaves the old file whole', () => {
    const root = tempRoot();
    const file = path.join(root, 'logs', 'state.json');
    writeJsonFileDurably(file, { version: 1, runs: ['old'] });
    // The temporary file cannot be created: the write fails part way.
    mkdirSync(`${file}.${process.pid}.tmp`);
    expect(() => writeJsonFileDurably(file, { version: 1, runs: ['new'] })).toThrow();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, runs: ['old'] });
  });
});

describe('UndoStack with a journal on disk', () => {
  it('push has written the record to the journal file when it returns', () => {
    const root = tempRoot();
    const undo = new UndoStack(createJournal(root, 'run-1'));
    undo.push('app', unfreeze('app-proxy.socket', 'app-proxy.service'));
    expect(journalOnDisk(root).entries.map((entry) => entry.undo)).toEqual([unfreeze('app-proxy.socket', 'app-proxy.service')]);
    undo.push('app', restoreUnit());
    expect(journalOnDisk(root).entries.map((entry) => entry.undo.kind)).toEqual(['unfreeze', 'restore-unit']);
  });

  it('unwind crosses out the undos that worked and leaves the failed one pending for recovery', async () => {
    const root = tempRoot();
    const world = worldWithStack('inactive').unit('app-proxy.socket', 'inactive');
    world.failing.add('start app-proxy.socket');
    const run = stackRun(world, stackConfig(), { journal: createJournal(root, 'run-1') });
    run.undo.push('app', { kind: 'hooks', hooks: hookCommands('post_start', ['maintenance off']) });
    run.undo.push('app', unfreeze('app-proxy.socket', undefined));
    run.undo.push('app', restoreUnit());
    const failures = await unwind(run);
    expect(failures.map((failure) => failure.name)).toEqual(['unfreeze on-demand socket']);
    expect(world.actions).toEqual([`start ${unit}`, 'start app-proxy.socket', 'hook post_start: maintenance off']);
    expect(createJournal(root, 'next').pending().map((entry) => entry.undo)).toEqual([unfreeze('app-proxy.socket', undefined)]);
  });

  it('stopUnit has the restore written down before it stops the unit', async () => {
    const root = tempRoot();
    const world = worldWithStack('active');
    const run = stackRun(world, stackConfig(), { journal: createJournal(root, 'run-1') });
    let atStop: UndoRecord[] | undefined;
    world.onAction = (action) => {
      if (action === `stop ${unit}`) atStop = createJournal(root, 'reader').pending().map((entry) => entry.undo);
    };
    await stopUnit(run);
    expect(world.state(unit)).toBe('inactive');
    expect(atStop).toEqual([{ kind: 'restore-unit', unit, stateBefore: 'active', start: true, startTimeoutMs: 120_000, preStart: expect.objectContaining({ phase: 'pre_start' }) }]);
  });

  it('a journal that cannot be written fails the step before the change: the unit is not stopped', async () => {
    const root = tempRoot();
    const world = worldWithStack('active');
    mkdirSync(path.join(root, 'logs', `journal.json.${process.pid}.tmp`), { recursive: true });
    const run = stackRun(world, stackConfig(), { journal: createJournal(root, 'run-1') });
    await expect(stopUnit(run)).rejects.toThrow();
    expect(world.actions).toEqual([]);
    expect(world.state(unit)).toBe('active');
    expect(run.undo.size).toBe(0);
  });
});

describe('undoName and undoTimeoutMs', () => {
  it('names each kind of undo as the log and the summary show it', () => {
    expect(undoName(restoreUnit())).toBe('restore unit');
    expect(undoName(unfreeze('a.socket', undefined))).toBe('unfreeze on-demand socket');
    expect(undoName({ kind: 'hooks', hooks: hookCommands('post_start', ['x']) })).toBe('post_start hooks');
  });

  it('gives each undo what its commands may take and 5 s more', () => {
    expect(undoTimeoutMs(restoreUnit({ startTimeoutMs: 90_000, preStart: hookCommands('pre_start', ['a', 'b'], 10_000) }))).toBe(90_000 + 2 * 10_000 + 5000);
    expect(undoTimeoutMs(restoreUnit({ startTimeoutMs: 90_000 }))).toBe(95_000);
    // A socket and a service, 60 s each.
    expect(undoTimeoutMs(unfreeze('a.socket', 'a.service'))).toBe(125_000);
    expect(undoTimeoutMs({ kind: 'hooks', hooks: hookCommands('post_start', ['a', 'b', 'c'], 7000) })).toBe(3 * 7000 + 5000);
    // No commands still gets one hook's time.
    expect(undoTimeoutMs({ kind: 'hooks', hooks: hookCommands('post_start', [], 7000) })).toBe(12_000);
  });
});

describe('performUndo', () => {
  const context = (world: FakeWorld, log = new MemoryLog(), timings?: Record<string, number>) => ({
    systemd: world.systemd,
    runHook: world.runHook,
    clock: world.clock,
    log,
    ...(timings ? { timings } : {}),
  });
  const signal = () => new AbortController().signal;

  it('restore-unit with start runs pre_start in order, then starts the unit, and times the start', async () => {
    const world = worldWithStack('inactive');
    const timings: Record<string, number> = {};
    await performUndo(restoreUnit({ preStart: hookCommands('pre_start', ['fix permissions', 'migrate']) }), context(world, new MemoryLog(), timings), signal());
    expect(world.actions).toEqual(['hook pre_start: fix permissions', 'hook pre_start: migrate', `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
    expect(timings.unitStartIssuedAt).toBe(world.clock.now());
    expect(timings.unitStartedAt).toBe(world.clock.now());
  });

  it('restore-unit without start runs pre_start, leaves the unit stopped and says why', async () => {
    const world = worldWithStack('inactive');
    const log = new MemoryLog();
    await performUndo(restoreUnit({ start: false, stateBefore: 'failed', preStart: hookCommands('pre_start', ['fix permissions']) }), context(world, log), signal());
    expect(world.actions).toEqual(['hook pre_start: fix permissions']);
    expect(world.state(unit)).toBe('inactive');
    const left = log.lines.find((line) => line.message === 'unit left stopped');
    expect(left?.fields).toMatchObject({ unit, reason: 'restore_policy previous and it was failed' });
  });

  it('restore-unit starts the unit even when pre_start fails, then reports the hook failure', async () => {
    const world = worldWithStack('inactive');
    world.hookResults.set('fix permissions', { exitCode: 3 });
    const error = await performUndo(restoreUnit({ preStart: hookCommands('pre_start', ['fix permissions', 'never']) }), context(world), signal()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HookFailure);
    expect((error as Error).message).toBe('pre_start hook "fix permissions" failed with exit 3');
    expect(world.actions).toEqual(['hook pre_start: fix permissions', `start ${unit}`]);
    expect(world.state(unit)).toBe('active');
  });

  it('restore-unit that cannot start the unit fails with the start error, and with the hook failure too', async () => {
    const world = worldWithStack('inactive');
    world.failing.add(`start ${unit}`);
    await expect(performUndo(restoreUnit(), context(world), signal())).rejects.toThrow(`start ${unit}: failed (injected)`);
    world.hookResults.set('fix permissions', { exitCode: 1 });
    await expect(performUndo(restoreUnit({ preStart: hookCommands('pre_start', ['fix permissions']) }), context(world), signal())).rejects.toThrow(
      `pre_start hook "fix permissions" failed with exit 1; start ${unit}: failed (injected)`,
    );
    expect(world.state(unit)).toBe('inactive');
  });

  it('unfreeze starts the socket, then the service', async () => {
    const world = new FakeWorld().unit('app-proxy.socket', 'inactive').unit('app-proxy.service', 'inactive');
    await performUndo(unfreeze('app-proxy.socket', 'app-proxy.service'), context(world), signal());
    expect(world.actions).toEqual(['start app-proxy.socket', 'start app-proxy.service']);
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.state('app-proxy.service')).toBe('active');
  });

  it('unfreeze starts only what was up before the freeze', async () => {
    const world = new FakeWorld().unit('app-proxy.socket', 'inactive').unit('app-proxy.service', 'inactive');
    await performUndo(unfreeze('app-proxy.socket', undefined), context(world), signal());
    expect(world.actions).toEqual(['start app-proxy.socket']);
    expect(world.state('app-proxy.service')).toBe('inactive');
    await performUndo(unfreeze(undefined, undefined), context(world), signal());
    expect(world.actions).toEqual(['start app-proxy.socket']);
  });

  it('unfreeze fails when the socket cannot be started', async () => {
    const world = new FakeWorld().unit('app-proxy.socket', 'inactive');
    world.failing.add('start app-proxy.socket');
    await expect(performUndo(unfreeze('app-proxy.socket', undefined), context(world), signal())).rejects.toThrow('start app-proxy.socket: failed (injected)');
    expect(world.state('app-proxy.socket')).toBe('inactive');
  });

  it('hooks runs the recorded commands with the recorded environment, folder and time limit, not the stack file', async () => {
    const world = new FakeWorld();
    const record: UndoRecord = { kind: 'hooks', hooks: hookCommands('post_start', ['maintenance off', 'warm caches'], 42_000) };
    await performUndo(record, context(world), signal());
    expect(world.actions).toEqual(['hook post_start: maintenance off', 'hook post_start: warm caches']);
    for (const hook of world.hookRuns) {
      expect(hook).toMatchObject({ cwd: '/srv/recorded-root', timeoutMs: 42_000, environment: hookCommands('post_start', []).environment });
    }
  });

  it('hooks fails with a HookFailure at the first failing command', async () => {
    const world = new FakeWorld();
    world.hookResults.set('maintenance off', { exitCode: 2 });
    const error = await performUndo({ kind: 'hooks', hooks: hookCommands('post_start', ['maintenance off', 'warm caches']) }, context(world), signal()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HookFailure);
    expect(world.actions).toEqual(['hook post_start: maintenance off']);
  });

  it('the post_start hooks a stack run records are its own, run from the root', async () => {
    const world = worldWithStack('active');
    const run = stackRun(world, stackConfig({ hooks: hooks({ post_start: ['maintenance off'] }), hookTimeoutMs: 9000 }));
    const journal = createJournal(tempRoot(), 'run-1');
    run.undo = new UndoStack(journal);
    await preStopHooks(run);
    const [entry] = journal.pending();
    expect(entry!.undo).toEqual({
      kind: 'hooks',
      hooks: {
        phase: 'post_start',
        commands: ['maintenance off'],
        environment: { STACK_NAME: 'app', STACK_UNIT: unit, STACK_PHASE: 'post_start', STACK_BACKUP_ROOT: run.global.root },
        cwd: run.global.root,
        timeoutMs: 9000,
      },
    });
  });
});

describe('undo time budgets past what a timer can hold', () => {
  const week = 7 * 24 * 3_600_000;
  const longRestore = restoreUnit({ preStart: hookCommands('pre_start', ['a', 'b', 'c', 'd'], week) });

  it('four pre_start hooks at the largest hook_timeout get the longest budget a timer holds, not one that fires at once', () => {
    expect(undoTimeoutMs(longRestore)).toBe(2 ** 31 - 1);
  });

  it('such a restore is not ended before it begins', async () => {
    const { runBounded } = await import('../../src/journal/undo.js');
    const error = await runBounded(longRestore, async () => {
      // Long enough for a timer that fired at once (Node's TimeoutOverflowWarning case) to win.
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    expect(error).toBeUndefined();
  });
});
