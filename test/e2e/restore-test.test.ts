/**
 * The restore test after each backup, in the real world: a stop-mode stack (composeapp) and the
 * btrfs and XFS snapshot-mode stacks, whose data holds a subordinate UID's 0700 folder and 0600
 * file and a symlink. A clean run passes its test; each fault a backup can hide (a file kept out
 * of the version, a file stored wrong, owners lost on restore) fails it, named; a test that is
 * not due is skipped; SIGTERM during the test leaves no scratch folder and the stack running.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { cli, resetRoot, resetWorld, root, standin, standinEvents, startCli, unitState, waitUntil, world, writeStack, writeUserFile } from './world.js';

const data = {
  composeapp: path.join(world.WORLD_DIR!, 'data', 'composeapp'),
  snapbtrfs: path.join(world.BTRFS_DIR!, 'snapbtrfs'),
  snapxfs: path.join(world.XFS_DIR!, 'snapxfs'),
};
type Stack = keyof typeof data;
const targets = { snapbtrfs: path.join(world.BTRFS_DIR!, 'snapshots', 'snapbtrfs'), snapxfs: path.join(world.XFS_DIR!, 'snapshots', 'snapxfs') };

function writeTestedStack(stack: Stack, test = '  sample: all\n'): void {
  const snapshot =
    stack === 'composeapp' ? '' : `snapshot:\n  driver: ${stack === 'snapbtrfs' ? 'btrfs' : 'reflink'}\n  paths:\n    - source: ${data[stack]}\n      target: ${targets[stack]}\n`;
  writeStack(stack, `duplicati_jobs: [${stack}]\n${snapshot}restore_test:\n${test}`);
}

function useDriver(driver: 'exec' | 'api'): Record<string, string> {
  if (driver === 'exec') return {};
  writeUserFile(path.join(root, 'stack-backup.yaml'), `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n`);
  return { DUPLICATI_PASSWORD: world.DUPLICATI_API_PASSWORD! };
}

/** What a test left beside the data: nothing, once it is over. */
function scratchLeft(stack: Stack): string[] {
  return readdirSync(path.dirname(data[stack])).filter((name) => name.startsWith(`${path.basename(data[stack])}.stack-backup-test-`));
}

const pendingUndos = () => {
  const file = path.join(root, 'logs', 'journal.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { entries: unknown[] }).entries : [];
};

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('the restore test after each backup', () => {
  /** What a backup can hide, each switched on in the stand-in, and how the test names it. */
  const faults = (stack: Stack): Array<{ on: string[]; off: string[]; named: RegExp }> => [
    { on: ['set', `keep_out_${stack}`, 'current'], off: ['set', `keep_out_${stack}`, ''], named: /current: not restored[\s\S]*the version holds \d+ files and links, the frozen source \d+ \(\d+\.\d% apart, count_tolerance 0%\)/ },
    { on: ['set', `corrupt_${stack}`, 'db/state'], off: ['set', `corrupt_${stack}`, ''], named: /db\/state: contents differ/ },
    { on: ['flag', 'lose_owners', 'on'], off: ['flag', 'lose_owners', 'off'], named: /db\/state: .*owner 0:0, not 1000:1000/ },
  ];

  for (const [stack, driver] of [
    ['composeapp', 'exec'],
    ['snapbtrfs', 'api'],
    ['snapxfs', 'exec'],
  ] as Array<[Stack, 'exec' | 'api']>) {
    it(`${stack} (${driver} driver): a clean run passes, every file identical; a file kept out, a file stored wrong and owners lost each fail the run, named; no scratch folder stays`, async () => {
      const env = useDriver(driver);
      writeTestedStack(stack);
      const clean = await cli([stack, '--json'], env);
      expect(clean.code, clean.stderr).toBe(0);
      const document = JSON.parse(clean.stdout) as { stacks: Array<{ restore_test: { passed: boolean; files: number; identical: number; mismatches: number; lines: string[] } }> };
      const test = document.stacks[0]!.restore_test;
      expect(test).toMatchObject({ passed: true, mismatches: 0 });
      expect(test.files).toBeGreaterThanOrEqual(3);
      expect(test.identical).toBe(test.files);
      expect(clean.stderr).toMatch(new RegExp(`restore test: ${test.files} of ${test.files} files identical \\((?:\\d+ B|\\d+(?:\\.\\d+)? [KMG]iB)\\) in \\d+\\.\\d s`));
      expect(scratchLeft(stack)).toEqual([]);

      for (const fault of faults(stack)) {
        await standin(...fault.on);
        const faulty = await cli([stack], env);
        await standin(...fault.off);
        expect(faulty.code, fault.on.join(' ')).toBe(1);
        expect(faulty.stderr).toMatch(fault.named);
        expect(await unitState(`${stack}-stack.service`)).toBe('active');
        expect(scratchLeft(stack)).toEqual([]);
        expect(pendingUndos()).toEqual([]);
      }
      // A failing test's backup stays: one version per run.
      const versions = await cli(['versions', stack, '--json'], env);
      expect((JSON.parse(versions.stdout) as { jobs: Array<{ versions: unknown[] }> }).jobs[0]!.versions).toHaveLength(4);
      // status names the last passing test and the failing one.
      const status = await cli(['status', '--max-untested-age', '8d'], env);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(new RegExp(`${stack}: the last restore test failed`));
    });
  }

  it('interval: a test not due is skipped, and status keeps the time of the last passing one', async () => {
    writeTestedStack('composeapp', '  sample: 2\n  interval: 3600\n');
    const first = await cli(['composeapp']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/restore test: 2 of 2 files identical/);
    const second = await cli(['composeapp']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/restore test: \d+ of/);
    const status = await cli(['status', '--json', '--max-untested-age', '8d']);
    expect(status.code).toBe(0);
    const composeapp = (JSON.parse(status.stdout) as { stacks: Array<{ stack: string; last_passing_restore_test: string; untested_too_long: boolean }> }).stacks.find((entry) => entry.stack === 'composeapp')!;
    expect(composeapp.untested_too_long).toBe(false);
    expect(Date.parse(composeapp.last_passing_restore_test)).toBeLessThan(Date.now());
    // A stack with a test that never passed: --max-untested-age exits 1.
    writeTestedStack('snapxfs');
    const untested = await cli(['status', '--max-untested-age', '8d']);
    expect(untested.code).toBe(1);
    expect(untested.stdout).toMatch(/snapxfs: no restore test has passed \(--max-untested-age 8d\)/);
  });

  it('SIGTERM during the test: no scratch folder left, the stack running, exit 143', async () => {
    writeTestedStack('composeapp');
    // The test's own restore takes a while: the signal comes while Duplicati writes its scratch folder.
    await standin('set', 'restore_seconds', '8');
    const run = startCli(['composeapp']);
    await waitUntil("the restore test's restore to start", () => standinEvents().some((line) => / CLI_RESTORE_START /.test(line)), 120_000);
    run.child.kill('SIGTERM');
    const result = await run.finished;
    expect(result.code, result.stderr).toBe(143);
    expect(scratchLeft('composeapp')).toEqual([]);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(pendingUndos()).toEqual([]);
  });
});
