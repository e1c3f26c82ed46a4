/**
 * src/adapters/duplicati.ts for `doctor` and results: parsing `duplicati-server-util
 * list-backups` ("ID: NAME", an indented description, an empty line per job), the command the
 * exec driver runs for it, and its result(), which can only be Unknown.
 */
import { describe, expect, it } from 'vitest';
import { createExecDuplicati, parseJobList } from '../../src/adapters/duplicati.js';
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

describe('createExecDuplicati: listJobs and result', () => {
  it('listJobs runs podman exec duplicati duplicati-server-util list-backups and parses it', async () => {
    const { run, calls } = fakeRunner([{ stdout: lines('Connecting to http://localhost:8200/...', '1: app', '', '3: db', '') }]);
    const jobs = await createExecDuplicati(run, settings()).listJobs();
    expect(calls.map((call) => call.argv)).toEqual([['podman', 'exec', 'duplicati', 'duplicati-server-util', 'list-backups']]);
    expect(jobs).toEqual([
      { id: '1', name: 'app' },
      { id: '3', name: 'db' },
    ]);
  });

  it('listJobs uses the configured container and server_util, and passes the signal on', async () => {
    const { run, calls } = fakeRunner([{ stdout: '' }]);
    const controller = new AbortController();
    await createExecDuplicati(run, settings({ container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' })).listJobs(controller.signal);
    expect(calls[0]!.argv).toEqual(['podman', 'exec', 'backup', '/app/duplicati/duplicati-server-util', 'list-backups']);
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

  it('result() is Unknown, says why, and runs nothing', async () => {
    const { run, calls } = fakeRunner([]);
    const result = await createExecDuplicati(run, settings()).result({ backupId: '1', backupName: 'app', timedOut: false, output: 'Running backup app (ID: 1)' });
    expect(result.result).toBe('Unknown');
    expect(result.message).toMatch(/driver: api/);
    expect(calls).toEqual([]);
  });

  it('the exec driver offers no waitForChange: waits poll', () => {
    const { run } = fakeRunner([]);
    expect(createExecDuplicati(run, settings()).waitForChange).toBeUndefined();
  });
});
