/**
 * A dry run only prints, whatever flag goes with it: for every command that takes --dry-run
 * (backup, restore in place, --to, --prune and --job, recover, install, uninstall), each flag it
 * accepts beside it leaves the data folders, the units and the Duplicati stand-in as they were:
 * a listing of each is taken before and after and compared.
 */
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, cli, jobRecords, resetRoot, resetWorld, root, standinEvents, systemctl, world, writeStack } from './world.js';

const dataFolders = [path.join(world.WORLD_DIR!, 'data'), world.BTRFS_DIR!, world.XFS_DIR!];
const picked = path.join(world.WORLD_DIR!, 'data', `picked-${process.pid}`);

/** Every path below the folders with its type, owner, mode and (for a file) size; what the running stacks rewrite themselves left out. */
function listing(folder: string, depth = 4): string[] {
  if (!existsSync(folder)) return [`${folder} absent`];
  const lines: string[] = [];
  for (const name of readdirSync(folder).sort()) {
    if (name.startsWith('heartbeat') || name === 'state') continue;
    const full = path.join(folder, name);
    const stat = lstatSync(full);
    const type = stat.isDirectory() ? 'd' : stat.isSymbolicLink() ? 'l' : 'f';
    lines.push(`${full} ${type} ${stat.uid}:${stat.gid} ${(stat.mode & 0o7777).toString(8)}${type === 'f' ? ` ${stat.size}` : ''}`);
    if (type === 'd' && depth > 1) lines.push(...listing(full, depth - 1));
  }
  return lines;
}

/** The stacks' units, the stand-in's, stack-backup's own: loaded, active and enabled states; and the unit files the user has. */
async function units(): Promise<string[]> {
  const wanted = /-stack\.service|ondemand-proxy|stack-backup|sbworld-duplicati/;
  const loaded = (await systemctl('list-units', '--all', '--plain', '--no-legend')).stdout.split('\n').filter((line) => wanted.test(line));
  const files = (await systemctl('list-unit-files', '--plain', '--no-legend')).stdout.split('\n').filter((line) => wanted.test(line));
  return [...loaded.map((line) => line.trim().split(/\s+/).slice(0, 4).join(' ')), ...files.map((line) => line.trim().split(/\s+/).slice(0, 2).join(' '))].sort();
}

async function fingerprint() {
  return {
    data: dataFolders.flatMap((folder) => listing(folder)),
    picked: existsSync(picked),
    root: listing(root, 3).filter((line) => !line.includes('/logs/') || /journal|restores\.json|history|\.lock/.test(line)),
    units: await units(),
    events: standinEvents(),
    records: jobRecords(),
  };
}

beforeAll(async () => {
  resetRoot();
  await resetWorld();
  // A version of each job, and one restore that kept the old data beside composeapp's (for --prune).
  for (const stack of ['composeapp', 'plainapp']) expect((await cli([stack])).code).toBe(0);
  const restored = await cli(['restore', 'composeapp', '--yes']);
  expect(restored.code, restored.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  resetRoot();
  await cli(['restore', '--prune', 'composeapp']);
  await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'rm', '-rf', '--', picked]);
  rmSync(picked, { recursive: true, force: true });
});

/** Runs the command, expecting exit 0 and nothing changed; returns its standard output. */
async function touchesNothing(args: string[]): Promise<string> {
  const before = await fingerprint();
  const result = await cli(args);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  expect(await fingerprint(), args.join(' ')).toEqual(before);
  return result.stdout;
}

describe('--dry-run with each flag a command accepts touches nothing', () => {
  it('backup: a stack, all, and with --json, --quiet, --verbose', async () => {
    for (const args of [['--dry-run', 'composeapp'], ['--dry-run', 'all'], ['--dry-run', '--json', 'composeapp'], ['--dry-run', '--quiet', 'ondemand'], ['composeapp', '--dry-run', '--verbose']]) {
      expect(await touchesNothing(args)).toMatch(/stop unit|"dry_run"/);
    }
  }, 300_000);

  it('restore in place: alone, --version, --time, --job, --yes, --json, --quiet, --verbose', async () => {
    const inPlace = /stop unit[\s\S]*swap into place[\s\S]*start the stack/;
    expect(await touchesNothing(['restore', 'composeapp', '--dry-run'])).toMatch(inPlace);
    expect(await touchesNothing(['restore', 'composeapp', '--dry-run', '--version', '0'])).toMatch(inPlace);
    expect(await touchesNothing(['restore', 'composeapp', '--dry-run', '--time', `${new Date(Date.now() + 60_000).toISOString().slice(0, 19)}Z`])).toMatch(inPlace);
    expect(await touchesNothing(['restore', 'composeapp', '--dry-run', '--job', 'composeapp'])).toMatch(inPlace);
    expect(await touchesNothing(['restore', 'composeapp', '--dry-run', '--yes'])).toMatch(inPlace);
    expect(JSON.parse(await touchesNothing(['restore', 'composeapp', '--dry-run', '--json']))).toMatchObject({ dry_run: true, stack: 'composeapp' });
    await touchesNothing(['restore', 'composeapp', '--dry-run', '--quiet']);
    await touchesNothing(['restore', 'composeapp', '--dry-run', '--verbose']);
  }, 300_000);

  it('restore --to DIR --dry-run prints the --to list (no stop, no swap), and makes no folder', async () => {
    const plan = await touchesNothing(['restore', 'composeapp', '--to', picked, '--dry-run']);
    expect(plan).toMatch(new RegExp(`check the folder[\\s\\S]*make the folders[\\s\\S]*mkdir -m 700 -- ${picked}/composeapp[\\s\\S]*restore into the folder`));
    expect(plan).not.toMatch(/stop unit|swap into place|start the stack/);
    expect(existsSync(picked)).toBe(false);
    expect(JSON.parse(await touchesNothing(['restore', 'composeapp', '--dry-run', '--to', picked, '--json', '--yes']))).toMatchObject({ dry_run: true, to: picked });
  }, 300_000);

  it('restore --prune --dry-run (either order) lists the kept old data and removes nothing', async () => {
    const kept = readdirSync(path.join(world.WORLD_DIR!, 'data')).filter((name) => name.startsWith('composeapp.stack-backup-old-'));
    expect(kept).toHaveLength(1);
    for (const args of [['restore', '--prune', 'composeapp', '--dry-run'], ['--dry-run', 'restore', 'composeapp', '--prune'], ['restore', '--prune', 'composeapp', '--dry-run', '--verbose']]) {
      const plan = await touchesNothing(args);
      expect(plan).toContain(`remove the old data ${path.join(world.WORLD_DIR!, 'data', kept[0]!)}`);
      expect(plan).not.toMatch(/^removed /m);
    }
    expect(JSON.parse(await touchesNothing(['restore', '--prune', 'composeapp', '--dry-run', '--json']))).toMatchObject({ would_remove: [path.join(world.WORLD_DIR!, 'data', kept[0]!)] });
  }, 300_000);

  it('restore --job: only that job is planned; a job not the stack\'s is exit 2 and touches nothing', async () => {
    writeStack('composeapp', 'duplicati_jobs: [composeapp, plainapp]\n');
    try {
      const plan = await touchesNothing(['restore', 'composeapp', '--job', 'plainapp', '--dry-run']);
      expect(plan).toMatch(/restore job plainapp version 0/);
      expect(plan).not.toMatch(/job composeapp version/);
      const before = await fingerprint();
      for (const extra of [['--yes'], ['--dry-run']]) {
        const refused = await cli(['restore', 'composeapp', '--job', 'nosuch', ...extra]);
        expect(refused.code).toBe(2);
        expect(refused.stderr).toContain('--job nosuch: stack composeapp has no such job');
      }
      expect(await fingerprint()).toEqual(before);
    } finally {
      writeStack('composeapp', 'duplicati_jobs: [composeapp]\n');
    }
  }, 300_000);

  it('recover, install, uninstall: alone, --quiet, --verbose', async () => {
    for (const command of ['recover', 'install', 'uninstall']) {
      for (const extra of [[], ['--quiet'], ['--verbose']]) await touchesNothing([command, '--dry-run', ...extra]);
    }
  }, 300_000);
});
