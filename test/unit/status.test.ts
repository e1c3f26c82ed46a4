/**
 * The run history (src/history.ts) in a temp root, and `stack-backup status` (src/status.ts):
 * what it shows per stack and the exit code a monitor gets.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitCodes } from '../../src/exit-codes.js';
import { appendHistory, historyFile, historyLength, readHistory, type HistoryEntry } from '../../src/history.js';
import { createJournal, type JournalEntry } from '../../src/journal.js';
import { createProgress } from '../../src/report.js';
import { runBackups } from '../../src/run.js';
import { formatStatus, stackStatuses, statusExitCode } from '../../src/status.js';
import { FakeWorld, addStack, globalConfig, hooks, removeTempRoots, stackConfig, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const base = Date.UTC(2024, 5, 1, 3, 0, 0);

function entry(stack: string, index: number, overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    stack,
    run: `run-${index}`,
    startedAt: new Date(base + index * 86_400_000).toISOString(),
    endedAt: new Date(base + index * 86_400_000 + 65_000).toISOString(),
    result: 'success',
    notRestored: false,
    downtimeMs: 12_000,
    backupMs: 50_000,
    ...overrides,
  };
}

function journalEntry(stack: string, undo: JournalEntry['undo']): JournalEntry {
  return { id: `${stack}-${undo.kind}`, stack, run: 'dead', pid: 1, recordedAt: new Date(base).toISOString(), undo };
}

const restoreUnit = (stack: string): JournalEntry['undo'] => ({
  kind: 'restore-unit',
  unit: `${stack}-stack.service`,
  stateBefore: 'active',
  start: true,
  startTimeoutMs: 120_000,
  preStart: { phase: 'pre_start', commands: [], environment: {}, cwd: '/', timeoutMs: 1000 },
});

describe('history', () => {
  it('a root without history has none, and the file lives in logs/', () => {
    const root = tempRoot();
    expect(readHistory(root)).toEqual([]);
    expect(historyFile(root)).toBe(path.join(root, 'logs', 'history.json'));
  });

  it('appends runs in order and keeps them across readers', () => {
    const root = tempRoot();
    appendHistory(root, entry('alpha', 0));
    appendHistory(root, entry('beta', 0, { result: 'failed', error: 'preflight: x; nothing was touched' }));
    appendHistory(root, entry('alpha', 1));
    expect(readHistory(root).map((run) => `${run.stack} ${run.run} ${run.result}`)).toEqual(['alpha run-0 success', 'beta run-0 failed', 'alpha run-1 success']);
    expect(JSON.parse(readFileSync(historyFile(root), 'utf8')).version).toBe(1);
    expect(readHistory(root)[1]!.error).toBe('preflight: x; nothing was touched');
  });

  it(`keeps the last ${historyLength} runs of each stack, without touching other stacks`, () => {
    const root = tempRoot();
    appendHistory(root, entry('beta', 0));
    for (let index = 0; index < historyLength + 5; index += 1) appendHistory(root, entry('alpha', index));
    appendHistory(root, entry('beta', 1));
    const runs = readHistory(root);
    const alpha = runs.filter((run) => run.stack === 'alpha').map((run) => run.run);
    expect(alpha).toHaveLength(historyLength);
    expect(alpha[0]).toBe('run-5');
    expect(alpha.at(-1)).toBe(`run-${historyLength + 4}`);
    expect(runs.filter((run) => run.stack === 'beta').map((run) => run.run)).toEqual(['run-0', 'run-1']);
    // The oldest beta run, older than every alpha run, is still first.
    expect(runs[0]).toMatchObject({ stack: 'beta', run: 'run-0' });
  });
});

describe('stackStatuses and statusExitCode', () => {
  it('a configured stack that never ran shows "never"; nothing needs a look', () => {
    const statuses = stackStatuses(['alpha'], [], [], false);
    expect(statuses).toEqual([
      {
        stack: 'alpha',
        configured: true,
        lastRun: null,
        result: 'never',
        outcome: null,
        error: null,
        mode: null,
        downtimeMs: null,
        backupMs: null,
        snapshotMs: null,
        lastSuccess: null,
        restored: null,
        pendingRecovery: [],
        days: expect.any(Array),
      },
    ]);
    expect(statuses[0]!.days.map((day) => day.result)).toEqual(Array(14).fill('no_run'));
    expect(statusExitCode(statuses)).toBe(exitCodes.success);
  });

  it('shows the last run and the last success of each stack', () => {
    const history = [
      entry('alpha', 0),
      entry('beta', 0),
      entry('alpha', 1, { result: 'failed', error: 'restore unit: start failed', downtimeMs: 3000, backupMs: undefined }),
      entry('beta', 1, { downtimeMs: 9000 }),
    ];
    const [alpha, beta] = stackStatuses(['alpha', 'beta'], history, [], false);
    expect(alpha).toEqual({
      stack: 'alpha',
      configured: true,
      lastRun: history[2]!.endedAt,
      result: 'failed',
      outcome: null,
      error: 'restore unit: start failed',
      mode: 'stop',
      downtimeMs: 3000,
      backupMs: null,
      snapshotMs: null,
      lastSuccess: history[0]!.endedAt,
      restored: true,
      pendingRecovery: [],
      days: expect.any(Array),
    });
    expect(beta).toMatchObject({ result: 'success', error: null, downtimeMs: 9000, lastRun: history[3]!.endedAt, lastSuccess: history[3]!.endedAt });
  });

  it('a success whose Duplicati result was not seen (exec driver) reads "ran, outcome unknown", never "success"', () => {
    const statuses = stackStatuses(['alpha'], [entry('alpha', 0, { outcome: 'unknown' })], [], false);
    expect(statuses[0]).toMatchObject({ result: 'success', outcome: 'unknown' });
    // The verdict, a blank line, the header, then the row.
    const row = formatStatus(statuses, false).split('\n')[3]!;
    expect(row.split(/\s{2,}/)[3]).toBe('ran, outcome unknown');
    expect(statusExitCode(statuses)).toBe(0);
  });

  it('exit 1 when a last run failed, 0 once a later run succeeded', () => {
    const failed = [entry('alpha', 0), entry('alpha', 1, { result: 'failed', error: 'x' })];
    expect(statusExitCode(stackStatuses(['alpha', 'beta'], failed, [], false))).toBe(exitCodes.stackFailed);
    expect(statusExitCode(stackStatuses(['alpha', 'beta'], [...failed, entry('alpha', 2)], [], false))).toBe(exitCodes.success);
  });

  it('lists undos waiting for recovery, last change first as recover replays them, also of a stack no longer configured, and exits 1', () => {
    const journal = [journalEntry('alpha', { kind: 'unfreeze', socket: 'a.socket', service: undefined }), journalEntry('alpha', restoreUnit('alpha')), journalEntry('gone', restoreUnit('gone'))];
    const statuses = stackStatuses(['alpha', 'beta'], [entry('alpha', 0), entry('beta', 0)], journal, false);
    expect(statuses.map((status) => [status.stack, status.pendingRecovery])).toEqual([
      ['alpha', ['restore unit', 'unfreeze on-demand socket']],
      ['beta', []],
      ['gone', ['restore unit']],
    ]);
    expect(statusExitCode(statuses)).toBe(exitCodes.stackFailed);
  });

  it('while a run is in progress its journal entries are its own, not pending recovery', () => {
    const statuses = stackStatuses(['alpha'], [entry('alpha', 0)], [journalEntry('alpha', restoreUnit('alpha'))], true);
    expect(statuses[0]!.pendingRecovery).toEqual([]);
    expect(statusExitCode(statuses)).toBe(exitCodes.success);
  });
});

describe('formatStatus', () => {
  const lines = (text: string) => text.trimEnd().split('\n');

  it('prints one aligned row per stack with times, durations and pending recovery', () => {
    const history = [entry('alpha', 0), entry('nextcloud', 0), entry('nextcloud', 1, { result: 'failed', error: 'pre_stop hook "x" failed with exit 1', downtimeMs: undefined, backupMs: undefined })];
    // Seen on the day after nextcloud's failed run.
    const now = base + 2 * 86_400_000;
    const statuses = stackStatuses(['alpha', 'nextcloud', 'new'], history, [journalEntry('nextcloud', restoreUnit('nextcloud'))], false, now);
    const text = formatStatus(statuses, false, undefined, now);
    expect(text.endsWith('\n')).toBe(true);
    const [verdict, blank, header, alpha, nextcloud, fresh, legend, ...rest] = lines(text);
    expect(verdict).toBe('3 stacks: 1 recovery pending (nextcloud), 1 never backed up (new), 1 overdue (alpha, last success 47 h ago)');
    expect(blank).toBe('');
    expect(header!.split(/\s{2,}/)).toEqual(['STACK', 'LAST RUN', 'LAST 14 DAYS', 'RESULT', 'MODE', 'DOWNTIME', 'BACKUP', 'LAST SUCCESS', 'PENDING RECOVERY']);
    expect(alpha!.split(/\s{2,}/)).toEqual(['alpha', '2024-06-01 03:01:05Z', '...........+..', 'success', 'stop', '12 s', '50 s', '2024-06-01 03:01:05Z', '-']);
    expect(nextcloud!.split(/\s{2,}/)).toEqual(['nextcloud', '2024-06-02 03:01:05Z', '...........+x.', 'failed', 'stop', '-', '-', '2024-06-01 03:01:05Z', 'restore unit']);
    expect(fresh!.split(/\s{2,}/)).toEqual(['new', '-', '..............', 'never', '-', '-', '-', '-', '-']);
    expect(legend).toBe('(LAST 14 DAYS: oldest first, today last; + backed up, x failed, . no run)');
    // Columns line up: each column starts at the same place in every row.
    for (const title of ['LAST RUN', 'RESULT', 'DOWNTIME', 'LAST SUCCESS']) {
      const column = header!.indexOf(title);
      expect(alpha![column - 1]).toBe(' ');
      expect(alpha![column]).not.toBe(' ');
      expect(nextcloud![column]).not.toBe(' ');
    }
    expect(rest).toEqual(['nextcloud: pre_stop hook "x" failed with exit 1']);
  });

  it('says when a run is in progress', () => {
    const text = formatStatus(stackStatuses(['alpha'], [], [], true), true);
    expect(lines(text).at(-1)).toBe('A run is in progress (it holds the lock).');
    expect(formatStatus(stackStatuses(['alpha'], [], [], false), false)).not.toContain('in progress');
  });
});

describe('status after real runs', () => {
  it('shows what runBackups recorded: a failed stack and a good one, and exit 1', async () => {
    const root = tempRoot();
    const world = addStack(addStack(new FakeWorld(), 'alpha'), 'beta');
    world.hookResults.set('alpha maintenance on', { exitCode: 1 });
    const stacks = [stackConfig({ name: 'alpha', hooks: hooks({ pre_stop: ['alpha maintenance on'] }) }), stackConfig({ name: 'beta' })];
    await runBackups({
      global: globalConfig({ root }),
      stacks,
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    const statuses = stackStatuses(['alpha', 'beta'], readHistory(root), createJournal(root, '').pending(), false);
    expect(statuses.map((status) => [status.stack, status.result, status.error, status.lastSuccess === null, status.pendingRecovery])).toEqual([
      ['alpha', 'failed', 'pre_stop hook "alpha maintenance on" failed with exit 1', true, []],
      ['beta', 'success', null, false, []],
    ]);
    expect(statuses[1]!.downtimeMs).toBeGreaterThanOrEqual(5000);
    expect(statusExitCode(statuses)).toBe(exitCodes.stackFailed);
    expect(formatStatus(statuses, false)).toContain('alpha: pre_stop hook "alpha maintenance on" failed with exit 1\n');
  });
});
