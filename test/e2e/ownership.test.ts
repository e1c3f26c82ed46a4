/**
 * Never remove what stack-backup did not make, in the real world (loop-mounted btrfs and XFS,
 * the snapshot stacks): a user's folder at a snapshot target, with a marker left from an
 * earlier run or with a journal entry that names the target, is kept with its file and named;
 * a link at the target to the live data is never deleted through; targets that meet through a
 * link, or in two stacks, are refused before anything is touched; two roots that name one unit
 * never have it down at once.
 */
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { asUser, cli, jobStarted, logLines, resetRoot, resetWorld, root, standin, startCli, unitState, waitUntil, world, writeStack, writeUserFile, type Finished } from './world.js';

const btrfs = world.BTRFS_DIR!;
const xfs = world.XFS_DIR!;
const paths = {
  snapbtrfs: { source: path.join(btrfs, 'snapbtrfs'), target: path.join(btrfs, 'snapshots', 'snapbtrfs'), driver: 'btrfs' },
  snapxfs: { source: path.join(xfs, 'snapxfs'), target: path.join(xfs, 'snapshots', 'snapxfs'), driver: 'reflink' },
};
type SnapshotStack = keyof typeof paths;
const uid = Number(world.WORLD_UID);
const gid = Number(world.WORLD_GID);

function writeSnapshotStack(stack: SnapshotStack, entries: Array<{ source: string; target: string }> = [paths[stack]]): void {
  writeStack(
    stack,
    `duplicati_jobs: [${stack}]\nsnapshot:\n  driver: ${paths[stack].driver}\n  paths:\n${entries.map((entry) => `    - source: ${entry.source}\n      target: ${entry.target}\n`).join('')}`,
  );
}

/** A folder of the user's at the target, holding a file: what must survive. */
function usersFolder(target: string): string {
  mkdirSync(target);
  chownSync(target, uid, gid);
  const file = path.join(target, 'precious.txt');
  writeUserFile(file, 'the only copy\n');
  return file;
}

/** A crash-journal entry as a run that died would leave it (owned by the user, mode 600). */
function leaveJournalEntry(stack: string, undo: Record<string, unknown>): void {
  const entry = { id: `left-${stack}`, stack, run: 'dead-run', pid: 999_999, recordedAt: new Date().toISOString(), undo };
  writeUserFile(path.join(root, 'logs', 'journal.json'), `${JSON.stringify({ version: 1, entries: [entry] })}\n`, 0o600);
}

const journalEntries = () => {
  const file = path.join(root, 'logs', 'journal.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { entries: unknown[] }).entries : [];
};
const stopped = (stack: string) => logLines(stack).some((line) => line.step === 'stop unit');
/** What the user sees of the data through its own namespace: the 0600 file of container user 1000. */
const sourceState = async (stack: SnapshotStack) =>
  (await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'stat', '-c', '%a %u', path.join(paths[stack].source, 'db', 'state')])).stdout.trim();

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

const extraLinks: string[] = [];
afterEach(() => {
  for (const link of extraLinks.splice(0)) rmSync(link, { force: true });
});

describe("a folder of the user's at a snapshot target", () => {
  for (const stack of ['snapbtrfs', 'snapxfs'] as const) {
    it(`${stack}: with a marker left from an earlier run, it is kept with its file and named; the stack is never stopped`, async () => {
      writeSnapshotStack(stack);
      const file = usersFolder(paths[stack].target);
      // What an earlier version wrote: the marker says nothing of what it made.
      writeUserFile(`${paths[stack].target}.stack-backup`, `${JSON.stringify({ madeBy: 'stack-backup', owner: stack, driver: paths[stack].driver, source: paths[stack].source })}\n`);
      const result = await cli([stack]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`target ${paths[stack].target} already exists and was not made by stack-backup \\(.*does not say what stack-backup made there`));
      expect(readFileSync(file, 'utf8')).toBe('the only copy\n');
      expect(stopped(stack)).toBe(false);
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
    });

    it(`${stack}: with a pending journal entry that names it, recovery keeps it with its file and names it, and the run refuses the stack`, async () => {
      writeSnapshotStack(stack);
      const file = usersFolder(paths[stack].target);
      leaveJournalEntry(stack, { kind: 'remove-snapshot', driver: paths[stack].driver, source: paths[stack].source, target: paths[stack].target, jobs: [stack] });
      const result = await cli([stack]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`recovered: ${stack}: kept ${paths[stack].target}: the crash journal records no identity for it`));
      expect(result.stderr).toMatch(/already exists and was not made by stack-backup \(no .*\.stack-backup beside it\)/);
      expect(readFileSync(file, 'utf8')).toBe('the only copy\n');
      expect(journalEntries()).toEqual([]);
      expect(stopped(stack)).toBe(false);
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
    });
  }
});

describe('a link at a snapshot target', () => {
  it('pointing at the live subvolume, with a journal entry whose identity is that subvolume: recover never deletes through it; the source is intact', async () => {
    writeSnapshotStack('snapbtrfs');
    const before = await sourceState('snapbtrfs');
    expect(before).toBe('600 1000');
    symlinkSync(paths.snapbtrfs.source, paths.snapbtrfs.target);
    // The identity is exactly the source's: only the refusal to follow a link protects it.
    const identity = JSON.parse(
      (await asUser(['node', '--input-type=module', '-e', `const m = await import(${JSON.stringify(path.join(world.WORLD_APP!, 'dist/adapters/made-paths.js'))}); const p = await import(${JSON.stringify(path.join(world.WORLD_APP!, 'dist/adapters/process.js'))}); console.log(JSON.stringify((await m.createMadePaths(p.runCommand).look(${JSON.stringify(paths.snapbtrfs.source)})).identity))`])).stdout,
    );
    leaveJournalEntry('snapbtrfs', { kind: 'remove-snapshot', driver: 'btrfs', source: paths.snapbtrfs.source, target: paths.snapbtrfs.target, jobs: ['snapbtrfs'], made: { identity } });
    const dryRun = await cli(['recover', '--dry-run']);
    expect(dryRun.stdout).toMatch(/only if .*snapshots\/snapbtrfs is still the snapshot stack-backup made \(not a link/);
    const recovered = await cli(['recover']);
    expect(recovered.code, recovered.stdout + recovered.stderr).toBe(0);
    expect(recovered.stdout).toMatch(/kept .*snapshots\/snapbtrfs: .*symbolic link/);
    expect(lstatSync(paths.snapbtrfs.target).isSymbolicLink()).toBe(true);
    expect(await sourceState('snapbtrfs')).toBe(before);
    // And a run refuses the stack before touching it: the target resolves to the source.
    const result = await cli(['snapbtrfs']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/snapshot\.paths\[0\]\.target: .*snapshots\/snapbtrfs \(really .*btrfs\/snapbtrfs\) is the same folder as source/);
    expect(await sourceState('snapbtrfs')).toBe(before);
    expect(await unitState('snapbtrfs-stack.service')).toBe('active');
  });
});

describe('snapshot paths that meet by real path are refused before anything is touched (exit 2)', () => {
  it('two paths of one stack whose targets are one folder through a link', async () => {
    const link = path.join(xfs, 'snaplink');
    extraLinks.push(link);
    symlinkSync(path.join(xfs, 'snapshots'), link);
    writeSnapshotStack('snapxfs', [
      { source: paths.snapxfs.source, target: path.join(xfs, 'snapshots', 'one') },
      { source: path.join(xfs, 'snapxfs', 'db'), target: path.join(link, 'one') },
    ]);
    const result = await cli(['snapxfs']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/stacks\/snapxfs\.yaml: snapshot\.paths\[0\]\.target: .*is the same folder as target .*snaplink\/one .*\(stacks\/snapxfs\.yaml snapshot\.paths\[1\]\.target\)/);
    expect(logLines('snapxfs')).toEqual([]);
  });

  it('two stacks with one target, when only one is run; doctor says the same', async () => {
    const shared = path.join(btrfs, 'snapshots', 'shared');
    writeSnapshotStack('snapbtrfs', [{ source: paths.snapbtrfs.source, target: shared }]);
    writeSnapshotStack('snapxfs', [{ source: paths.snapxfs.source, target: shared }]);
    const result = await cli(['snapbtrfs']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/stacks\/snapbtrfs\.yaml: snapshot\.paths\[0\]\.target: .*shared is the same folder as target .*shared \(stacks\/snapxfs\.yaml snapshot\.paths\[0\]\.target\)/);
    const doctor = await cli(['doctor']);
    expect(doctor.stdout).toMatch(/FAIL .*stacks\/snapbtrfs\.yaml: snapshot\.paths\[0\]\.target: .*stacks\/snapxfs\.yaml/);
    expect(await unitState('snapbtrfs-stack.service')).toBe('active');
  });

  it('a target under a folder that is a link into the source', async () => {
    const link = path.join(btrfs, 'snapshots', 'into-source');
    symlinkSync(paths.snapbtrfs.source, link);
    writeSnapshotStack('snapbtrfs', [{ source: paths.snapbtrfs.source, target: path.join(link, 'snap') }]);
    const result = await cli(['snapbtrfs']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/snapshot\.paths\[0\]\.target: .*into-source\/snap \(really .*btrfs\/snapbtrfs\/snap\) lies inside source .*btrfs\/snapbtrfs/);
    expect(existsSync(path.join(paths.snapbtrfs.source, 'snap'))).toBe(false);
    expect(await unitState('snapbtrfs-stack.service')).toBe('active');
  });
});

describe('one unit, one run', () => {
  it('two roots that name one unit, started together: one is refused (exit 75, naming the other root), the stack runs at the end', async () => {
    const otherRoot = path.join(world.WORLD_DIR!, 'root-other');
    rmSync(otherRoot, { recursive: true, force: true });
    for (const folder of ['', 'stacks', 'logs', 'hooks']) {
      mkdirSync(path.join(otherRoot, folder), { recursive: true, mode: 0o755 });
      chownSync(path.join(otherRoot, folder), uid, gid);
    }
    writeUserFile(path.join(otherRoot, 'stacks', 'plainapp.yaml'), 'duplicati_jobs: [plainapp]\n');
    writeFileSync(path.join(root, 'stacks', 'plainapp.yaml'), 'duplicati_jobs: [plainapp]\n');
    await standin('set', 'duration', '4');
    const first = startCli(['plainapp']);
    await waitUntil('the plainapp job to start', () => jobStarted('plainapp'), 120_000);
    // The first run has the stack down now; the second root's run must not touch it.
    const second: Finished = await asUser(['node', world.WORLD_CLI!, '--root', otherRoot, 'plainapp']);
    expect(second.code).toBe(75);
    expect(second.stderr).toContain(`another stack-backup run (root ${root}) is backing up or restoring unit plainapp-stack.service now`);
    const firstResult = await first.finished;
    expect(firstResult.code, firstResult.stderr).toBe(0);
    expect(await unitState('plainapp-stack.service')).toBe('active');
    rmSync(otherRoot, { recursive: true, force: true });
  });
});
