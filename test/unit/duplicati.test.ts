/**
 * src/adapters/duplicati.ts: parsing duplicati-server-util's lines as documented in
 * shared/notes/duplicati.md, and the exact commands run through a fake CommandRunner.
 */
import { describe, expect, it } from 'vitest';
import { UnknownJobError, createExecDuplicati, parseRunLine, parseStatus } from '../../src/adapters/duplicati.js';
import type { DuplicatiSettings } from '../../src/config/types.js';
import { CommandError, TimeoutError } from '../../src/errors.js';
import { fakeRunner, globalConfig } from '../fakes.js';

const lines = (...text: string[]) => `${text.join('\n')}\n`;

describe('parseStatus', () => {
  it('skips "Connecting to" and unknown lines; idle running server', () => {
    const status = parseStatus(
      lines(
        'No database found in /config, using defaults',
        'Failed to use refresh token: expired',
        'Connecting to http://localhost:8200/...',
        'Server state: Running',
        'Active task: None',
        'Scheduler tasks: Empty',
      ),
    );
    expect(status).toEqual({ paused: false, active: undefined, queue: [] });
  });

  it('paused server', () => {
    const status = parseStatus(lines('Connecting to http://localhost:8200/...', 'Server state: Paused', 'Active task: None', 'Scheduler tasks: Empty'));
    expect(status.paused).toBe(true);
  });

  it('an active task', () => {
    const status = parseStatus(
      lines('Connecting to http://localhost:8200/...', 'Server state: Running', 'Active task: [Task 12]: BackupId = 3', 'Scheduler tasks: Empty'),
    );
    expect(status.active).toEqual({ task: 12, backupId: '3' });
    expect(status.queue).toEqual([]);
  });

  it('"Scheduled tasks:" with entries is the queue, in order', () => {
    const status = parseStatus(
      lines(
        'Connecting to http://localhost:8200/...',
        'Server state: Running',
        'Active task: [Task 12]: BackupId = 3',
        'Scheduled tasks:',
        '  [Task 13]: BackupId = 4',
        '  [Task 14]: BackupId = 1',
      ),
    );
    expect(status.active).toEqual({ task: 12, backupId: '3' });
    expect(status.queue).toEqual([
      { task: 13, backupId: '4' },
      { task: 14, backupId: '1' },
    ]);
  });

  it('a job just enqueued: no active task but a queue entry (not idle)', () => {
    const status = parseStatus(
      lines('Connecting to http://localhost:8200/...', 'Server state: Running', 'Active task: None', 'Scheduled tasks:', '  [Task 20]: BackupId = 2'),
    );
    expect(status.active).toBeUndefined();
    expect(status.queue).toEqual([{ task: 20, backupId: '2' }]);
  });

  it('"Scheduler tasks: Empty" is an empty queue, unlike "Scheduled tasks:"', () => {
    const status = parseStatus(lines('Server state: Running', 'Active task: None', 'Scheduler tasks: Empty'));
    expect(status.queue).toEqual([]);
  });

  it('windows line endings are tolerated', () => {
    const status = parseStatus('Server state: Paused\r\nActive task: [Task 5]: BackupId = 9\r\nScheduled tasks:\r\n  [Task 6]: BackupId = 2\r\n');
    expect(status).toEqual({ paused: true, active: { task: 5, backupId: '9' }, queue: [{ task: 6, backupId: '2' }] });
  });

  it('a line after the queue that is not a task ends the queue', () => {
    const status = parseStatus(lines('Server state: Running', 'Active task: None', 'Scheduled tasks:', '  [Task 6]: BackupId = 2', 'Done.', '  [Task 7]: BackupId = 3'));
    expect(status.queue).toEqual([{ task: 6, backupId: '2' }]);
  });

  it.each([
    ['no state line', lines('Connecting to http://localhost:8200/...', 'Active task: None', 'Scheduler tasks: Empty')],
    ['no active task line', lines('Connecting to http://localhost:8200/...', 'Server state: Running')],
    ['an error message only', lines('Connecting to http://localhost:8200/...', 'Failed to connect to server')],
    ['nothing', ''],
  ])('%s throws', (_title, output) => {
    expect(() => parseStatus(output)).toThrow(CommandError);
    expect(() => parseStatus(output)).toThrow(/Server state/);
  });
});

describe('parseRunLine', () => {
  it('reads the name and ID', () => {
    expect(parseRunLine(lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)'))).toEqual({ backupName: 'nextcloud', backupId: '3' });
  });

  it('a name with spaces and parentheses', () => {
    expect(parseRunLine('Running backup My files (daily) (ID: 12)\n')).toEqual({ backupName: 'My files (daily)', backupId: '12' });
  });

  it('no line: undefined', () => {
    expect(parseRunLine(lines('Connecting to http://localhost:8200/...'))).toBeUndefined();
    expect(parseRunLine('')).toBeUndefined();
  });
});


const settings = (overrides: Partial<DuplicatiSettings> = {}): DuplicatiSettings => ({ ...globalConfig().duplicati, ...overrides });

describe('createExecDuplicati', () => {
  it('run: podman exec <container> <server_util> run JOB, bounded by run_timeout', async () => {
    const { run, calls } = fakeRunner([{ stdout: lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)') }]);
    const outcome = await createExecDuplicati(run, settings({ runTimeoutMs: 25_000 })).run('nextcloud');
    expect(calls[0]!.argv).toEqual(['podman', 'exec', 'duplicati', 'duplicati-server-util', 'run', '--', 'nextcloud']);
    expect(calls[0]!.options.timeoutMs).toBe(25_000);
    expect(outcome).toMatchObject({ backupId: '3', backupName: 'nextcloud', timedOut: false });
    expect(outcome.output).toContain('Running backup nextcloud (ID: 3)');
  });

  it('container and server_util path are configurable', async () => {
    const { run, calls } = fakeRunner([
      { stdout: lines('Server state: Running', 'Active task: None', 'Scheduler tasks: Empty') },
      { stdout: 'Running backup x (ID: 1)\n' },
    ]);
    const duplicati = createExecDuplicati(run, settings({ container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' }));
    await duplicati.status();
    await duplicati.run('x');
    expect(calls.map((call) => call.argv)).toEqual([
      ['podman', 'exec', 'backup', '/app/duplicati/duplicati-server-util', 'status'],
      ['podman', 'exec', 'backup', '/app/duplicati/duplicati-server-util', 'run', '--', 'x'],
    ]);
  });

  it('passes the abort signal on', async () => {
    const { run, calls } = fakeRunner([{ stdout: lines('Server state: Running', 'Active task: None', 'Scheduler tasks: Empty') }]);
    const controller = new AbortController();
    await createExecDuplicati(run, settings()).status(controller.signal);
    expect(calls[0]!.options.signal).toBe(controller.signal);
  });

  it('status parses the output', async () => {
    const { run } = fakeRunner([
      { stdout: lines('Connecting to http://localhost:8200/...', 'Server state: Running', 'Active task: [Task 12]: BackupId = 3', 'Scheduled tasks:', '  [Task 13]: BackupId = 4') },
    ]);
    const status = await createExecDuplicati(run, settings()).status();
    expect(status).toEqual({ paused: false, active: { task: 12, backupId: '3' }, queue: [{ task: 13, backupId: '4' }] });
  });

  it('status with a non-zero exit is a CommandError carrying the output', async () => {
    const { run } = fakeRunner([{ exitCode: 125, stdout: '', output: 'Error: no container with name or ID "duplicati" found' }]);
    const error = await createExecDuplicati(run, settings()).status().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as Error).message).toContain('exit 125');
    expect((error as CommandError).output).toContain('no container');
  });

  it('status that does not answer is a TimeoutError', async () => {
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true }]);
    await expect(createExecDuplicati(run, settings()).status()).rejects.toBeInstanceOf(TimeoutError);
  });

  it('unknown job (exit 2, "No backup found with supplied ID or name") is an UnknownJobError', async () => {
    const output = lines('Connecting to http://localhost:8200/...', 'No backup found with supplied ID or name');
    const { run } = fakeRunner([{ exitCode: 2, stdout: output, output }]);
    const error = await createExecDuplicati(run, settings()).run('ghost').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnknownJobError);
    expect((error as Error).message).toContain('"ghost"');
  });

  it('exit 2 for a connection failure is a CommandError, not an unknown job', async () => {
    const output = lines('Connecting to http://localhost:8200/...', 'Failed to connect to server');
    const { run } = fakeRunner([{ exitCode: 2, stdout: output, output }]);
    const error = await createExecDuplicati(run, settings()).run('nextcloud').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).not.toBeInstanceOf(UnknownJobError);
    expect((error as Error).message).toContain('Failed to connect to server');
  });

  it('run outliving run_timeout: a timedOut outcome with the backup ID from the partial output', async () => {
    const output = lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)');
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true, stdout: output, output, durationMs: 25_000 }]);
    const outcome = await createExecDuplicati(run, settings()).run('nextcloud');
    expect(outcome).toMatchObject({ timedOut: true, backupId: '3', backupName: 'nextcloud' });
  });

  it('run outliving run_timeout with no output: timedOut, no backup ID', async () => {
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true }]);
    const outcome = await createExecDuplicati(run, settings()).run('nextcloud');
    expect(outcome).toMatchObject({ timedOut: true, backupId: undefined });
  });
});
