/**
 * Snapshot mode in the real world: a loop-mounted btrfs (user_subvol_rm_allowed, a subvolume
 * the user owns) and a loop-mounted XFS (reflink=1), each holding a stack's live data with a
 * folder of mode 0700 and a file of mode 0600 that a container user (a subordinate UID) keeps
 * writing. The Duplicati stand-in's job reads the snapshot, as its container sees it, and
 * records whether it changed while it read (CLEAN or DIRTY).
 */
import { existsSync, mkdirSync, chownSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  cli,
  jobRecords,
  jobStarted,
  logLines,
  resetRoot,
  resetWorld,
  root,
  standin,
  startCli,
  unitState,
  waitUntil,
  world,
  writeStack,
} from './world.js';

const btrfs = world.BTRFS_DIR!;
const xfs = world.XFS_DIR!;
const paths = {
  snapbtrfs: { source: path.join(btrfs, 'snapbtrfs'), target: path.join(btrfs, 'snapshots', 'snapbtrfs') },
  snapxfs: { source: path.join(xfs, 'snapxfs'), target: path.join(xfs, 'snapshots', 'snapxfs') },
};
type SnapshotStack = keyof typeof paths;

function writeSnapshotStack(stack: SnapshotStack, driver: string): void {
  writeStack(stack, `duplicati_jobs: [${stack}]\nsnapshot:\n  driver: ${driver}\n  paths:\n    - source: ${paths[stack].source}\n      target: ${paths[stack].target}\n`);
}

const jobStartTimeoutMs = 120_000;
const journal = path.join(root, 'logs', 'journal.json');
const pendingUndos = () =>
  existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { entries: Array<{ undo: { kind: string; target?: string } }> }).entries.map((entry) => entry.undo) : [];
const endOf = (stack: string) => logLines(stack).filter((line) => line.msg === 'stack run end' || String(line.msg).startsWith('stack run failed')).at(-1);

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('snapshot mode', () => {
  for (const [stack, driver] of [
    ['snapbtrfs', 'btrfs'],
    ['snapxfs', 'reflink'],
    ['snapbtrfs', 'auto'],
  ] as Array<[SnapshotStack, string]>) {
    it(`${stack}, driver ${driver}: the job reads the snapshot while the stack runs again; CLEAN; no snapshot left`, async () => {
      writeSnapshotStack(stack, driver);
      await standin('set', 'duration', '4');
      const run = startCli([stack]);
      await waitUntil(`the ${stack} job to start`, () => jobStarted(stack), jobStartTimeoutMs);
      // The stack runs again while its job reads the snapshot.
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
      expect(existsSync(paths[stack].target)).toBe(true);
      const result = await run.finished;
      expect(result.code, result.stdout + result.stderr).toBe(0);
      const [record] = jobRecords().filter((entry) => entry.name === stack);
      expect(record?.verdict).toBe('CLEAN');
      expect(existsSync(paths[stack].target)).toBe(false);
      expect(existsSync(`${paths[stack].target}.stack-backup`)).toBe(false);
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
      const end = endOf(stack)!;
      expect(end).toMatchObject({ msg: 'stack run end', mode: 'snapshot' });
      // Down from the stop to the start only: the unit was started again before the job began,
      // so the 4 s it read are in the backup time, not in the downtime.
      const started = logLines(stack).filter((line) => line.step === 'start unit' && line.outcome === 'done').at(-1)!;
      expect(Date.parse(String(started.time))).toBeLessThanOrEqual(record!.startedAt);
      expect(end.backup_ms as number).toBeGreaterThanOrEqual(4000);
      expect(end.downtime_ms as number).toBeGreaterThan(0);
      expect(logLines(stack).some((line) => line.step === 'snapshot' && line.event === 'start' && line.driver === (driver === 'auto' ? 'btrfs' : driver))).toBe(true);
      expect(logLines(stack).some((line) => line.step === 'snapshot' && line.outcome === 'done')).toBe(true);
      expect(result.stderr).toMatch(new RegExp(`${stack}\\s.*snapshot mode`));
      expect(pendingUndos()).toEqual([]);
    });
  }

  it('a failing job: exit 1, no snapshot left, the stack running', async () => {
    writeSnapshotStack('snapxfs', 'reflink');
    await standin('set', 'outcome_snapxfs', 'Fatal');
    const result = await cli(['snapxfs']);
    expect(result.code).toBe(1);
    expect(existsSync(paths.snapxfs.target)).toBe(false);
    expect(await unitState('snapxfs-stack.service')).toBe('active');
    expect(endOf('snapxfs')!.error).toMatch(/snapxfs/);
    expect(pendingUndos()).toEqual([]);
  });

  it('SIGTERM mid-job (exec driver): exit 143, the stack running, the snapshot kept for the task and journaled; recover removes it once the job ended', async () => {
    writeSnapshotStack('snapbtrfs', 'btrfs');
    await standin('set', 'duration', '6');
    const run = startCli(['snapbtrfs']);
    await waitUntil('the snapbtrfs job to start', () => jobStarted('snapbtrfs'), jobStartTimeoutMs);
    run.child.kill('SIGTERM');
    const result = await run.finished;
    expect(result.code).toBe(143);
    expect(await unitState('snapbtrfs-stack.service')).toBe('active');
    // The task still reads it: it stays, listed in the journal.
    expect(existsSync(paths.snapbtrfs.target)).toBe(true);
    expect(pendingUndos()).toEqual([expect.objectContaining({ kind: 'remove-snapshot', target: paths.snapbtrfs.target })]);
    expect(logLines('snapbtrfs').some((line) => /snapshot .* kept: Duplicati may still run job snapbtrfs/.test(String(line.msg)))).toBe(true);
    await standin('wait-idle', '30');
    const [record] = jobRecords().filter((entry) => entry.name === 'snapbtrfs');
    expect(record?.verdict).toBe('CLEAN');
    const recovered = await cli(['recover']);
    expect(recovered.code, recovered.stdout + recovered.stderr).toBe(0);
    expect(existsSync(paths.snapbtrfs.target)).toBe(false);
    expect(pendingUndos()).toEqual([]);
  });

  it('SIGKILL mid-job, then recover: kept while the job runs (exit 1), removed once it has ended (exit 0)', async () => {
    writeSnapshotStack('snapxfs', 'reflink');
    await standin('set', 'duration', '8');
    const run = startCli(['snapxfs']);
    await waitUntil('the snapxfs job to start', () => jobStarted('snapxfs'), jobStartTimeoutMs);
    run.child.kill('SIGKILL');
    await run.finished;
    expect(await unitState('snapxfs-stack.service')).toBe('active');
    expect(pendingUndos()).toEqual([expect.objectContaining({ kind: 'remove-snapshot', target: paths.snapxfs.target })]);
    const early = await cli(['recover']);
    expect(early.code).toBe(1);
    expect(early.stdout).toMatch(/NOT RECOVERED: snapxfs: remove snapshot .*still runs or queues job snapxfs/);
    expect(existsSync(paths.snapxfs.target)).toBe(true);
    await standin('wait-idle', '30');
    const late = await cli(['recover']);
    expect(late.code, late.stdout + late.stderr).toBe(0);
    expect(existsSync(paths.snapxfs.target)).toBe(false);
    expect(pendingUndos()).toEqual([]);
  });

  it('a stale target that stack-backup did not make is refused, named, untouched; the stack never stopped', async () => {
    writeSnapshotStack('snapbtrfs', 'btrfs');
    mkdirSync(paths.snapbtrfs.target);
    chownSync(paths.snapbtrfs.target, Number(world.WORLD_UID), Number(world.WORLD_GID));
    try {
      const result = await cli(['snapbtrfs']);
      expect(result.code).toBe(1);
      expect(endOf('snapbtrfs')!.error).toMatch(new RegExp(`target ${paths.snapbtrfs.target} already exists and was not made by stack-backup`));
      expect(logLines('snapbtrfs').some((line) => line.step === 'stop unit')).toBe(false);
      expect(existsSync(paths.snapbtrfs.target)).toBe(true);
      expect(await unitState('snapbtrfs-stack.service')).toBe('active');
    } finally {
      rmSync(paths.snapbtrfs.target, { recursive: true, force: true });
    }
  });

  it('--dry-run prints the snapshot and its removal in their place, touching nothing', async () => {
    writeSnapshotStack('snapbtrfs', 'btrfs');
    const result = await cli(['--dry-run', 'snapbtrfs']);
    expect(result.code).toBe(0);
    const snapshotAt = result.stdout.indexOf(`btrfs subvolume snapshot -r -- ${paths.snapbtrfs.source} ${paths.snapbtrfs.target}`);
    expect(snapshotAt).toBeGreaterThan(result.stdout.indexOf('systemctl --user stop -- snapbtrfs-stack.service'));
    expect(snapshotAt).toBeLessThan(result.stdout.indexOf('systemctl --user start -- snapbtrfs-stack.service'));
    expect(result.stdout.indexOf(`btrfs property set -ts ${paths.snapbtrfs.target} ro false`)).toBeGreaterThan(result.stdout.indexOf('run -- snapbtrfs'));
    expect(existsSync(paths.snapbtrfs.target)).toBe(false);
  });
});

describe('doctor, snapshot mode', () => {
  it('passes for both stacks and prints the path each job must back up inside the container', async () => {
    writeSnapshotStack('snapbtrfs', 'auto');
    writeSnapshotStack('snapxfs', 'auto');
    const result = await cli(['doctor', 'snapbtrfs', 'snapxfs']);
    const lines = result.stdout.split('\n');
    expect(lines.filter((line) => line.startsWith('FAIL') && /snapshot|can see/.test(line))).toEqual([]);
    expect(result.stdout).toContain(`can see ${paths.snapbtrfs.target}, at /snapshots/btrfs/snapbtrfs`);
    expect(result.stdout).toContain(`can see ${paths.snapxfs.target}, at /snapshots/xfs/snapxfs`);
    // The world's Duplicati also has a volume of each live folder itself, which a restore's swap leaves on the old data.
    expect(result.stdout).toMatch(new RegExp(`WARN  after a restore of snapbtrfs, the Duplicati container sees the restored data: .*volume ${paths.snapbtrfs.source}:/live/snapbtrfs of ${paths.snapbtrfs.source} itself`));
  });

  it('fails on a source on ext4 and on a target the Duplicati container cannot see', async () => {
    // The container sees the whole btrfs through its writable restore volume (/restore/btrfs), so
    // the unseen target is a folder outside every volume of the container.
    const unseen = path.join(world.WORLD_DIR!, 'hidden', 'snapbtrfs');
    writeStack('snapbtrfs', `duplicati_jobs: [snapbtrfs]\nsnapshot:\n  paths:\n    - source: ${path.join(world.WORLD_DIR!, 'data', 'plainapp')}\n      target: ${path.join(world.WORLD_DIR!, 'data', 'plainapp-snapshot')}\n`);
    writeStack('snapxfs', `duplicati_jobs: [snapxfs]\nsnapshot:\n  driver: btrfs\n  paths:\n    - source: ${paths.snapbtrfs.source}\n      target: ${unseen}\n`);
    const result = await cli(['doctor', 'snapbtrfs', 'snapxfs']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAIL  stacks\/snapbtrfs\.yaml snapshot\.paths\[0\]: .* can be snapshotted .*: source .* is on ext2\/ext3, which cannot share blocks/);
    expect(result.stdout).toMatch(new RegExp(`FAIL  the Duplicati container "duplicati" can see ${unseen}: none of its volumes covers`));
  });
});
