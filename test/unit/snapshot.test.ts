/**
 * Snapshot mode against the fakes: the stack is down from the stop to the start and nothing
 * else, its jobs read the snapshots with the stack running again, and whatever fails, no
 * snapshot is left behind (but for one a Duplicati task may still read) and the stack runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { identityMismatch, parseLook, removeArgv } from '../../src/adapters/made-paths.js';
import { createArgvs, parseFacts, snapshotProblem } from '../../src/adapters/snapshots.js';
import { loadGlobalConfig, loadStack } from '../../src/config/load.js';
import type { SnapshotSettings, StackConfig } from '../../src/config/types.js';
import { AbortedError, ConfigError } from '../../src/errors.js';
import { createJournal, type UndoRecord } from '../../src/journal/journal.js';
import { planStack } from '../../src/backup/plan.js';
import { recoverPending, recoveryOrder } from '../../src/recover.js';
import { createProgress } from '../../src/report/report.js';
import { stackSteps } from '../../src/backup/sequence.js';
import { undoName } from '../../src/journal/undo-records.js';
import { FakeWorld, globalConfig, hooks, removeTempRoots, runStack, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';
const data = { source: '/srv/app/data', target: '/srv/snapshots/app/data' };
const database = { source: '/srv/app/db', target: '/srv/snapshots/app/db' };

function snapshotStack(snapshot: Partial<SnapshotSettings> = {}, overrides: Partial<StackConfig> = {}): StackConfig {
  return stackConfig({ snapshot: { driver: 'auto', paths: [data], ...snapshot }, ...overrides });
}

function snapshotWorld(): FakeWorld {
  const world = worldWithStack('active');
  world.snapshots.source(data.source);
  world.snapshots.source(database.source);
  return world;
}

const visible = (world: FakeWorld) => world.actions.filter((action) => action !== 'duplicati status' && !action.startsWith('check '));

describe('snapshot mode, a good run', () => {
  it('stops, snapshots, starts, then runs the job on the snapshot and removes it', async () => {
    const world = snapshotWorld();
    const { result } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(true);
    expect(result.mode).toBe('snapshot');
    expect(visible(world)).toEqual([
      `stop ${unit}`,
      `snapshot ${data.source} -> ${data.target} (btrfs)`,
      `start ${unit}`,
      'duplicati run app',
      `remove snapshot ${data.target}`,
    ]);
    expect(world.state(unit)).toBe('active');
    expect(world.snapshots.targets.size).toBe(0);
    // The job ran with the stack up, while the snapshot existed from its start to its end.
    const [task] = world.duplicati.completed('1');
    const [life] = world.snapshots.lives;
    expect(task!.startedAt!).toBeGreaterThanOrEqual(life!.madeAt);
    expect(task!.endedAt!).toBeLessThanOrEqual(life!.removedAt!);
    // Down from the stop to the start only: the 5 s job is not in the downtime.
    expect(result.downtimeMs).toBe(world.timeOf(`start ${unit}`)! - world.timeOf(`stop ${unit}`)!);
    expect(result.downtimeMs!).toBeLessThan(world.duplicati.durationMs);
    expect(result.backupMs!).toBeGreaterThanOrEqual(world.duplicati.durationMs);
    expect(result.snapshotsLeft).toEqual([]);
  });

  it('auto picks btrfs for a subvolume and reflink elsewhere; each path gets its own snapshot', async () => {
    const world = snapshotWorld();
    world.snapshots.source(database.source, { fsType: 'xfs', inode: 131, mount: '/srv' });
    const { result } = await runStack(world, snapshotStack({ paths: [data, database] }));
    expect(result.ok).toBe(true);
    expect(visible(world)).toContain(`snapshot ${data.source} -> ${data.target} (btrfs)`);
    expect(visible(world)).toContain(`snapshot ${database.source} -> ${database.target} (reflink)`);
    // Removed last made first.
    expect(visible(world).slice(-2)).toEqual([`remove snapshot ${database.target}`, `remove snapshot ${data.target}`]);
  });

  it('hooks in their order: pre_backup after the restart, post_backup before the removal, verify last', async () => {
    const world = snapshotWorld();
    const phases = ['pre_stop', 'post_stop', 'pre_start', 'post_start', 'pre_backup', 'post_backup', 'verify'] as const;
    const stack = snapshotStack({}, { hooks: hooks(Object.fromEntries(phases.map((phase) => [phase, [`${phase}-cmd`]]))) });
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(true);
    expect(visible(world)).toEqual([
      'hook pre_stop: pre_stop-cmd',
      `stop ${unit}`,
      'hook post_stop: post_stop-cmd',
      `snapshot ${data.source} -> ${data.target} (btrfs)`,
      'hook pre_start: pre_start-cmd',
      `start ${unit}`,
      'hook post_start: post_start-cmd',
      'hook pre_backup: pre_backup-cmd',
      'duplicati run app',
      'hook post_backup: post_backup-cmd',
      `remove snapshot ${data.target}`,
      'hook verify: verify-cmd',
    ]);
  });

  it('a stale snapshot that stack-backup made (its marker describes it) is removed before the stack is stopped', async () => {
    const world = snapshotWorld();
    world.snapshots.targets.set(data.target, { madeBy: 'stack-backup', madeAt: 0 });
    const { result, log } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(true);
    expect(visible(world).slice(0, 3)).toEqual([`remove snapshot ${data.target}`, `stop ${unit}`, `snapshot ${data.source} -> ${data.target} (btrfs)`]);
    expect(log.messages('warn').some((message) => message.includes('stale snapshot'))).toBe(true);
  });

  it("a user's folder at the target with a left-over marker is kept and named; the stack is never stopped", async () => {
    const world = snapshotWorld();
    world.snapshots.targets.set(data.target, { madeBy: 'someone else', madeAt: 0, marker: true });
    const { result } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/already exists and was not made by stack-backup .*describes what stack-backup made there, but it is another folder/);
    expect(world.snapshots.targets.get(data.target)?.madeBy).toBe('someone else');
    expect(visible(world)).toEqual([]);
  });

  it('an undo whose snapshot was replaced by a folder of someone else keeps it and names it in the result', async () => {
    const world = snapshotWorld();
    world.duplicati.resultKind = 'Error';
    world.onAction = (action) => {
      // Someone swaps a folder of theirs in while the job runs.
      if (action === 'duplicati run app') world.snapshots.targets.set(data.target, { madeBy: 'stack-backup', madeAt: 0, inode: 'theirs' });
    };
    const { result } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(false);
    expect(world.snapshots.targets.get(data.target)?.inode).toBe('theirs');
    expect(result.keptPaths).toEqual([`${data.target} (it is another folder than the one stack-backup made)`]);
    expect(world.state(unit)).toBe('active');
  });
});

describe('snapshot mode, refused before anything is touched', () => {
  const cases: Array<[string, (world: FakeWorld) => void, Partial<SnapshotSettings>, RegExp]> = [
    ['a target that someone else made', (world) => world.snapshots.targets.set(data.target, { madeBy: 'someone else', madeAt: 0 }), {}, /already exists and was not made by stack-backup/],
    ['driver btrfs on a plain folder', (world) => world.snapshots.source(data.source, { inode: 300 }), { driver: 'btrfs' }, /not a btrfs subvolume/],
    ['driver btrfs on ext4', (world) => world.snapshots.source(data.source, { fsType: 'ext2/ext3', inode: 2 }), { driver: 'btrfs' }, /not btrfs/],
    ['reflink on ext4', (world) => world.snapshots.source(data.source, { fsType: 'ext2/ext3', inode: 2 }), {}, /cannot share blocks/],
    ['reflink on tmpfs', (world) => world.snapshots.source(data.source, { fsType: 'tmpfs', inode: 2 }), { driver: 'reflink' }, /cannot share blocks/],
    ['a btrfs source holding other subvolumes', (world) => world.snapshots.source(data.source, { nested: [`${data.source}/inner`] }), {}, /contains other subvolumes/],
    ['a target on another filesystem', (world) => world.snapshots.otherMount.add('/srv/snapshots/app'), {}, /not on the same filesystem/],
    ['a target folder not writable', (world) => world.snapshots.readOnly.add('/srv/snapshots/app'), {}, /not writable/],
    ['a missing source', (world) => world.snapshots.sources.delete(data.source), {}, /does not exist/],
  ];
  for (const [name, arrange, snapshot, message] of cases) {
    it(`${name}: the preflight fails naming it; the unit is never stopped`, async () => {
      const world = snapshotWorld();
      arrange(world);
      const { result } = await runStack(world, snapshotStack(snapshot));
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(message);
      expect(result.error).toMatch(/snapshot\.paths\[0\]/);
      expect(result.error).toMatch(/nothing was touched/);
      expect(visible(world)).toEqual([]);
      expect(world.state(unit)).toBe('active');
    });
  }
});

describe('snapshot mode, failures leave no snapshot and the stack running', () => {
  it('a failing job: the snapshot is removed, the stack fails, the unit is up', async () => {
    const world = snapshotWorld();
    world.duplicati.resultKind = 'Error';
    world.duplicati.resultMessage = 'source folder missing';
    const { result } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/Error for job app: source folder missing/);
    expect(world.snapshots.targets.size).toBe(0);
    expect(world.state(unit)).toBe('active');
    expect(result.snapshotsLeft).toEqual([]);
  });

  it('the second path fails to snapshot: the first is removed, the stack is started, no job runs', async () => {
    const world = snapshotWorld();
    world.failing.add(`snapshot ${database.target}`);
    const { result, log } = await runStack(world, snapshotStack({ paths: [data, database] }));
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/injected/);
    expect(world.state(unit)).toBe('active');
    expect(world.snapshots.targets.size).toBe(0);
    expect(world.duplicati.tasks).toEqual([]);
    expect(visible(world)).toEqual([
      `stop ${unit}`,
      `snapshot ${data.source} -> ${data.target} (btrfs)`,
      // The stack first: removing a large copy may take long.
      `start ${unit}`,
      `remove snapshot ${data.target}`,
    ]);
    // Registered before the attempt, it ran too, and found nothing it made there.
    expect(log.lines.some((line) => line.fields?.undo === `remove snapshot ${database.target}` && line.message === 'undo done')).toBe(true);
  });

  it('a failing post_stop hook: no snapshot is made, the stack is started', async () => {
    const world = snapshotWorld();
    world.hookResults.set('broken', { exitCode: 1 });
    const { result } = await runStack(world, snapshotStack({}, { hooks: hooks({ post_stop: ['broken'] }) }));
    expect(result.ok).toBe(false);
    expect(world.snapshots.lives).toEqual([]);
    expect(world.state(unit)).toBe('active');
  });

  it('recover: units first, snapshots last, whatever the order they were recorded in', () => {
    const entry = (undo: UndoRecord) => ({ id: undo.kind, stack: 'app', run: 'r', pid: 1, recordedAt: '', undo });
    const order = recoveryOrder([
      entry({ kind: 'unfreeze', socket: 'app-proxy.socket', service: undefined }),
      entry({ kind: 'remove-snapshot', driver: 'btrfs', source: data.source, target: data.target, jobs: ['app'] }),
      entry({ kind: 'hooks', hooks: { phase: 'post_start', commands: ['x'], environment: {}, cwd: '/', timeoutMs: 1000 } }),
    ]);
    expect(order.map((item) => item.undo.kind)).toEqual(['hooks', 'unfreeze', 'remove-snapshot']);
  });

  it('the unit does not start again: the jobs are not run, the snapshot is removed, the stack is reported not restored', async () => {
    const world = snapshotWorld();
    world.failing.add(`start ${unit}`);
    const { result } = await runStack(world, snapshotStack());
    expect(result.ok).toBe(false);
    expect(result.notRestored).toBe(true);
    expect(result.restoreErrors.join('\n')).toMatch(/restore unit/);
    expect(world.duplicati.tasks).toEqual([]);
    expect(world.snapshots.targets.size).toBe(0);
  });

  it('a snapshot that cannot be removed fails the stack, names it, and stays in the journal for recover', async () => {
    const root = tempRoot();
    const world = snapshotWorld();
    world.failing.add(`remove ${data.target}`);
    const { result } = await runStack(world, snapshotStack(), { journal: createJournal(root, 'run-1') });
    expect(result.ok).toBe(false);
    expect(result.notRestored).toBe(false);
    expect(result.snapshotsLeft).toEqual([data.target]);
    expect(world.state(unit)).toBe('active');
    expect(createJournal(root, 'reader').pending().map((entry) => undoName(entry.undo))).toEqual([`remove snapshot ${data.target}`]);
  });
});

describe('snapshot mode, a run ended mid-job', () => {
  it('exec driver, SIGTERM mid-job: the stack runs, the snapshot is kept for the task and journaled; recover removes it once the job ended', async () => {
    const root = tempRoot();
    const world = snapshotWorld();
    const controller = new AbortController();
    world.duplicati.onRun = () => {
      world.clock.onAdvance(() => {
        if (!controller.signal.aborted && world.duplicati.tasks.some((task) => task.startedAt !== undefined)) controller.abort(new AbortedError('SIGTERM'));
      });
    };
    const { result, log } = await runStack(world, snapshotStack(), { journal: createJournal(root, 'run-1'), signal: controller.signal });
    expect(result.ok).toBe(false);
    expect(result.aborted).toBe(true);
    expect(result.notRestored).toBe(false);
    expect(world.state(unit)).toBe('active');
    expect(world.snapshots.targets.has(data.target)).toBe(true);
    expect(result.snapshotsLeft).toEqual([data.target]);
    expect(log.messages('error').join('\n')).toMatch(/kept: Duplicati may still run job app/);
    const pending = () => createJournal(root, 'reader').pending().map((entry) => undoName(entry.undo));
    expect(pending()).toEqual([`remove snapshot ${data.target}`]);

    const recover = () =>
      recoverPending(root, createJournal(root, 'recovery'), 'recovery', {
        systemd: world.systemd,
        runHook: world.runHook,
        clock: world.clock,
        snapshots: world.snapshots,
        duplicati: () => world.duplicati,
        progress: createProgress({ write: () => {} }, world.clock),
      });
    // The task still runs: recover keeps it.
    const early = await recover();
    expect(early.failed.join('\n')).toMatch(/still runs or queues job app/);
    expect(world.snapshots.targets.has(data.target)).toBe(true);
    // Once the job has ended, recover removes it and clears the journal.
    await world.clock.sleep(world.duplicati.durationMs);
    const late = await recover();
    expect(late.failed).toEqual([]);
    expect(world.snapshots.targets.size).toBe(0);
    expect(pending()).toEqual([]);
  });

  it('api driver, SIGTERM mid-job: the task is stopped, so the snapshot is removed at once', async () => {
    const world = snapshotWorld();
    world.duplicati.useTaskApi();
    const controller = new AbortController();
    world.duplicati.onRun = () => {
      world.clock.onAdvance(() => {
        if (!controller.signal.aborted && world.duplicati.tasks.some((task) => task.startedAt !== undefined)) controller.abort(new AbortedError('SIGTERM'));
      });
    };
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, driver: 'api' } });
    const { result } = await runStack(world, snapshotStack(), { global, signal: controller.signal });
    expect(result.aborted).toBe(true);
    expect(world.duplicati.stopCalls.length).toBeGreaterThan(0);
    expect(world.snapshots.targets.size).toBe(0);
    expect(world.state(unit)).toBe('active');
  });
});

describe('snapshot mode, the dry run', () => {
  it('lists the snapshot between the container wait and the restart, and the removal after the jobs, with their commands', () => {
    const stack = snapshotStack({ driver: 'btrfs' });
    const plan = planStack(stack, globalConfig(), '/run/user/1000/podman/podman.sock').join('\n');
    const order = ['wait for the stack to be down', 'snapshot (first registers', 'restore the stack', 'wait for Duplicati to be idle', 'backup jobs', 'remove snapshots'];
    const positions = order.map((name) => plan.indexOf(`. ${name}`));
    expect(positions.every((position) => position > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(plan).toContain(`btrfs subvolume snapshot -r -- ${data.source} ${data.target}`);
    expect(plan).toContain(`btrfs property set -ts ${data.target} ro false`);
  });

  it('steps of the run and of the dry run are one list: the journal records the undo the snapshot step names', async () => {
    const world = snapshotWorld();
    const stack = snapshotStack();
    const journaled: string[] = [];
    const journal = { add: (_stack: string, record: UndoRecord) => (journaled.push(record.kind), String(journaled.length)), update: () => {}, remove: () => {}, pending: () => [] };
    const { result } = await runStack(world, stack, { journal });
    expect(result.ok).toBe(true);
    expect(result.steps).toEqual(stackSteps(stack, globalConfig()).map((step) => step.name));
    expect(journaled).toEqual(['restore-unit', 'remove-snapshot']);
  });
});

describe('snapshot configuration', () => {
  const global = () => loadGlobalConfig(tempRoot(), {});
  function load(text: string): StackConfig {
    const root = tempRoot({ 'stacks/app.yaml': text });
    return loadStack(root, 'app', loadGlobalConfig(root, {}));
  }
  it('reads driver and paths; driver defaults to auto; no key is stop mode', () => {
    expect(load('duplicati_jobs: [app]\nsnapshot:\n  paths:\n    - {source: /srv/a/, target: /srv/s/a}\n').snapshot).toEqual({ driver: 'auto', paths: [{ source: '/srv/a', target: '/srv/s/a' }] });
    expect(load('duplicati_jobs: [app]\n').snapshot).toBeUndefined();
    expect(global()).toBeDefined();
  });
  const bad: Array<[string, string, string, RegExp]> = [
    ['a relative source', '- {source: data, target: /srv/s/a}', 'snapshot.paths[0].source', /absolute path/],
    ['a relative target', '- {source: /srv/a, target: s/a}', 'snapshot.paths[0].target', /absolute path/],
    ['a target inside its source', '- {source: /srv/a, target: /srv/a/snap}', 'snapshot.paths[0].target', /inside its source/],
    ['a source inside its target', '- {source: /srv/s/a, target: /srv/s}', 'snapshot.paths[0].target', /contains its source/],
    ['two paths, one target', '- {source: /srv/a, target: /srv/s/x}\n    - {source: /srv/b, target: /srv/s/x}', 'snapshot.paths[1].target', /also the target of snapshot\.paths\[0\]/],
    ['a target inside another path\'s source', '- {source: /srv/a, target: /srv/s/a}\n    - {source: /srv/b, target: /srv/a/x}', 'snapshot.paths[1].target', /source of snapshot\.paths\[0\]/],
    ['an unknown key in a path', '- {source: /srv/a, target: /srv/s/a, mode: ro}', 'snapshot.paths[0].mode', /unknown key/],
  ];
  for (const [name, paths, key, message] of bad) {
    it(`refuses ${name}, naming file and key`, () => {
      let error: unknown;
      try {
        load(`duplicati_jobs: [app]\nsnapshot:\n  paths:\n    ${paths}\n`);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).file).toBe('stacks/app.yaml');
      expect((error as ConfigError).key).toBe(key);
      expect((error as ConfigError).message).toMatch(message);
    });
  }
  it('refuses an unknown driver and an empty paths list', () => {
    expect(() => load('duplicati_jobs: [app]\nsnapshot:\n  driver: zfs\n  paths:\n    - {source: /srv/a, target: /srv/s/a}\n')).toThrow(/snapshot\.driver: expected "auto", "btrfs" or "reflink"/);
    expect(() => load('duplicati_jobs: [app]\nsnapshot:\n  paths: []\n')).toThrow(/snapshot\.paths: expected at least one/);
  });
});

describe('the snapshot adapter, pure parts', () => {
  const folderLines = (prefix: string, inode: string, folder = '/srv/snapshots/app') =>
    `${prefix}kind=folder\n${prefix}device=41\n${prefix}inode=${inode}\n${prefix}born=2026-12-05 10:25:34.685545057 +0000\n${prefix}filesystem=ad0e\n${prefix}folder=${folder}\n`;
  const sourceLines = 'source.exists=1\nsource.directory=1\nsource.fstype=btrfs\nsource.inode=256\nsource.mount=/srv\nparent.exists=1\nparent.writable=1\nparent.fstype=btrfs\nparent.mount=/srv\n';
  const marker = (inode: string) =>
    JSON.stringify({ madeBy: 'stack-backup', stack: 'app', run: 'r1', driver: 'reflink', source: data.source, target: data.target, identity: parseLook(folderLines('', inode)).kind === 'folder' ? (parseLook(folderLines('', inode)) as { identity: unknown }).identity : undefined });

  it("reads the facts script's lines; a target is stack-backup's only when its marker describes exactly what is there", () => {
    const facts = parseFacts(`${sourceLines}${folderLines('target.', '259')}marker.exists=1\n`, marker('259'), data.target);
    expect(facts.source).toEqual({ exists: true, directory: true, fsType: 'btrfs', inode: 256, mount: '/srv' });
    expect(facts.target.state).toBe('ours');
    expect(snapshotProblem('btrfs', data, facts)).toBeUndefined();
    // The same name, another folder: a user's folder took the place of a snapshot that is gone.
    expect(parseFacts(`${folderLines('target.', '260')}marker.exists=1\n`, marker('259'), data.target).target).toMatchObject({ state: 'foreign', reason: expect.stringMatching(/but it is another folder/) });
    // A marker of an earlier version (no identity) proves nothing.
    expect(parseFacts(`${folderLines('target.', '259')}marker.exists=1\n`, JSON.stringify({ madeBy: 'stack-backup', owner: 'app', driver: 'btrfs' }), data.target).target.state).toBe('foreign');
    expect(parseFacts(folderLines('target.', '259'), undefined, data.target).target).toMatchObject({ state: 'foreign', reason: expect.stringMatching(/no .*\.stack-backup beside it/) });
    expect(parseFacts('target.kind=link\ntarget.to=/srv/app/data\nmarker.exists=1\n', marker('259'), data.target).target).toEqual({ state: 'foreign', reason: 'it is a symbolic link to /srv/app/data' });
    expect(parseFacts('', undefined, data.target).target).toEqual({ state: 'absent', staleMarker: false });
    expect(parseFacts('target.kind=absent\nmarker.exists=1\n', marker('259'), data.target).target).toEqual({ state: 'absent', staleMarker: true });
  });

  it('an identity matches only the same folder, filesystem, inode, birth time and subvolume', () => {
    const made = (parseLook(folderLines('', '256')) as { identity: import('../../src/adapters/made-paths.js').PathIdentity }).identity;
    expect(identityMismatch(made, { ...made, device: '99' })).toBeUndefined();
    expect(identityMismatch(made, { ...made, folder: '/elsewhere' })).toMatch(/resolves to \/elsewhere/);
    expect(identityMismatch(made, { ...made, inode: '257' })).toMatch(/another folder/);
    expect(identityMismatch(made, { ...made, born: '-' })).toMatch(/another folder/);
    // A btrfs snapshot has its source's root inode and birth time: the subvolume tells them apart.
    expect(identityMismatch({ ...made, subvolume: '262' }, { ...made, subvolume: '261' })).toMatch(/another subvolume/);
  });

  it('makes a btrfs snapshot at a fresh name beside the target and renames it without replacing anything; a reflink copy into a new folder', () => {
    const [snapshot, rename] = createArgvs('btrfs', data, '/srv/snapshots/app/data.stack-backup-new.0d5c3e1a-run');
    expect(snapshot).toEqual(['btrfs', 'subvolume', 'snapshot', '-r', '--', data.source, '/srv/snapshots/app/data.stack-backup-new.0d5c3e1a-run']);
    expect(rename).toEqual(['mv', '-n', '-T', '--', '/srv/snapshots/app/data.stack-backup-new.0d5c3e1a-run', data.target]);
    expect(createArgvs('reflink', data)).toEqual([
      ['mkdir', '--', data.target],
      ['env', '-u', 'CONTAINER_HOST', '-u', 'CONTAINER_CONNECTION', 'podman', 'unshare', 'cp', '-a', '--reflink=always', '-T', '--', data.source, data.target],
    ]);
  });

  it('removes only inside the namespace, after checking the identity in the same script', () => {
    const made = (parseLook(folderLines('', '256')) as { identity: import('../../src/adapters/made-paths.js').PathIdentity }).identity;
    const argv = removeArgv(data.target, { ...made, subvolume: '262' }, 'btrfs-subvolume');
    expect(argv.slice(0, 9)).toEqual(['env', '-u', 'CONTAINER_HOST', '-u', 'CONTAINER_CONNECTION', 'podman', 'unshare', 'sh', '-c']);
    expect(argv.slice(10)).toEqual(['sh', data.target, '/srv/snapshots/app', 'ad0e', '256', '2026-12-05 10:25:34.685545057 +0000', '262', 'btrfs-subvolume']);
  });
});
