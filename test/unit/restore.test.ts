/**
 * `stack-backup restore` against the fakes: the versions chosen exactly, the data paths found
 * from the jobs' sources and the Duplicati container's volumes, and the sequence: stopped,
 * restored into a staging folder, swapped into place, started, verified; and whatever fails,
 * the live data is never worse than before and the stack runs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { createJournal } from '../../src/journal/journal.js';
import { recoverPending } from '../../src/recover.js';
import { createProgress } from '../../src/report/report.js';
import { chooseVersions, parseRestoreTime, type JobVersions } from '../../src/restore/choose.js';
import type { RestoreRun } from '../../src/restore/context.js';
import { dataPathsOf } from '../../src/restore/data-paths.js';
import { restoreStack } from '../../src/restore/orchestrator.js';
import { planRestore, restoreSteps } from '../../src/restore/sequence.js';
import type { StackConfig } from '../../src/config/types.js';
import { UndoStack } from '../../src/journal/undo.js';
import { FakeWorld, MemoryLog, globalConfig, hooks, removeTempRoots, restoreWorld, stackConfig, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';
const live = '/srv/data/app';
const staging = `${live}.stack-backup-restore-run-0000-fake`;
const old = `${live}.stack-backup-old-run-0000-fake`;

const volumes = [
  { source: '/srv/data', destination: '/source', writable: false },
  { source: '/srv/data', destination: '/restore/data', writable: true },
];

async function restore(world: FakeWorld, options: { stack?: StackConfig; version?: number; journal?: ReturnType<typeof createJournal>; signal?: AbortSignal } = {}) {
  const stack = options.stack ?? stackConfig();
  const global = globalConfig();
  const versions = await world.duplicati.versions('1');
  const [choice] = chooseVersions([{ job: 'app', backupId: '1', versions }], { version: options.version ?? 1 }, 'app');
  const log = new MemoryLog();
  const run: RestoreRun = {
    runId: 'run-0000-fake',
    stack,
    global,
    adapters: world.adapters(),
    log,
    undo: new UndoStack(options.journal, undefined, world.clock),
    signal: options.signal ?? new AbortController().signal,
    timings: {},
    jobResults: [],
    restore: { choices: [choice!], paths: [], staged: new Map(), restored: [], swapped: [], keepOld: stack.restore.keepOld },
  };
  const result = await restoreStack(run, restoreSteps({ stack, global, choices: [choice!] }));
  return { result, log };
}

const visible = (world: FakeWorld) => world.actions.filter((action) => action !== 'duplicati status' && !action.startsWith('check '));
const dataAt = (world: FakeWorld, folder: string) => world.madePaths.folders.get(folder)?.data;

describe('choosing the version', () => {
  const jobs: JobVersions[] = [
    {
      job: 'app',
      backupId: '1',
      versions: [
        { version: 0, time: '2026-11-30T02:00:00.000Z', fileCount: 42, sizeBytes: 1, duplicatiTime: 'a' },
        { version: 1, time: '2026-11-29T02:00:00.000Z', fileCount: 40, sizeBytes: 1, duplicatiTime: 'b' },
      ],
    },
    { job: 'db', backupId: '2', versions: [{ version: 0, time: '2026-11-29T03:00:00.000Z', fileCount: 3, sizeBytes: 1, duplicatiTime: 'c' }] },
  ];

  it('takes the newest by default, and for --time each job\'s newest at or before it', () => {
    expect(chooseVersions(jobs, {}, 'app').map((choice) => [choice.job, choice.version.version])).toEqual([
      ['app', 0],
      ['db', 0],
    ]);
    const time = Date.parse('2026-11-29T12:00:00Z');
    expect(chooseVersions(jobs, { time }, 'app').map((choice) => [choice.job, choice.version.time])).toEqual([
      ['app', '2026-11-29T02:00:00.000Z'],
      ['db', '2026-11-29T03:00:00.000Z'],
    ]);
  });

  it('refuses what does not exist (exit 2) instead of Duplicati\'s silent newest, and --version with several jobs without --job', () => {
    expect(() => chooseVersions(jobs, { time: Date.parse('2026-11-01T00:00:00Z') }, 'app')).toThrow(UsageError);
    expect(() => chooseVersions(jobs, { time: Date.parse('2026-11-01T00:00:00Z') }, 'app')).toThrow(/job app has no version at or before 2026-11-01T00:00:00.000Z \(its oldest is version 1 \(2026-11-29T02:00:00.000Z\)\); Duplicati would silently restore the newest instead/);
    expect(() => chooseVersions(jobs, { version: 1 }, 'app')).toThrow(/--version is a version of one job, and stack app has 2 \(app, db\): name it with --job/);
    expect(() => chooseVersions(jobs, { version: 5, job: 'app' }, 'app')).toThrow(/job app has no version 5 \(it has version 0 .*version 1/);
    expect(chooseVersions(jobs, { version: 1, job: 'app' }, 'app').map((choice) => choice.version.time)).toEqual(['2026-11-29T02:00:00.000Z']);
    expect(() => chooseVersions(jobs, { job: 'nope' }, 'app')).toThrow(/--job nope: stack app has no such job/);
  });

  it('reads --time as a whole day or a local time, with a zone where given', () => {
    expect(parseRestoreTime('2026-11-30')).toBe(new Date(2026, 10, 30, 23, 59, 59, 999).getTime());
    expect(parseRestoreTime('2026-11-30T02:00')).toBe(new Date(2026, 10, 30, 2, 0, 0).getTime());
    expect(parseRestoreTime('2026-11-30T02:00:30Z')).toBe(Date.UTC(2026, 10, 30, 2, 0, 30));
    expect(parseRestoreTime('2026-11-30T02:00+02:00')).toBe(Date.UTC(2026, 10, 30, 0, 0, 0));
    for (const bad of ['yesterday', '2026-13-01', '2026-02-31', '1700000000', '2026-11-30T25:00']) expect(parseRestoreTime(bad)).toBeUndefined();
  });
});

describe('the data paths', () => {
  const stack = stackConfig();
  const jobs = [{ job: 'app', backupId: '1', sources: ['/source/app/'] }];

  it('maps each job source to the host through the volume holding it, and stages beside it through a writable one', () => {
    const { paths, problems } = dataPathsOf({ stack, jobs, mounts: volumes, run: 'r1', container: 'duplicati' });
    expect(problems).toEqual([]);
    expect(paths).toEqual([
      { job: 'app', backupId: '1', source: '/source/app', live: '/srv/data/app', kind: 'folder', staging: '/srv/data/app.stack-backup-restore-r1', stagingInContainer: '/restore/data/app.stack-backup-restore-r1', old: '/srv/data/app.stack-backup-old-r1' },
    ]);
  });

  it('refuses a source that is a volume of its own (after the swap the container would see the old data), one on no volume, and no writable parent', () => {
    const own = dataPathsOf({ stack, jobs, mounts: [{ source: '/srv/data/app', destination: '/source/app', writable: true }], run: 'r1', container: 'duplicati' });
    expect(own.problems.join('\n')).toMatch(/its source \/source\/app\/ is the volume \/srv\/data\/app:\/source\/app itself: after the swap the container would keep seeing the old data there .*mount its parent folder \/srv\/data instead/);
    expect(dataPathsOf({ stack, jobs, mounts: [], run: 'r1', container: 'duplicati' }).problems.join('\n')).toMatch(/is on no volume of the Duplicati container/);
    expect(dataPathsOf({ stack, jobs, mounts: [volumes[0]!], run: 'r1', container: 'duplicati' }).problems.join('\n')).toMatch(/cannot write beside \/srv\/data\/app, where its restore is staged: add a writable volume of its folder, e.g. -v \/srv\/data:/);
  });

  it('a restore test, which swaps nothing, reads a source that is a volume of its own, and restores its sample beside it through a writable parent', () => {
    const mounts = [
      { source: '/srv/data/app', destination: '/source/app', writable: false },
      { source: '/srv/data', destination: '/restore/data', writable: true },
    ];
    const { paths, problems } = dataPathsOf({ stack, jobs, mounts, run: 'r1', container: 'duplicati', purpose: 'restore test' });
    expect(problems).toEqual([]);
    expect(paths.map((entry) => entry.live)).toEqual(['/srv/data/app']);
    expect(dataPathsOf({ stack, jobs, mounts, run: 'r1', container: 'duplicati' }).problems.join('\n')).toMatch(/is the volume \/srv\/data\/app:\/source\/app itself/);
    expect(dataPathsOf({ stack, jobs, mounts: [mounts[0]!], run: 'r1', container: 'duplicati', purpose: 'restore test' }).problems.join('\n')).toMatch(/cannot write beside \/srv\/data\/app, where the restore test restores its sample/);
  });

  it('snapshot mode: each snapshot source is a data path, held by the job that backs up its target', () => {
    const snapshotStack = stackConfig({ snapshot: { driver: 'btrfs', paths: [{ source: '/srv/btrfs/app', target: '/srv/btrfs/snapshots/app' }] } });
    const mounts = [
      { source: '/srv/btrfs/snapshots', destination: '/snapshots', writable: false },
      { source: '/srv/btrfs', destination: '/restore/btrfs', writable: true },
    ];
    const { paths, problems } = dataPathsOf({ stack: snapshotStack, jobs: [{ job: 'app', backupId: '1', sources: ['/snapshots/app/'] }], mounts, run: 'r1', container: 'duplicati', subvolumes: new Set(['/srv/btrfs/app']) });
    expect(problems).toEqual([]);
    expect(paths).toMatchObject([{ source: '/snapshots/app', live: '/srv/btrfs/app', kind: 'btrfs-subvolume', stagingInContainer: '/restore/btrfs/app.stack-backup-restore-r1' }]);
  });

  it('snapshot mode: a volume of the source itself, or of a folder in it, is a warning (it keeps showing the old data after the swap); a parent volume is none', () => {
    const snapshotStack = stackConfig({ snapshot: { driver: 'btrfs', paths: [{ source: '/srv/btrfs/app', target: '/srv/btrfs/snapshots/app' }] } });
    const mounts = [
      { source: '/srv/btrfs/snapshots', destination: '/snapshots', writable: false },
      { source: '/srv/btrfs', destination: '/restore/btrfs', writable: true },
    ];
    const input = { stack: snapshotStack, jobs: [{ job: 'app', backupId: '1', sources: ['/snapshots/app/'] }], run: 'r1', container: 'duplicati' };
    expect(dataPathsOf({ ...input, mounts }).warnings).toEqual([]);
    const pinned = dataPathsOf({ ...input, mounts: [...mounts, { source: '/srv/btrfs/app', destination: '/live/app', writable: false }, { source: '/srv/btrfs/app/db', destination: '/db', writable: false }] });
    expect(pinned.problems).toEqual([]);
    expect(pinned.paths).toHaveLength(1);
    expect(pinned.warnings).toHaveLength(2);
    expect(pinned.warnings[0]).toMatch(/the volume \/srv\/btrfs\/app:\/live\/app of \/srv\/btrfs\/app itself .*keeps showing the old data.*mount the parent folder \/srv\/btrfs instead/);
    expect(pinned.warnings[1]).toMatch(/the volume \/srv\/btrfs\/app\/db:\/db of/);
    // A restore test swaps nothing: no warning.
    expect(dataPathsOf({ ...input, mounts: [...mounts, { source: '/srv/btrfs/app', destination: '/live/app', writable: false }], purpose: 'restore test' }).warnings).toEqual([]);
  });
});

describe('a restore', () => {
  it('stops the stack, restores into a new folder beside the data, swaps it in by rename, starts it; the old data is kept', async () => {
    const world = restoreWorld();
    const { result } = await restore(world);
    expect(result.ok).toBe(true);
    expect(result.restored).toBe(true);
    expect(visible(world)).toEqual([
      `stop ${unit}`,
      `make ${staging}`,
      'duplicati pause',
      'duplicati restore app version 1 -> /restore/data/app.stack-backup-restore-run-0000-fake',
      'duplicati resume',
      `attributes ${live} -> ${staging}`,
      `rename ${live} -> ${old}`,
      `rename ${staging} -> ${live}`,
      `start ${unit}`,
    ]);
    expect(dataAt(world, live)).toBe('version of the 29th');
    expect(dataAt(world, old)).toBe('live data');
    expect(world.madePaths.folders.has(staging)).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(result.paths).toEqual([{ path: live, job: 'app', files: 40, bytes: 40_000, old, restoredCopy: null }]);
    expect(result.downtimeMs).toBe(world.timeOf(`start ${unit}`)! - world.timeOf(`stop ${unit}`)!);
  });

  it('restore.keep_old false: the old data goes once the restored stack passed its verify hooks', async () => {
    const world = restoreWorld();
    const { result } = await restore(world, { stack: stackConfig({ restore: { keepOld: false } }) });
    expect(result.ok).toBe(true);
    expect(world.madePaths.folders.has(old)).toBe(false);
    expect(visible(world).at(-1)).toBe(`remove ${old}`);
    expect(result.paths[0]!.old).toBeNull();
  });

  for (const [fault, message] of [
    ['zero', /Duplicati restored 0 of the 40 files and links .* \(and called it a success\)/],
    ['fail', /ended Fatal: File hash mismatch/],
    ['warning', /ended with warnings, and a restored copy must be exact: Failed to apply metadata/],
  ] as const) {
    it(`a restore that ${fault === 'zero' ? 'completes with 0 files' : fault === 'fail' ? 'fails half-way' : 'ends with a warning'}: the live data is untouched, the staging folder removed, the stack started; exit 1 naming it`, async () => {
      const world = restoreWorld();
      world.duplicati.restoreFault = fault;
      const root = tempRoot();
      const journal = createJournal(root, 'run-0000-fake');
      const { result } = await restore(world, { journal });
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(message);
      expect(result.restored).toBe(false);
      expect(dataAt(world, live)).toBe('live data');
      expect(world.madePaths.folders.has(staging)).toBe(false);
      expect(world.state(unit)).toBe('active');
      // The stack first, the staging folder after it; nothing left in the journal.
      expect(visible(world).slice(-3)).toEqual(['duplicati resume', `start ${unit}`, `remove ${staging}`]);
      expect(journal.pending()).toEqual([]);
    });
  }

  it('a verify hook that fails on the restored data: stopped again, the old data swapped back, started; the restored copy kept and named', async () => {
    const world = restoreWorld();
    world.hookResults.set('check app', { exitCode: 1, output: 'app says: database schema too new\n' });
    const { result } = await restore(world, { stack: stackConfig({ hooks: hooks({ verify: ['check app'] }) }) });
    expect(result.ok).toBe(false);
    expect(result.rolledBack).toBe(true);
    expect(result.error).toMatch(/verify hook "check app" failed/);
    expect(dataAt(world, live)).toBe('live data');
    expect(dataAt(world, staging)).toBe('version of the 29th');
    expect(result.paths[0]).toMatchObject({ old: null, restoredCopy: staging });
    expect(visible(world).slice(-7)).toEqual([
      `rename ${staging} -> ${live}`,
      `start ${unit}`,
      'hook verify: check app',
      `stop ${unit}`,
      `rename ${live} -> ${staging}`,
      `rename ${old} -> ${live}`,
      `start ${unit}`,
    ]);
    expect(world.state(unit)).toBe('active');
  });

  it('SIGTERM while Duplicati restores: the restore is ended, the live data untouched, the stack started', async () => {
    const world = restoreWorld();
    const controller = new AbortController();
    world.duplicati.onRestore = () => controller.abort(new (class extends Error {})('aborted by SIGTERM'));
    const { result } = await restore(world, { signal: controller.signal });
    expect(result.ok).toBe(false);
    expect(dataAt(world, live)).toBe('live data');
    expect(world.madePaths.folders.has(staging)).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(world.duplicati.paused).toBe(false);
  });

  it('a release that lands a job one folder deeper: its contents are moved up before the swap', async () => {
    const world = restoreWorld();
    world.duplicati.restoreFault = 'deeper';
    const { result } = await restore(world);
    expect(result.ok, result.error).toBe(true);
    expect(visible(world)).toContain(`lift ${staging}/app`);
  });

  it('a run that dies between the two renames: recover leaves the path wholly old, and the stack running', async () => {
    const world = restoreWorld();
    const root = tempRoot();
    const journal = createJournal(root, 'run-0000-fake');
    const file = path.join(root, 'logs', 'journal.json');
    let leftJournal: string | undefined;
    let leftFolders: typeof world.madePaths.folders | undefined;
    world.onAction = (action) => {
      // Just after the first rename (onAction runs before the change is recorded as done): what a SIGKILL after it would leave.
      if (action === `rename ${staging} -> ${live}` && leftJournal === undefined) {
        leftJournal = readFileSync(file, 'utf8');
        leftFolders = new Map([...world.madePaths.folders].map(([key, value]) => [key, { ...value }]));
        leftFolders.set(staging, leftFolders.get(live)!);
        leftFolders.delete(live);
      }
    };
    await restore(world, { journal });
    // The world as the killed run left it: the unit down, the live name empty, the journal as it was.
    writeFileSync(file, leftJournal!);
    world.madePaths.folders.clear();
    for (const [key, value] of leftFolders!) world.madePaths.folders.set(key, value);
    world.unit(unit, 'inactive');
    expect(createJournal(root, 'reader').pending().map((entry) => entry.undo.kind)).toEqual(['restore-unit', 'remove-made', 'rename-back', 'rename-back']);
    const adapters = world.adapters();
    const report = await recoverPending(root, createJournal(root, 'recover'), 'recover', { ...adapters, duplicati: () => adapters.duplicati, progress: createProgress({ write: () => {} }, world.clock) });
    expect(report.failed).toEqual([]);
    expect(dataAt(world, live)).toBe('live data');
    expect(world.madePaths.folders.has(old)).toBe(false);
    expect(world.madePaths.folders.has(staging)).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(createJournal(root, 'reader').pending()).toEqual([]);
  });

  it('the dry run prints the same steps, with their commands and undos', () => {
    const stack = stackConfig();
    const { paths } = dataPathsOf({ stack, jobs: [{ job: 'app', backupId: '1', sources: ['/source/app/'] }], mounts: volumes, run: 'RUN', container: 'duplicati' });
    const lines = planRestore({ stack, global: globalConfig(), paths, choices: [{ job: 'app', backupId: '1', version: { version: 1, time: '2026-11-29T02:00:00.000Z', fileCount: 40, sizeBytes: 1, duplicatiTime: 'b' } }] }).join('\n');
    expect(lines).toMatch(/1\. preflight[\s\S]*stop unit \(first registers its undo: restore unit\)[\s\S]*make staging folders[\s\S]*pause the Duplicati server \(first registers its undo: resume the Duplicati server\)[\s\S]*restore into staging[\s\S]*duplicati-cli[\s\S]*--version=1 --overwrite=false --restore-permissions=true --skip-metadata=false[\s\S]*swap into place \(first registers its undo: rename back\)[\s\S]*start the stack/);
    expect(restoreSteps({ stack, global: globalConfig(), choices: [] }).map((step) => step.name)).toEqual([
      'preflight',
      'wait for Duplicati to be idle',
      'stop unit',
      'wait for the stack to be down',
      'make staging folders',
      'pause the Duplicati server',
      'restore into staging',
      'resume the Duplicati server',
      'swap into place',
      'start the stack',
    ]);
  });
});
