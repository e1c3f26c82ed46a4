/**
 * The REST API driver against the stand-in's API (same queue as duplicati-server-util): each
 * Duplicati outcome, the queue race, and an access token that lapses while a job runs.
 */
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { cli, jobRecords, logLines, resetRoot, resetWorld, root, standin, unitState, world, writeStack, writeUserFile } from './world.js';

const passwordFile = path.join(root, 'duplicati-password');

function useApiDriver(extra = ''): void {
  writeUserFile(passwordFile, `${world.DUPLICATI_API_PASSWORD}\n`, 0o600);
  writeUserFile(
    path.join(root, 'stack-backup.yaml'),
    `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n  password_file: ${passwordFile}\n${extra}`,
  );
}

const jobEnd = (stack: string) => logLines(stack).find((line) => String(line.step).startsWith('backup job') && line.event === 'end');

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('duplicati.driver: api', () => {
  it('Success: backed up CLEAN, and the summary says "backed up" because Duplicati said so', async () => {
    useApiDriver();
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/composeapp\s+backed up\s/);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(jobEnd('composeapp')).toMatchObject({ outcome: 'done', result: 'Success' });
    expect(logLines('composeapp').at(-1)).toMatchObject({ msg: 'stack run end', outcome: 'success' });
  });

  it('Warning passes as "backed up, warnings", and fails with warnings_fail', async () => {
    useApiDriver();
    await standin('set', 'outcome', 'Warning');
    let result = await cli(['plainapp']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/plainapp\s+backed up, warnings/);
    useApiDriver('  warnings_fail: true\n');
    result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Duplicati reports Warning for job plainapp');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it.each(['Error', 'Fatal'])('%s fails the stack with Duplicati\'s words, and the stack is restored', async (outcome) => {
    useApiDriver();
    await standin('set', 'outcome_composeapp', outcome);
    const result = await cli(['composeapp', 'plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Duplicati reports ${outcome} for job composeapp`);
    expect(result.stderr).toMatch(/composeapp\s+FAILED/);
    expect(result.stderr).toMatch(/plainapp\s+backed up\s/);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(jobRecords().map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'plainapp CLEAN']);
  });

  it('a job that sits in the queue is not taken as done before it ran (pickup delay), followed by long-polling', async () => {
    useApiDriver();
    await standin('set', 'pickup_delay', '3');
    const result = await cli(['ondemand']);
    expect(result.code).toBe(0);
    const [record] = jobRecords();
    expect(record).toMatchObject({ name: 'ondemand', verdict: 'CLEAN' });
    const started = logLines('ondemand').find((line) => line.step === 'start unit' && line.event === 'start');
    expect(Date.parse(String(started?.time))).toBeGreaterThanOrEqual(record!.endedAt);
  });

  it('an access token that lapses while the job runs is renewed, and the backup completes', async () => {
    useApiDriver();
    await standin('set', 'token_ttl', '2');
    await standin('set', 'token_clock_skew', '0');
    await standin('set', 'duration', '6');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(jobEnd('composeapp')).toMatchObject({ result: 'Success' });
    expect(jobRecords()).toMatchObject([{ verdict: 'CLEAN' }]);
  });

  it('a wrong password fails the stack before it is touched, without printing the password', async () => {
    useApiDriver();
    writeUserFile(passwordFile, 'not-the-password\n', 0o600);
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Duplicati refused the password');
    expect(result.stderr).not.toContain('not-the-password');
    expect(logLines('composeapp').some((line) => JSON.stringify(line).includes('not-the-password'))).toBe(false);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(logLines('composeapp').some((line) => line.step === 'stop unit')).toBe(false);
  });

  it('doctor checks the jobs through the API', async () => {
    useApiDriver();
    writeStack('plainapp', 'duplicati_jobs: [plainapp, missing]\n');
    const result = await cli(['doctor', 'plainapp']);
    expect(result.stdout).toMatch(/^OK    Duplicati answers \(driver api\)$/m);
    expect(result.stdout).toMatch(/^OK    Duplicati has job "plainapp" of plainapp \(ID 2\)$/m);
    expect(result.stdout).toMatch(/^FAIL  Duplicati has job "missing" of plainapp: no such job/m);
    expect(result.code).toBe(1);
  });
});
