/**
 * The restores that leave the stack alone, against the fakes: `restore --to DIR` walks its own
 * list (no stop, no swap, no start), and `restore --prune` one step per kept copy; the dry run of
 * each prints that same list and touches nothing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chooseVersions } from '../../src/restore/choose.js';
import { dataPathsOf } from '../../src/restore/data-paths.js';
import { planRestoreTo, restoreTo, restoreToSteps } from '../../src/restore/into-folder.js';
import { addKeptCopies, readKeptCopies, type KeptCopy } from '../../src/restore/kept-copies.js';
import { planPrune, pruneKept } from '../../src/restore/prune.js';
import { createProgress } from '../../src/report/report.js';
import { FakeWorld, globalConfig, removeTempRoots, restoreWorld, stackConfig, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';
const live = '/srv/data/app';
const volumes = [
  { source: '/srv/data', destination: '/source', writable: false },
  { source: '/srv/data', destination: '/restore/data', writable: true },
  { source: '/srv/picked', destination: '/picked', writable: true },
];
const silent = () => createProgress({ write: () => {} }, new FakeWorld().clock);

function pickingWorld(): FakeWorld {
  const world = restoreWorld(volumes);
  world.madePaths.folder('/srv/picked', 'the user\'s folder');
  return world;
}

async function choicesOf(world: FakeWorld) {
  return chooseVersions([{ job: 'app', backupId: '1', versions: await world.duplicati.versions('1') }], { version: 1 }, 'app');
}

describe('restore --to DIR', () => {
  it('restores the version into DIR/NAME, and never stops, swaps or starts the stack', async () => {
    const world = pickingWorld();
    const root = tempRoot();
    const global = globalConfig({ root });
    const result = await restoreTo({ global, stack: stackConfig(), choices: await choicesOf(world), adapters: world.adapters(), progress: silent(), output: { write: () => {} }, signal: new AbortController().signal, folder: '/srv/picked/out' });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(result.paths).toEqual([{ job: 'app', source: '/source/app', path: '/srv/picked/out/app', files: 40 }]);
    expect(world.madePaths.folders.get('/srv/picked/out/app')?.data).toBe('version of the 29th');
    expect(world.madePaths.folders.get(live)?.data).toBe('live data');
    expect(world.state(unit)).toBe('active');
    expect(world.actions.filter((action) => /stop|start|rename/.test(action))).toEqual([]);
  });

  it('a folder that is not empty is refused (exit 2) before anything is made', async () => {
    const world = pickingWorld();
    world.madePaths.folders.get('/srv/picked')!.files = 3;
    const global = globalConfig({ root: tempRoot() });
    await expect(restoreTo({ global, stack: stackConfig(), choices: await choicesOf(world), adapters: world.adapters(), progress: silent(), output: { write: () => {} }, signal: new AbortController().signal, folder: '/srv/picked' })).rejects.toThrow(/--to \/srv\/picked: it is not empty/);
    expect(world.actions.filter((action) => action.startsWith('make ') || action.startsWith('duplicati restore'))).toEqual([]);
  });

  it('the dry run prints the --to list (the same the run walks), not the in-place swap', async () => {
    const world = pickingWorld();
    const stack = stackConfig();
    const choices = await choicesOf(world);
    const { paths } = dataPathsOf({ stack, jobs: [{ job: 'app', backupId: '1', sources: ['/source/app/'] }], mounts: volumes, run: 'RUN', container: 'duplicati' });
    const lines = planRestoreTo({ stack, global: globalConfig(), choices, paths, folder: '/srv/picked/out' }).join('\n');
    expect(lines).toMatch(/into \/srv\/picked\/out.*the stack is not stopped/);
    expect(lines).toMatch(/1\. preflight[\s\S]*2\. check the folder[\s\S]*3\. make the folders[\s\S]*mkdir -m 700 -- \/srv\/picked\/out\/app[\s\S]*4\. pause the Duplicati server[\s\S]*5\. restore into the folder[\s\S]*--restore-path=\/srv\/picked\/out\/app[\s\S]*6\. resume the Duplicati server/);
    expect(lines).not.toMatch(/stop unit|swap into place|start the stack|restore into staging/);
    expect(restoreToSteps({ stack, global: globalConfig({ duplicati: { ...globalConfig().duplicati, driver: 'api' } }), choices, folder: '/x' }).map((step) => step.name)).toEqual(['preflight', 'check the folder', 'make the folders', 'restore into the folder']);
    // Printing touched nothing.
    expect(world.actions).toEqual([]);
  });
});

describe('restore --prune', () => {
  function keptWorld(): { world: FakeWorld; root: string; copy: KeptCopy } {
    const world = pickingWorld();
    const root = tempRoot();
    const old = `${live}.stack-backup-old-r1`;
    world.madePaths.folder(old, 'old data');
    const copy: KeptCopy = { stack: 'app', run: 'r1', at: '2026-12-01T00:00:00.000Z', what: 'old data', live, path: old, identity: { filesystem: 'fakefs', inode: world.madePaths.folders.get(old)!.inode, born: '-', folder: '/srv/data' }, method: 'files' };
    addKeptCopies(root, [copy]);
    return { world, root, copy };
  }

  it('the dry run prints one step per kept copy with its removal, and removes nothing', () => {
    const { world, root, copy } = keptWorld();
    const lines = planPrune('app', readKeptCopies(root)).join('\n');
    expect(lines).toMatch(/1\. remove the old data \/srv\/data\/app\.stack-backup-old-r1\n\s+old data of \/srv\/data\/app, kept 2026-12-01T00:00:00.000Z by run r1\n\s+only if .* is still the old data that restore kept[\s\S]*rm -rf --one-file-system -- \/srv\/data\/app\.stack-backup-old-r1/);
    expect(planPrune('other', [])).toEqual(['other: nothing kept by restores to remove']);
    expect(world.madePaths.folders.has(copy.path)).toBe(true);
    expect(readKeptCopies(root)).toEqual([copy]);
  });

  it('the run walks the same steps: removed, and taken off the list', async () => {
    const { world, root, copy } = keptWorld();
    const report = await pruneKept({ global: globalConfig({ root }), adapters: world.adapters(), progress: silent(), signal: new AbortController().signal, stack: 'app' });
    expect(report).toEqual({ removed: [`${copy.path} (old data of ${live}, kept ${copy.at})`], kept: [], failed: [] });
    expect(world.madePaths.folders.has(copy.path)).toBe(false);
    expect(readKeptCopies(root)).toEqual([]);
  });
});
