/**
 * The run history (src/report/history.ts) in a temp root, and `stack-backup status` (src/report/status.ts):
 * what it shows per stack and the exit code a monitor gets.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitCodes } from '../../src/exit-codes.js';
import { appendHistory, historyFile, historyLength, localDay, readHistory, type HistoryEntry } from '../../src/report/history.js';
import { createJournal, type JournalEntry } from '../../src/journal/journal.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { dayCharacters, dayStrip, defaultOverdueMs, formatStatus, judgeStatus, stackState, stackStatuses, statusExitCode, statusJson, statusVerdict } from '../../src/report/status.js';
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
        kept: [],
        lastPassingTest: null,
        lastTest: null,
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
      kept: [],
      lastPassingTest: null,
      lastTest: null,
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
    expect(header!.split(/\s{2,}/)).toEqual(['STACK', 'LAST RUN', 'LAST 14 DAYS', 'RESULT', 'MODE', 'DOWNTIME', 'BACKUP', 'LAST SUCCESS', 'RESTORE TESTED', 'PENDING RECOVERY']);
    expect(alpha!.split(/\s{2,}/)).toEqual(['alpha', '2024-06-01 03:01:05Z', '...........+..', 'success', 'stop', '12 s', '50 s', '2024-06-01 03:01:05Z', '-', '-']);
    expect(nextcloud!.split(/\s{2,}/)).toEqual(['nextcloud', '2024-06-02 03:01:05Z', '...........+x.', 'failed', 'stop', '-', '-', '2024-06-01 03:01:05Z', '-', 'restore unit']);
    expect(fresh!.split(/\s{2,}/)).toEqual(['new', '-', '..............', 'never', '-', '-', '-', '-', '-', '-']);
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

describe('the history keeps what the strip and the last success need', () => {
  const hour = 3_600_000;
  const at = (time: number, stack = 'alpha', overrides: Partial<HistoryEntry> = {}): HistoryEntry => ({
    stack,
    run: `run-${time}`,
    startedAt: new Date(time - 60_000).toISOString(),
    endedAt: new Date(time).toISOString(),
    result: 'success',
    notRestored: false,
    ...overrides,
  });

  it('fifty manual runs a day for two weeks still leave one character for every day, and files stay small', () => {
    const root = tempRoot();
    // Nightly at 03:00 (local time), then 49 failed manual runs each afternoon.
    for (let day = 0; day < 14; day += 1) {
      const night = new Date(2024, 5, 1 + day, 3, 0).getTime();
      appendHistory(root, at(night));
      for (let manual = 0; manual < 49; manual += 1) appendHistory(root, at(night + 10 * hour + manual * 60_000, 'alpha', { result: 'failed', error: 'x' }));
    }
    const now = new Date(2024, 5, 14, 20, 0).getTime();
    const runs = readHistory(root);
    expect(runs.length).toBeLessThanOrEqual(60);
    const [alpha] = stackStatuses(['alpha'], runs, [], false, now);
    expect(alpha!.days.map((day) => day.result)).toEqual(Array(14).fill('backed_up'));
    expect(alpha!.days[0]!.date).toBe('2024-06-01');
    expect(alpha!.days[13]!.date).toBe('2024-06-14');
  });

  it('a stack failing night after night for longer than the runs kept still shows its last success', () => {
    const root = tempRoot();
    appendHistory(root, at(new Date(2024, 0, 1, 3, 0).getTime()));
    for (let night = 1; night <= historyLength + 20; night += 1) {
      appendHistory(root, at(new Date(2024, 0, 1 + night, 3, 0).getTime(), 'alpha', { result: 'failed', error: 'x' }));
    }
    const runs = readHistory(root);
    expect(runs).toHaveLength(historyLength + 1);
    const [alpha] = stackStatuses(['alpha'], runs, [], false, new Date(2024, 2, 1).getTime());
    expect(alpha!.lastSuccess).toBe(new Date(new Date(2024, 0, 1, 3, 0).getTime()).toISOString());
  });

  it('one character a day: + any run that day succeeded, x runs that day all failed, . no run; today last', () => {
    const runs = [
      at(new Date(2024, 5, 10, 3, 0).getTime(), 'alpha', { result: 'failed' }),
      at(new Date(2024, 5, 10, 14, 0).getTime()),
      at(new Date(2024, 5, 11, 3, 0).getTime()),
      at(new Date(2024, 5, 11, 23, 0).getTime(), 'alpha', { result: 'failed' }),
      at(new Date(2024, 5, 12, 3, 0).getTime(), 'alpha', { result: 'failed' }),
      at(new Date(2024, 5, 14, 0, 30).getTime()),
      // Older than the strip: not shown.
      at(new Date(2024, 4, 20, 3, 0).getTime(), 'alpha', { result: 'failed' }),
    ];
    const days = dayStrip(runs, new Date(2024, 5, 14, 9, 0).getTime());
    expect(days.map((day) => dayCharacters[day.result]).join('')).toBe('.........++x.+');
    expect(days.at(-5)).toEqual({ date: '2024-06-10', result: 'backed_up' });
    expect(days.at(-3)).toEqual({ date: '2024-06-12', result: 'failed' });
  });
});

/** The verdict's tests' clock, and a successful run that many hours before it. */
const hour = 3_600_000;
const now = Date.UTC(2024, 5, 20, 12, 0);
const success = (stack: string, hoursAgo: number, overrides: Partial<HistoryEntry> = {}): HistoryEntry => ({
  stack,
  run: `${stack}-${hoursAgo}`,
  startedAt: new Date(now - hoursAgo * hour - 60_000).toISOString(),
  endedAt: new Date(now - hoursAgo * hour).toISOString(),
  result: 'success',
  notRestored: false,
  ...overrides,
});

describe('the verdict', () => {
  const five = ['immich', 'mail', 'nextcloud', 'paperless', 'wiki'];

  it('all backed up within the age: the issue\'s first form', () => {
    const statuses = stackStatuses(five, five.map((stack) => success(stack, 9)), [], false, now);
    expect(statusVerdict(statuses, defaultOverdueMs, now)).toBe('5 stacks: all backed up within 26 h');
    expect(statusVerdict(statuses, 8 * hour, now)).toBe('5 stacks: 5 overdue (immich, last success 9 h ago; mail, last success 9 h ago; nextcloud, last success 9 h ago; paperless, last success 9 h ago; wiki, last success 9 h ago)');
  });

  it('one failed, one overdue: the issue\'s second form; 25 h is within, 27 h overdue', () => {
    const history = [
      success('immich', 30),
      success('immich', 6, { result: 'failed', error: 'x' }),
      success('mail', 25),
      success('nextcloud', 31),
      success('paperless', 1),
      success('wiki', 2),
    ];
    const statuses = stackStatuses(five, history, [], false, now);
    expect(statusVerdict(statuses, defaultOverdueMs, now)).toBe('5 stacks: 1 failed (immich), 1 overdue (nextcloud, last success 31 h ago)');
    const later = stackStatuses(five, history, [], false, now + 2 * hour);
    expect(statusVerdict(later, defaultOverdueMs, now + 2 * hour)).toBe('5 stacks: 1 failed (immich), 2 overdue (mail, last success 27 h ago; nextcloud, last success 33 h ago)');
  });

  it('worst first, each stack once: left down, recovery pending, failed, never backed up, overdue; ages in minutes, hours or days', () => {
    const history = [
      success('down', 3, { result: 'failed', notRestored: true, run: 'night' }),
      success('failing', 200, { result: 'failed' }),
      success('old', 200),
      success('recent', 0.5),
    ];
    const journal: JournalEntry[] = [
      { ...journalEntry('down', restoreUnit('down')), run: 'night' },
      journalEntry('killed', restoreUnit('killed')),
    ];
    const statuses = stackStatuses(['down', 'failing', 'killed', 'never', 'old', 'recent'], history, journal, false, now);
    expect(statuses.map((status) => stackState(status, defaultOverdueMs, now))).toEqual(['left_down', 'failed', 'recovery_pending', 'never_backed_up', 'overdue', 'backed_up']);
    expect(statusVerdict(statuses, defaultOverdueMs, now)).toBe(
      '6 stacks: 1 left down (down), 1 recovery pending (killed), 1 failed (failing), 1 never backed up (never), 1 overdue (old, last success 8 d ago)',
    );
    expect(statusVerdict(statuses.slice(-1), 10 * 60_000, now)).toBe('1 stack: 1 overdue (recent, last success 30 min ago)');
    expect(statusVerdict([], defaultOverdueMs, now)).toBe('0 stacks: none configured');
    // The row says what the summary said.
    expect(formatStatus(statuses, false, undefined, now)).toMatch(/^down\s+\S+ \S+\s+\S{14}\s+failed, not restored\s/m);
    // Exit codes as before: a failed last run or pending recovery; overdue only with --max-age.
    expect(statusExitCode(statuses.filter((status) => status.stack === 'old'))).toBe(exitCodes.success);
  });

  it('--json: the verdict, the age it used, and per stack its state, whether it was restored and the 14 days', () => {
    const statuses = stackStatuses(['alpha'], [success('alpha', 30)], [], false, now);
    const document = statusJson(statuses, false, undefined, now);
    expect(document).toMatchObject({ verdict: '1 stack: 1 overdue (alpha, last success 30 h ago)', overdue_after_seconds: 93_600, max_age_seconds: null });
    expect(document.stacks[0]).toMatchObject({ stack: 'alpha', state: 'overdue', restored: true, last_success_too_old: null });
    expect(document.stacks[0]!.days).toHaveLength(14);
    expect(document.stacks[0]!.days.at(-2)).toEqual({ date: localDay(now - 30 * hour), result: 'backed_up' });
    const withAge = statusJson(statuses, false, { ms: 36 * hour, now, configured: ['alpha'] }, now);
    expect(withAge).toMatchObject({ verdict: '1 stack: all backed up within 36 h', overdue_after_seconds: 129_600, max_age_seconds: 129_600 });
  });
});

describe('judgeStatus: the verdict line and the exit code agree (issue 30)', () => {
  const where = { stacksFolder: '/srv/backup/stacks', missing: false };

  it('a missing stacks folder: exit 1 whatever was asked, the path named', () => {
    for (const maxAge of [undefined, { ms: 26 * hour, now, configured: [], text: '26h' }]) {
      expect(judgeStatus([], { stacksFolder: '/srv/nope/stacks', missing: true }, maxAge, now)).toEqual({
        verdict: 'no stacks folder at /srv/nope/stacks: no stack is known to be backed up here (is --root right?)',
        exitCode: exitCodes.stackFailed,
      });
    }
  });

  it('an empty root: exit 1 when a monitor asks with --max-age or --max-untested-age (unknown is not healthy), 0 for a look', () => {
    expect(judgeStatus([], where, { ms: 26 * hour, now, configured: [], text: '26h' }, now)).toEqual({
      verdict: '0 stacks in /srv/backup/stacks: none configured, so none is known to be backed up (--max-age 26h)',
      exitCode: exitCodes.stackFailed,
    });
    expect(judgeStatus([], where, undefined, now, { ms: 8 * 24 * hour, now, tested: [], text: '8d' })).toMatchObject({ exitCode: exitCodes.stackFailed });
    expect(judgeStatus([], where, undefined, now)).toEqual({ verdict: '0 stacks in /srv/backup/stacks: none configured', exitCode: exitCodes.success });
  });

  it('--max-untested-age: a stack backed up but not restore-tested in time is named in the verdict, which no longer reads "all backed up"', () => {
    const history = [success('alpha', 2, { restoreTest: { passed: true, tested: 20, mismatches: 0, summary: 'ok' } }), success('beta', 2)];
    const statuses = stackStatuses(['alpha', 'beta'], history, [], false, now);
    const maxUntested = { ms: 60_000, now, tested: ['alpha', 'beta'], text: '1m' };
    const judged = judgeStatus(statuses, where, undefined, now, maxUntested);
    expect(judged).toEqual({
      verdict: '2 stacks: 2 untested (alpha, last passing restore test 2 h ago; beta, no restore test passed)',
      exitCode: exitCodes.stackFailed,
    });
    // The same verdict in the JSON document and on the first line of the text.
    expect(statusJson(statuses, false, undefined, now, maxUntested, judged.verdict).verdict).toBe(judged.verdict);
    expect(formatStatus(statuses, false, undefined, now, maxUntested, judged.verdict).split('\n')[0]).toBe(judged.verdict);
    // Within the age: all backed up, exit 0.
    expect(judgeStatus(statuses, where, undefined, now, { ...maxUntested, ms: 3 * hour, tested: ['alpha'] })).toEqual({ verdict: '2 stacks: all backed up within 26 h', exitCode: exitCodes.success });
  });
});
