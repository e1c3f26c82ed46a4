/**
 * src/adapters/duplicati.ts: parsing duplicati-server-util's lines as documented in
 * shared/notes/duplicati.md, and the exact commands run through a fake CommandRunner.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { UnknownJobError, chainedArgv, createExecDuplicati, parseRunLine, parseStatus, serverUtilPollArgv, splitChained, type JobRecord } from '../../src/adapters/duplicati.js';
import type { DuplicatiSettings } from '../../src/config/types.js';
import { CommandError, TimeoutError } from '../../src/errors.js';
import { fakeRunner, globalConfig, removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const lines = (...text: string[]) => `${text.join('\n')}\n`;

/** One job as `--json list-backups` prints it (ListBackups.cs). */
const job = (id: string, name: string, metadata: JobRecord = {}) => ({ Id: id, Name: name, Metadata: metadata });
const jsonList = (...jobs: Array<ReturnType<typeof job>>) => `${JSON.stringify({ Backups: jobs }, null, 2)}\n`;
/** A chain's stdout: the first command's output and exit line, then the next command's stdout. */
const listedThen = (first: string, next = '') => `${first}\n@stack-backup:exit=0\n${next}`;

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
  it('run: one podman exec that lists the records, then runs the job, each bounded inside the container; the client waits a little longer', async () => {
    const { run, calls } = fakeRunner([{ stdout: listedThen(jsonList(job('3', 'nextcloud', { LastBackupFinished: '20240101T000000Z' })), lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)')) }]);
    const outcome = await createExecDuplicati(run, settings({ runTimeoutMs: 25_000 })).run('nextcloud');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv).toEqual([
      'podman',
      'exec',
      'duplicati',
      'sh',
      '-c',
      'timeout -s KILL 30 duplicati-server-util --json list-backups 2>&1; e=$?; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"; exec timeout -s KILL 25 duplicati-server-util run -- nextcloud',
    ]);
    expect(calls[0]!.options.timeoutMs).toBeGreaterThan(30_000 + 25_000);
    expect(outcome).toMatchObject({ backupId: '3', backupName: 'nextcloud', timedOut: false, recordBefore: { LastBackupFinished: '20240101T000000Z' } });
    expect(outcome.output).toContain('Running backup nextcloud (ID: 3)');
    expect(outcome.output).not.toContain('Backups');
  });

  it('container and server_util path are configurable', async () => {
    const { run, calls } = fakeRunner([
      { stdout: lines('Server state: Running', 'Active task: None', 'Scheduler tasks: Empty') },
      { stdout: listedThen(jsonList(job('1', 'x')), 'Running backup x (ID: 1)\n') },
    ]);
    const duplicati = createExecDuplicati(run, settings({ container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' }));
    await duplicati.status();
    await duplicati.run('x');
    expect(calls[0]!.argv).toEqual(['podman', 'exec', 'backup', '/app/duplicati/duplicati-server-util', 'status']);
    expect(calls[1]!.argv.slice(0, 5)).toEqual(['podman', 'exec', 'backup', 'sh', '-c']);
    expect(calls[1]!.argv[5]).toContain('timeout -s KILL 30 /app/duplicati/duplicati-server-util --json list-backups 2>&1;');
    expect(calls[1]!.argv[5]).toMatch(/; exec timeout -s KILL 25 \/app\/duplicati\/duplicati-server-util run -- x$/);
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
    const { run } = fakeRunner([{ exitCode: 2, stdout: listedThen(jsonList(job('3', 'nextcloud')), output) }]);
    const error = await createExecDuplicati(run, settings()).run('ghost').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnknownJobError);
    expect((error as Error).message).toContain('"ghost"');
  });

  it('exit 2 for a connection failure is a CommandError, not an unknown job', async () => {
    const output = lines('Connecting to http://localhost:8200/...', 'Failed to connect to server');
    const stdout = listedThen(jsonList(job('3', 'nextcloud')), output);
    const { run } = fakeRunner([{ exitCode: 2, stdout, output: stdout }]);
    const error = await createExecDuplicati(run, settings()).run('nextcloud').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).not.toBeInstanceOf(UnknownJobError);
    expect((error as Error).message).toContain('Failed to connect to server');
  });

  it('run outliving run_timeout: a timedOut outcome with the backup ID from the partial output', async () => {
    const output = lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)');
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true, stdout: listedThen(jsonList(job('3', 'nextcloud')), output), durationMs: 25_000 }]);
    const outcome = await createExecDuplicati(run, settings()).run('nextcloud');
    expect(outcome).toMatchObject({ timedOut: true, backupId: '3', backupName: 'nextcloud' });
  });

  it.each([124, 137])('run ended by timeout inside the container (exit %i): timedOut, not a failure', async (exitCode) => {
    const output = lines('Connecting to http://localhost:8200/...', 'Running backup nextcloud (ID: 3)');
    const { run } = fakeRunner([{ exitCode, stdout: listedThen(jsonList(job('3', 'nextcloud')), output) }]);
    const outcome = await createExecDuplicati(run, settings()).run('nextcloud');
    expect(outcome).toMatchObject({ timedOut: true, backupId: '3' });
  });

  it('a job name beginning with "-" goes after "--", shell-quoted where it needs it', async () => {
    const { run, calls } = fakeRunner([
      { stdout: listedThen(jsonList(job('4', '-odd')), 'Running backup -odd (ID: 4)\n') },
      { stdout: listedThen(jsonList(job('5', "it's")), "Running backup it's (ID: 5)\n") },
    ]);
    const duplicati = createExecDuplicati(run, settings());
    await duplicati.run('-odd');
    await duplicati.run("it's");
    expect(calls[0]!.argv[5]).toMatch(/ run -- -odd$/);
    expect(calls[1]!.argv[5]).toMatch(/ run -- 'it'\\''s'$/);
  });

  it('run outliving run_timeout with no output: timedOut, the backup ID from the list read before it', async () => {
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true, stdout: listedThen(jsonList(job('3', 'nextcloud', { LastBackupFinished: 'x' }))) }]);
    const outcome = await createExecDuplicati(run, settings()).run('NextCloud');
    expect(outcome).toMatchObject({ timedOut: true, backupId: '3', backupName: 'nextcloud', recordBefore: { LastBackupFinished: 'x' } });
  });

  it('run outliving run_timeout with no output, a job the list does not hold: an UnknownJobError', async () => {
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true, stdout: listedThen(jsonList(job('3', 'nextcloud'))) }]);
    await expect(createExecDuplicati(run, settings()).run('ghost')).rejects.toBeInstanceOf(UnknownJobError);
  });

  it('a listing that fails: a CommandError naming it, and nothing was run', async () => {
    const { run } = fakeRunner([{ exitCode: 1, stdout: `Connecting to http://localhost:8200/...\nThe database is locked\n\n@stack-backup:exit=1\n` }]);
    const error = (await createExecDuplicati(run, settings()).run('nextcloud').catch((caught: unknown) => caught)) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toMatch(/duplicati-server-util --json list-backups: exit 1: The database is locked$/);
    expect(error.output).toContain('The database is locked');
  });

  it.each([124, 137])('a listing ended by timeout inside the container (exit %i): a TimeoutError saying the job was not run', async (exitCode) => {
    const { run } = fakeRunner([{ exitCode, stdout: `Connecting to http://localhost:8200/...\n\n@stack-backup:exit=${exitCode}\n` }]);
    const error = (await createExecDuplicati(run, settings()).run('nextcloud').catch((caught: unknown) => caught)) as Error;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.message).toMatch(/no answer within 30 s; the job was not run$/);
  });

  it('a tool before 2.2 refuses --json: the run is made again with list-backups --detailed, the record from its lines', async () => {
    const detailed = lines('Connecting to http://localhost:8200/...', '3: nextcloud', '  Last backup: 2024-01-01 00:00:00', '');
    const { run, calls } = fakeRunner([
      { exitCode: 1, stdout: `Unrecognized command or argument '--json'\n\n@stack-backup:exit=1\n` },
      { stdout: listedThen(detailed, 'Running backup nextcloud (ID: 3)\n') },
    ]);
    const outcome = await createExecDuplicati(run, settings()).run('nextcloud');
    expect(calls).toHaveLength(2);
    expect(calls[1]!.argv[5]).toContain('timeout -s KILL 30 duplicati-server-util list-backups --detailed 2>&1;');
    expect(outcome).toMatchObject({ backupId: '3', recordBefore: { LastBackupDate: '2024-01-01 00:00:00' } });
  });

  it('the exec fails before the listing ends (no container): a CommandError with podman\'s words', async () => {
    const output = 'Error: no container with name or ID "duplicati" found: no such container';
    const { run } = fakeRunner([{ exitCode: 125, stdout: '', stderr: output, output }]);
    const error = (await createExecDuplicati(run, settings()).run('nextcloud').catch((caught: unknown) => caught)) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toContain('exit 125');
    expect(error.output).toContain('no such container');
  });

  it.each([
    ['no sh', 'Error: crun: executable file `sh` not found in $PATH: No such file or directory: OCI runtime attempted to invoke a command that was not found', '', /no "sh"/],
    ['no timeout', '', 'sh: timeout: not found\n\n@stack-backup:exit=127\n', /no "timeout" command/],
  ])('a container with %s: the error says which command is missing', async (_title, stderr, stdout, message) => {
    const { run } = fakeRunner([{ exitCode: 127, stdout, stderr, output: `${stdout}${stderr}` }]);
    await expect(createExecDuplicati(run, settings()).run('nextcloud')).rejects.toThrow(message);
  });

  it('status jobsOnceGone: one podman exec for the state and, the backup gone, every record', async () => {
    const state = lines('Connecting to http://localhost:8200/...', 'Server state: Running', 'Active task: [Task 12]: BackupId = 30', 'Scheduler tasks: Empty');
    const { run, calls } = fakeRunner([{ stdout: listedThen(state, jsonList(job('3', 'nextcloud', { LastErrorDate: 'd' }))) }]);
    const status = await createExecDuplicati(run, settings()).status(undefined, { jobsOnceGone: '3' });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv).toEqual([
      'podman',
      'exec',
      'duplicati',
      'sh',
      '-c',
      's=$(duplicati-server-util status 2>&1); e=$?; printf "%s\\n" "$s"; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"; case "$s" in *"BackupId = 3"|*"BackupId = 3"[!0-9A-Za-z_-]*) exit 0 ;; esac; exec duplicati-server-util --json list-backups',
    ]);
    expect(status).toEqual({ paused: false, active: { task: 12, backupId: '30' }, queue: [], jobs: [{ id: '3', name: 'nextcloud', record: { LastErrorDate: 'd' } }] });
  });

  it('status jobsOnceGone while the backup is active: the state alone, no records', async () => {
    const state = lines('Server state: Running', 'Active task: [Task 12]: BackupId = 3', 'Scheduler tasks: Empty');
    const { run } = fakeRunner([{ stdout: listedThen(state) }]);
    const status = await createExecDuplicati(run, settings()).status(undefined, { jobsOnceGone: '3' });
    expect(status).toEqual({ paused: false, active: { task: 12, backupId: '3' }, queue: [] });
  });

  it('status jobsOnceGone whose status part fails: a CommandError naming status, with its words', async () => {
    const { run } = fakeRunner([{ exitCode: 2, stdout: 'Failed to connect to server\n\n@stack-backup:exit=2\n' }]);
    const error = (await createExecDuplicati(run, settings()).status(undefined, { jobsOnceGone: '3' }).catch((caught: unknown) => caught)) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toMatch(/duplicati-server-util status: exit 2: Failed to connect to server$/);
  });

  it('status jobsOnceGone on a tool before 2.2: the records from list-backups --detailed, in a call of its own this once', async () => {
    const state = lines('Server state: Running', 'Active task: None', 'Scheduler tasks: Empty');
    const { run, calls } = fakeRunner([
      { exitCode: 1, stdout: listedThen(state, ''), stderr: "Unrecognized command or argument '--json'" },
      { stdout: lines('3: nextcloud', '  Last backup: 2024-01-01 00:00:00') },
      { stdout: listedThen(state, lines('3: nextcloud', '  Last backup: 2024-01-02 00:00:00')) },
    ]);
    const duplicati = createExecDuplicati(run, settings());
    expect((await duplicati.status(undefined, { jobsOnceGone: '3' })).jobs).toEqual([{ id: '3', name: 'nextcloud', record: { LastBackupDate: '2024-01-01 00:00:00' } }]);
    expect((await duplicati.status(undefined, { jobsOnceGone: '3' })).jobs).toEqual([{ id: '3', name: 'nextcloud', record: { LastBackupDate: '2024-01-02 00:00:00' } }]);
    expect(calls[1]!.argv).toEqual(['podman', 'exec', 'duplicati', 'duplicati-server-util', 'list-backups', '--detailed']);
    expect(calls[2]!.argv[5]).toMatch(/; exec duplicati-server-util list-backups --detailed$/);
  });

  it('result: the record read with the last status is the one judged, without another call', async () => {
    const { run, calls } = fakeRunner([]);
    const result = await createExecDuplicati(run, settings()).result({
      backupId: '3',
      backupName: 'nextcloud',
      timedOut: false,
      output: '',
      recordBefore: { LastBackupFinished: 'a' },
      recordAfter: { LastBackupFinished: 'b' },
    });
    expect(result.result).toBe('Completed');
    expect(calls).toEqual([]);
  });
});

describe('the poll under a real sh, with a stand-in server util', () => {
  /** A server util that prints the state in $STATE for `status` and a listing for anything else. */
  function util(): string {
    const file = path.join(tempRoot(), 'util');
    writeFileSync(file, '#!/bin/sh\nif [ "$1" = status ]; then printf "%s\\n" "$STATE"; else echo LISTED "$@"; fi\n', { mode: 0o755 });
    return file;
  }

  const poll = (serverUtil: string, state: string, backupId = '3') => {
    const argv = serverUtilPollArgv({ container: 'duplicati', serverUtil }, backupId);
    const result = spawnSync(argv[3]!, argv.slice(4), { encoding: 'utf8', env: { ...process.env, STATE: state } });
    return { status: result.status, ...splitChained(result.stdout) };
  };

  it.each([
    ['active', 'Server state: Running\nActive task: [Task 12]: BackupId = 3\nScheduler tasks: Empty', false],
    ['queued last', 'Server state: Running\nActive task: None\nScheduled tasks:\n  [Task 13]: BackupId = 3', false],
    ['queued, then another', 'Server state: Running\nActive task: None\nScheduled tasks:\n  [Task 13]: BackupId = 3\n  [Task 14]: BackupId = 4', false],
    ['gone', 'Server state: Running\nActive task: None\nScheduler tasks: Empty', true],
    ['gone, backup 30 active', 'Server state: Running\nActive task: [Task 12]: BackupId = 30\nScheduler tasks: Empty', true],
  ])('backup 3 %s: records read %s', (_title, state, listed) => {
    const result = poll(util(), state);
    expect(result.status).toBe(0);
    expect(result.parts).toEqual([{ output: `${state}\n`, exitCode: 0 }]);
    expect(result.rest).toBe(listed ? 'LISTED --json list-backups\n' : '');
  });

  it('a status that fails: its exit code, and no listing', () => {
    const file = path.join(tempRoot(), 'util');
    writeFileSync(file, '#!/bin/sh\necho "Failed to connect to server"; exit 2\n', { mode: 0o755 });
    expect(poll(file, '')).toEqual({ status: 2, parts: [{ output: 'Failed to connect to server\n', exitCode: 2 }], rest: '' });
  });
});

describe('chainedArgv under a real sh', () => {
  const script = (commands: string[][]) => chainedArgv('duplicati', commands).slice(5);

  it('each part but the last ends with its exit code; the last is the shell\'s own', () => {
    const result = spawnSync('sh', ['-c', ...script([['echo', 'first'], ['sh', '-c', 'echo "to stderr" >&2; printf no-newline'], ['sh', '-c', 'echo last; echo err >&2; exit 3']])], { encoding: 'utf8' });
    expect(result.status).toBe(3);
    const { parts, rest } = splitChained(result.stdout);
    expect(parts).toEqual([
      { output: 'first\n', exitCode: 0 },
      { output: 'to stderr\nno-newline', exitCode: 0 },
    ]);
    expect(rest).toBe('last\n');
    expect(result.stderr).toBe('err\n');
  });

  it('stops at the first part that fails, with its exit code; the next never runs', () => {
    const result = spawnSync('sh', ['-c', ...script([['sh', '-c', 'echo broken; exit 4'], ['touch', '/nonexistent-should-not-run']])], { encoding: 'utf8' });
    expect(result.status).toBe(4);
    expect(splitChained(result.stdout)).toEqual({ parts: [{ output: 'broken\n', exitCode: 4 }], rest: '' });
  });

  it('a word with quotes and spaces reaches the command as one argument', () => {
    const result = spawnSync('sh', ['-c', ...script([['printf', '%s|', "it's a job", '-x']])], { encoding: 'utf8' });
    expect(result.stdout).toBe("it's a job|-x|");
  });
});
