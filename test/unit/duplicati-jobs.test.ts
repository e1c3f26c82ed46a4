/**
 * src/adapters/duplicati.ts for `doctor` and results: parsing `duplicati-server-util
 * list-backups` ("ID: NAME", an indented description, an empty line per job), the command the
 * exec driver runs for it, and its result(), which can only be Unknown.
 */
import { describe, expect, it } from 'vitest';
import { checkVersion, createExecDuplicati, parseJobList, recordChange } from '../../src/adapters/duplicati.js';
import type { DuplicatiSettings } from '../../src/config/types.js';
import { CommandError, TimeoutError } from '../../src/errors.js';
import { fakeRunner, globalConfig } from '../fakes.js';

const lines = (...text: string[]) => `${text.join('\n')}\n`;

describe('parseJobList', () => {
  it('reads "ID: NAME" lines and skips "Connecting to", empty lines and the rest', () => {
    const output = lines(
      'No database found in /config, using defaults',
      'Connecting to http://localhost:8200/...',
      '1: app',
      '',
      '2: Photos: family (daily)',
      '',
      '12: nextcloud',
      '',
    );
    expect(parseJobList(output)).toEqual([
      { id: '1', name: 'app' },
      { id: '2', name: 'Photos: family (daily)' },
      { id: '12', name: 'nextcloud' },
    ]);
  });

  it('windows line endings', () => {
    expect(parseJobList('1: app\r\n\r\n2: db\r\n')).toEqual([
      { id: '1', name: 'app' },
      { id: '2', name: 'db' },
    ]);
  });

  it('"No backups found" and nothing: no jobs', () => {
    expect(parseJobList(lines('Connecting to http://localhost:8200/...', 'No backups found'))).toEqual([]);
    expect(parseJobList('')).toEqual([]);
  });
});


const settings = (overrides: Partial<DuplicatiSettings> = {}): DuplicatiSettings => ({ ...globalConfig().duplicati, ...overrides });

/** `--json list-backups` as OutputInterceptor.cs writes it (Formatting.Indented). */
const jsonList = (backups: unknown[]) =>
  JSON.stringify(
    { Timestamp: '2026-12-01T20:00:00.0000000+00:00', UnixTimestamp: 1, Command: 'list-backups', Success: true, ExitCode: 0, Messages: ['Connecting to http://localhost:8200/...'], Exceptions: [], Backups: backups },
    null,
    2,
  );

describe('createExecDuplicati: listJobs and result', () => {
  it('listJobs runs podman exec duplicati duplicati-server-util --json list-backups and reads each record', async () => {
    const { run, calls } = fakeRunner([
      { stdout: jsonList([{ Id: '1', Name: 'app', Metadata: { LastBackupFinished: '20261201T200000Z' }, Schedule: null }, { Id: '3', Name: 'db', Metadata: {}, Schedule: null }]) },
    ]);
    const jobs = await createExecDuplicati(run, settings()).listJobs();
    expect(calls.map((call) => call.argv)).toEqual([['podman', 'exec', 'duplicati', 'duplicati-server-util', '--json', 'list-backups']]);
    expect(jobs).toEqual([
      { id: '1', name: 'app', record: { LastBackupFinished: '20261201T200000Z' } },
      { id: '3', name: 'db', record: {} },
    ]);
  });

  it('a server before 2.2 (no --json): falls back to list-backups --detailed, once', async () => {
    const unrecognized = lines("Unrecognized command or argument '--json'.");
    const detailed = lines('Connecting to http://localhost:8200/...', '1: app', '  Last backup: 2026-12-01 20:00:00', '  Last duration: 00:00:02', '  Last error: 2026-12-01 21:00:00 - Source folder missing', '');
    const { run, calls } = fakeRunner([{ exitCode: 1, stdout: unrecognized, output: unrecognized }, { stdout: detailed }, { stdout: detailed }]);
    const duplicati = createExecDuplicati(run, settings());
    const jobs = await duplicati.listJobs();
    await duplicati.listJobs();
    expect(jobs).toEqual([
      {
        id: '1',
        name: 'app',
        record: { LastBackupDate: '2026-12-01 20:00:00', LastBackupDuration: '00:00:02', LastErrorDate: '2026-12-01 21:00:00', LastErrorMessage: 'Source folder missing' },
      },
    ]);
    expect(calls.map((call) => call.argv.slice(4))).toEqual([['--json', 'list-backups'], ['list-backups', '--detailed'], ['list-backups', '--detailed']]);
  });

  it('listJobs uses the configured container and server_util, and passes the signal on', async () => {
    const { run, calls } = fakeRunner([{ stdout: jsonList([]) }]);
    const controller = new AbortController();
    await createExecDuplicati(run, settings({ container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' })).listJobs(controller.signal);
    expect(calls[0]!.argv).toEqual(['podman', 'exec', 'backup', '/app/duplicati/duplicati-server-util', '--json', 'list-backups']);
    expect(calls[0]!.options.signal).toBe(controller.signal);
    expect(calls[0]!.options.timeoutMs).toBeGreaterThan(0);
  });

  it('listJobs failing: a CommandError with the output; no answer: a TimeoutError', async () => {
    const failing = fakeRunner([{ exitCode: 2, stdout: '', output: 'Failed to connect to server' }]);
    const error = await createExecDuplicati(failing.run, settings()).listJobs().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).output).toContain('Failed to connect to server');
    const hanging = fakeRunner([{ exitCode: undefined, timedOut: true }]);
    await expect(createExecDuplicati(hanging.run, settings()).listJobs()).rejects.toBeInstanceOf(TimeoutError);
  });

  const outcome = (recordBefore: Record<string, string>) => ({ backupId: '1', backupName: 'app', timedOut: false, output: '', recordBefore });
  const after = (Metadata: Record<string, string>) => [{ stdout: jsonList([{ Id: '1', Name: 'app', Metadata, Schedule: null }]) }];
  const before = { LastBackupFinished: '20261201T200000Z', LastErrorDate: '20261130T200000Z', LastErrorMessage: 'old' };

  it('result(): a changed LastErrorDate fails with LastErrorMessage, and wins over a changed LastBackupFinished', async () => {
    const { run } = fakeRunner(after({ LastBackupFinished: '20261201T210005Z', LastErrorDate: '20261201T210005Z', LastErrorMessage: 'Source folder missing' }));
    expect(await createExecDuplicati(run, settings()).result(outcome(before))).toEqual({ result: 'Fatal', message: 'Source folder missing' });
  });

  it('result(): a changed LastBackupFinished alone is Completed, never Success', async () => {
    const { run } = fakeRunner(after({ ...before, LastBackupFinished: '20261201T210005Z' }));
    const result = await createExecDuplicati(run, settings()).result(outcome(before));
    expect(result.result).toBe('Completed');
    expect(result.message).toMatch(/cannot see whether with warnings or errors/);
  });

  it('result(): neither changed (a stopped task) fails', async () => {
    const { run } = fakeRunner(after(before));
    const result = await createExecDuplicati(run, settings()).result(outcome(before));
    expect(result.result).toBe('Fatal');
    expect(result.message).toMatch(/neither a completed backup nor an error/);
  });

  it('version: --version, and an old server is refused naming the lowest version', async () => {
    const { run, calls } = fakeRunner([{ stdout: '2.1.0.5_stable_2025-03-04\n' }]);
    expect(await createExecDuplicati(run, settings()).version()).toBe('2.1.0.5_stable_2025-03-04');
    expect(calls[0]!.argv.slice(4)).toEqual(['--version']);
    expect(checkVersion('2.1.0.5_stable_2025-03-04', 'exec')).toBeUndefined();
    expect(checkVersion('2.0.8.1_beta_2024-05-07', 'exec')).toBe(
      'Duplicati 2.0.8.1_beta_2024-05-07 is older than 2.1.0.5, the lowest version the exec driver supports; update Duplicati',
    );
    expect(checkVersion('2.1.0.5_stable_2025-03-04', 'api')).toMatch(/older than 2\.2\.0\.0, the lowest version the api driver supports/);
    expect(checkVersion('2.3.1.0_stable_2026-06-01', 'api')).toBeUndefined();
  });

  it('the exec driver offers no waitForChange, task, stopTask or progress', () => {
    const { run } = fakeRunner([]);
    const duplicati = createExecDuplicati(run, settings());
    expect(duplicati.waitForChange).toBeUndefined();
    expect(duplicati.task).toBeUndefined();
    expect(duplicati.stopTask).toBeUndefined();
  });
});

describe('recordChange', () => {
  it('error, finished or none, from Runner.cs keys', () => {
    expect(recordChange({}, { LastBackupFinished: 'x' })).toBe('finished');
    expect(recordChange({ LastBackupFinished: 'x' }, { LastBackupFinished: 'x' })).toBe('none');
    expect(recordChange({ LastBackupFinished: 'x' }, { LastBackupFinished: 'y', LastErrorDate: 'z' })).toBe('error');
    expect(recordChange(undefined, {})).toBe('none');
    // --detailed lines of servers before 2.2: LastBackupDate and LastBackupDuration
    expect(recordChange({ LastBackupDate: 'a', LastBackupDuration: '1' }, { LastBackupDate: 'a', LastBackupDuration: '2' })).toBe('finished');
  });
});
