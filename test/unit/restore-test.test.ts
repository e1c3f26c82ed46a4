/**
 * The restore test after a backup, against the fakes: a sample of the frozen source, read while
 * the stack is down (stop mode) or from the snapshots, restored from the version just made into
 * a scratch folder and compared exactly; each fault a backup can hide (a file kept out, a file
 * stored wrong, owners lost) fails it, named; the scratch folder always goes; the stack's
 * downtime does not grow.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backedUpBy } from '../../src/restore-test/filters.js';
import { compare, differences, landingOf, pickSample, sampleCount } from '../../src/restore-test/compare.js';
import type { FileFacts } from '../../src/adapters/source-files.js';
import type { StackConfig } from '../../src/config/types.js';
import { FakeWorld, removeTempRoots, runStack, stackConfig, worldWithStack } from '../fakes.js';
import { UndoStack } from '../../src/journal/undo.js';
import { backupStack } from '../../src/backup/orchestrator.js';
import { MemoryLog, globalConfig } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';
const live = '/srv/data/app';
const scratch = `${live}.stack-backup-test-run-0000-fake`;

function testWorld(): FakeWorld {
  const world = worldWithStack('active');
  world.containerMounts.set('duplicati', [
    { source: '/srv/data', destination: '/source', writable: false },
    { source: '/srv/data', destination: '/restore/data', writable: true },
  ]);
  world.duplicati.sources.set('1', ['/source/app/']);
  world.duplicati.jobSources = async (backupId) => world.duplicati.sources.get(backupId) ?? [];
  world.sourceFiles.file(live, 'db/state', { uid: '1000', gid: '1000', mode: '600' });
  world.sourceFiles.file(live, 'db/journal', { uid: '1000', gid: '1000', mode: '600' });
  world.sourceFiles.file(live, 'bin/run.sh', { mode: '755' });
  world.sourceFiles.file(live, 'current', { type: 'symlink', target: 'db/state', hash: undefined });
  world.sourceFiles.file(live, 'notes.txt');
  return world;
}

const testing = (overrides: Partial<StackConfig> = {}) => stackConfig({ restoreTest: { sample: 'all', intervalMs: 0, countTolerancePercent: 0 }, ...overrides });

describe('a restore test in stop mode', () => {
  it('reads the sample while the stack is down, restores it after the start, finds every file identical, and removes its scratch folder', async () => {
    const world = testWorld();
    const { result, log } = await runStack(world, testing());
    expect(result.ok, result.error).toBe(true);
    expect(result.restoreTest).toMatchObject({ passed: true, tested: 5, identical: 5, mismatches: 0, sourceFiles: 5, versionFiles: 5 });
    expect(result.restoreTest!.lines[0]).toMatch(/^restore test: 5 of 5 files identical \(\d+ B\) in \d+\.\d s$/);
    // The frozen source was read while the stack was down.
    const stopped = world.timeOf(`stop ${unit}`)!;
    const started = world.timeOf(`start ${unit}`)!;
    for (const read of world.sourceFiles.reads.filter((entry) => entry.read.includes(`${live} `) || entry.read === `list ${live}`)) {
      expect(read.at).toBeGreaterThanOrEqual(stopped);
      expect(read.at).toBeLessThanOrEqual(started);
    }
    // Restored after the start, then the scratch folder went.
    expect(world.actions.indexOf(`make ${scratch}`)).toBeGreaterThan(world.actions.indexOf(`start ${unit}`));
    expect(world.actions).toContain(`remove ${scratch}`);
    expect(world.madePaths.folders.has(scratch)).toBe(false);
    expect(log.messages('info')).toContainEqual(expect.stringMatching(/^restore test: 5 of 5 files identical/));
    // Not part of the downtime.
    expect(result.downtimeMs).toBe(started - stopped);
  });

  for (const [name, arrange, expected] of [
    ['a file the version lacks (kept out)', (world: FakeWorld) => world.duplicati.keepOut.add('/source/app/db/journal'), /db\/journal: not restored[\s\S]*the version holds 4 files and links, the frozen source 5 \(20\.0% apart, count_tolerance 0%\)/],
    ['a file stored with other contents', (world: FakeWorld) => world.duplicati.corrupt.add('/source/app/notes.txt'), /notes\.txt: contents differ/],
    ['owners lost on restore', (world: FakeWorld) => (world.duplicati.loseOwners = true), /db\/state: mode 644, not 600, owner 0:0, not 1000:1000/],
  ] as Array<[string, (world: FakeWorld) => void, RegExp]>) {
    it(`${name}: the test fails, naming the file and what differs; the stack runs; the backup is not undone`, async () => {
      const world = testWorld();
      arrange(world);
      const { result } = await runStack(world, testing());
      expect(result.ok).toBe(false);
      expect(result.restoreTest!.passed).toBe(false);
      expect(result.restoreTest!.lines.join('\n')).toMatch(expected);
      expect(result.error).toMatch(/^restore test: \d of 5 files identical/);
      expect(world.state(unit)).toBe('active');
      expect(world.duplicati.stored.get('1')).toHaveLength(1);
      expect(world.madePaths.folders.has(scratch)).toBe(false);
    });
  }

  it('a sample of 2: two files, picked at random, each where Duplicati puts it', async () => {
    const world = testWorld();
    const { result } = await runStack(world, testing({ restoreTest: { sample: { count: 2 }, intervalMs: 0, countTolerancePercent: 0 } }));
    expect(result.ok, result.error).toBe(true);
    expect(result.restoreTest).toMatchObject({ tested: 2, identical: 2 });
  });

  it('not due (interval): no test, no reading, and the run says so', async () => {
    const world = testWorld();
    const log = new MemoryLog();
    const result = await backupStack({
      runId: 'run-0000-fake',
      stack: testing({ restoreTest: { sample: 'all', intervalMs: 86_400_000, countTolerancePercent: 0 } }),
      global: globalConfig(),
      adapters: world.adapters(),
      log,
      undo: new UndoStack(undefined, undefined, world.clock),
      signal: new AbortController().signal,
      timings: {},
      jobResults: [],
      lastPassingTestAt: world.clock.now() - 3_600_000,
    });
    expect(result.ok).toBe(true);
    expect(result.restoreTest).toMatchObject({ passed: true, skipped: expect.stringMatching(/^not due: the last passing test was 3600 s ago/) });
    expect(world.sourceFiles.reads).toEqual([]);
  });

  it('a failing job: no test (the reading ends before the stack starts again)', async () => {
    const world = testWorld();
    world.duplicati.resultKind = 'Error';
    const { result } = await runStack(world, testing());
    expect(result.ok).toBe(false);
    expect(result.restoreTest).toBeUndefined();
    expect(world.madePaths.folders.has(scratch)).toBe(false);
  });
});

describe('a restore test in snapshot mode', () => {
  it('reads the snapshot, restores and compares before the snapshot goes, with the stack running', async () => {
    const world = testWorld();
    const target = '/srv/snapshots/app';
    world.snapshots.source(live);
    world.containerMounts.set('duplicati', [
      { source: '/srv/snapshots', destination: '/snapshots', writable: false },
      { source: '/srv/data', destination: '/restore/data', writable: true },
    ]);
    world.duplicati.sources.set('1', ['/snapshots/app/']);
    const { result } = await runStack(world, testing({ snapshot: { driver: 'btrfs', paths: [{ source: live, target }] } }));
    expect(result.ok, result.error).toBe(true);
    expect(result.restoreTest).toMatchObject({ passed: true, tested: 5 });
    expect(world.sourceFiles.reads.map((entry) => entry.read)).toContain(`list ${target}`);
    const at = (action: string) => world.actions.indexOf(action);
    expect(at(`make ${scratch}`)).toBeGreaterThan(at(`start ${unit}`));
    expect(at(`remove ${scratch}`)).toBeLessThan(at(`remove snapshot ${target}`));
  });
});

describe('the pure parts', () => {
  const file = (path: string, facts: Partial<FileFacts> = {}): FileFacts => ({ path, type: 'file', size: 3, mode: '600', uid: '1000', gid: '1000', mtime: '1800000000.123456789', hash: 'h', ...facts });

  it('lands a sample relative to its common folder, which changes with the sample', () => {
    expect(landingOf(['/s/app/db/state', '/s/app/db/journal']).prefix).toBe('/s/app/db/');
    expect(landingOf(['/s/app/db/state', '/s/app/bin/run.sh']).relative('/s/app/bin/run.sh')).toBe('bin/run.sh');
    expect(landingOf(['/s/app/notes.txt']).relative('/s/app/notes.txt')).toBe('notes.txt');
  });

  it('picks each file as likely as any other, and as many as asked', () => {
    const paths = ['a', 'b', 'c', 'd', 'e'];
    expect(pickSample(paths, 2, () => 0)).toEqual(['a', 'b']);
    expect(pickSample(paths, 2, (below) => below - 1)).toEqual(['a', 'e']);
    expect(sampleCount({ percent: 2 }, 1000)).toBe(20);
    expect(sampleCount({ percent: 2 }, 10)).toBe(1);
    expect(sampleCount({ count: 20 }, 7)).toBe(7);
    expect(sampleCount('all', 7)).toBe(7);
  });

  it('compares at what Duplicati keeps: mtime at 100 ns, a link by its target only', () => {
    expect(differences(file('a'), file('a', { mtime: '1800000000.123456700' }))).toEqual([]);
    expect(differences(file('a'), file('a', { mtime: '1800000000.123456600' }))).toEqual(['mtime 1800000000.1234566, not 1800000000.1234567']);
    expect(differences(file('l', { type: 'symlink', target: 'x' }), file('l', { type: 'symlink', target: 'x', uid: '0', mode: '777' }))).toEqual([]);
    expect(compare([file('a'), file('b')], new Map([['a', file('a')]]))).toMatchObject({ tested: 2, identical: 1, mismatchCount: 1, mismatches: [{ path: 'b', differences: ['not restored'] }] });
  });

  it("reads a job's filters: the first that matches decides, an excluded folder's contents are left out, a group cannot be read", () => {
    const test = backedUpBy([
      { include: false, expression: '/source/app/cache/' },
      { include: false, expression: '*.tmp' },
      { include: false, expression: '[.*/thumbnails/.*]' },
    ])!;
    expect(test('/source/app/db/state')).toBe(true);
    expect(test('/source/app/cache/x/y')).toBe(false);
    expect(test('/source/app/upload.tmp')).toBe(false);
    expect(test('/source/app/a/thumbnails/b.png')).toBe(false);
    expect(backedUpBy([{ include: false, expression: '{SystemFiles}' }])).toBeUndefined();
  });
});
