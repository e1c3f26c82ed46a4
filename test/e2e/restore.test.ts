/**
 * `stack-backup restore` in the real world: a stop-mode stack (composeapp), a btrfs snapshot-mode
 * stack (snapbtrfs, its data a subvolume) and an XFS one (snapxfs), each with a 0700 folder and a
 * 0600 file of a subordinate UID, an executable and a relative symlink. Each is backed up,
 * changed (a file modified, one added, one deleted), backed up again, and restored to the older
 * version: the data must be exactly what it was when that version was taken, as the stack's
 * containers see it (read inside the user's namespace just before the stack starts, by a
 * pre_start hook), the stack running, the old data kept. And whatever fails, the live data and
 * the stack are as they were.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { manifestScript, folderManifest, parseFolderManifest, type Manifest } from './manifests.js';
import { asUser, cli, resetRoot, resetWorld, root, standin, standinEvents, startCli, unitState, waitUntil, world, writeStack, writeUserFile } from './world.js';

const data = {
  composeapp: path.join(world.WORLD_DIR!, 'data', 'composeapp'),
  snapbtrfs: path.join(world.BTRFS_DIR!, 'snapbtrfs'),
  snapxfs: path.join(world.XFS_DIR!, 'snapxfs'),
};
type Stack = keyof typeof data;
const snapshotTarget = { snapbtrfs: path.join(world.BTRFS_DIR!, 'snapshots', 'snapbtrfs'), snapxfs: path.join(world.XFS_DIR!, 'snapshots', 'snapxfs') };
const captures = path.join(root, 'logs', 'captures');
const journal = path.join(root, 'logs', 'journal.json');

/** hooks/capture.sh FOLDER: the folder's manifest, inside the user's namespace, into logs/captures/STACK-N. */
function writeCaptureHook(): void {
  writeUserFile(
    path.join(root, 'hooks', 'capture.sh'),
    `#!/bin/sh\nmkdir -p ${captures}\nexec env -u CONTAINER_HOST podman unshare sh -c '${manifestScript.replace(/'/g, `'\\''`)}' sh "$1" > "${captures}/$STACK_NAME-$(date +%s%N)"\n`,
    0o755,
  );
}

/** The stack file: its mode, a pre_start hook that reads its data just before each start, more lines. */
function writeRestoreStack(stack: Stack, extra = ''): void {
  const snapshot =
    stack === 'composeapp'
      ? ''
      : `snapshot:\n  driver: ${stack === 'snapbtrfs' ? 'btrfs' : 'reflink'}\n  paths:\n    - source: ${data[stack]}\n      target: ${snapshotTarget[stack]}\n`;
  writeStack(stack, `duplicati_jobs: [${stack}]\n${snapshot}hooks:\n  pre_start: hooks/capture.sh ${data[stack]}\n${extra}`);
}

/** Each manifest the pre_start hook took, oldest first. */
function capturesOf(stack: Stack): Manifest[] {
  if (!existsSync(captures)) return [];
  return readdirSync(captures)
    .filter((name) => name.startsWith(`${stack}-`))
    .sort((a, b) => (BigInt(a.slice(stack.length + 1)) < BigInt(b.slice(stack.length + 1)) ? -1 : 1))
    .map((name) => parseFolderManifest(readFileSync(path.join(captures, name), 'utf8')));
}

/** Runs a script on a stack's data inside the user's namespace, as the stack's own users would write it. */
async function onData(stack: Stack, script: string): Promise<void> {
  const result = await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'sh', '-c', `cd "$1" && ${script}`, 'sh', data[stack]]);
  expect(result.code, result.stderr).toBe(0);
}

/** Files of the test's own: one of container user 1000 (0600, in the 0700 db/), one executable of the stack's owner. */
const prepare = (stack: Stack) => onData(stack, 'echo v1 > db/keep.txt && chown 1000:1000 db/keep.txt && chmod 600 db/keep.txt && echo bye > gone.sh && chmod 750 gone.sh');
/** Then: one changed, one added, one deleted. */
const change = (stack: Stack) => onData(stack, 'echo v2 > db/keep.txt && echo new > added.txt && rm gone.sh');
const cleanUp = (stack: Stack) => onData(stack, 'rm -f db/keep.txt gone.sh added.txt');

/** What the running stack itself rewrites (heartbeats; the snapshot stacks' db/state): left out where the stack ran meanwhile. */
function settled(manifest: Manifest | undefined, stack: Stack): Manifest {
  return (manifest ?? []).filter((line) => !line.startsWith('heartbeat') && !(stack !== 'composeapp' && line.startsWith('db/state ')));
}

async function backUp(stack: Stack): Promise<void> {
  const result = await cli([stack]);
  expect(result.code, result.stderr).toBe(0);
}

const pendingUndos = () => (existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { entries: unknown[] }).entries : []);
const stopped = (stack: string) => restoreLog(stack).some((line) => line.step === 'stop unit');

function restoreLog(stack: string): Array<Record<string, unknown>> {
  const folder = path.join(root, 'logs');
  return readdirSync(folder)
    .filter((name) => name.startsWith(`restore-${stack}-`) && name.endsWith('.log'))
    .flatMap((name) => readFileSync(path.join(folder, name), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>));
}

function leftBeside(stack: Stack): string[] {
  return readdirSync(path.dirname(data[stack])).filter((name) => name.startsWith(`${path.basename(data[stack])}.stack-backup-`));
}

beforeEach(async () => {
  resetRoot();
  await resetWorld();
  rmSync(captures, { recursive: true, force: true });
  writeCaptureHook();
});

afterEach(async () => {
  // What a test left beside the data (kept copies) and in it, as the user removes such things.
  for (const stack of Object.keys(data) as Stack[]) {
    for (const name of leftBeside(stack)) {
      await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'sh', '-c', 'btrfs property set -ts "$1" ro false 2>/dev/null; btrfs subvolume delete "$1" >/dev/null 2>&1 || rm -rf -- "$1"', 'sh', path.join(path.dirname(data[stack]), name)]);
    }
    await cleanUp(stack);
  }
});

describe('restore to an older version', () => {
  for (const [stack, driver] of [
    ['composeapp', 'exec'],
    ['snapbtrfs', 'api'],
    ['snapxfs', 'exec'],
  ] as Array<[Stack, 'exec' | 'api']>) {
    it(`${stack} (${driver} driver): the data is exactly that version's, owners and modes included; the stack runs; the old data is kept, and --prune removes it`, async () => {
      if (driver === 'api') writeUserFile(path.join(root, 'stack-backup.yaml'), `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n`);
      const env: Record<string, string> = driver === 'api' ? { DUPLICATI_PASSWORD: world.DUPLICATI_API_PASSWORD! } : {};
      writeRestoreStack(stack);
      await prepare(stack);
      expect((await cli([stack], env)).code).toBe(0);
      await change(stack);
      expect((await cli([stack], env)).code).toBe(0);
      const [older, newer] = capturesOf(stack);
      // What the restore must bring back: a subordinate UID's 0600 file in a 0700 folder, an executable, a link.
      expect(older).toContainEqual(expect.stringMatching(/^db d - 1000:1000 700 /));
      expect(older).toContainEqual(expect.stringMatching(/^db\/keep\.txt f 3 1000:1000 600 \S+ 4f98f59e877ecb84ff75ef0fab45bac5$/));
      expect(older).toContainEqual(expect.stringMatching(/^gone\.sh f 4 0:0 750 /));
      expect(older).toContainEqual('current l -> db/state');
      expect(settled(newer, stack)).not.toEqual(settled(older, stack));

      const versions = await cli(['versions', stack, '--json'], env);
      expect(versions.code, versions.stderr).toBe(0);
      expect((JSON.parse(versions.stdout) as { jobs: Array<{ versions: unknown[] }> }).jobs[0]!.versions).toHaveLength(2);

      const restored = await cli(['restore', stack, '--version', '1', '--yes', '--json'], env);
      expect(restored.code, restored.stderr).toBe(0);
      const document = JSON.parse(restored.stdout) as { result: string; paths: Array<{ path: string; old: string; restored_files: number }>; downtime_seconds: number };
      expect(document.result).toBe('restored');
      // Read just before the stack started on it: exactly the older version's data.
      const afterRestore = capturesOf(stack).at(-1)!;
      expect(afterRestore).toEqual(older);
      expect(await unitState(`${stack}-stack.service`)).toBe('active');
      const [entry] = document.paths;
      expect(entry!.path).toBe(data[stack]);
      // The old data is kept beside it, as it was before the restore.
      expect(settled(await folderManifest(entry!.old), stack)).toEqual(settled(newer, stack));
      expect(restored.stderr).toContain(`stack-backup restore --prune ${stack}`);
      // The world's Duplicati has a volume of the snapshot stacks' live folders themselves (for a
      // stop-mode job of the live data): the restore says it keeps showing the old data.
      if (stack === 'composeapp') expect(restored.stderr).not.toMatch(/keeps showing the old data/);
      else expect(restored.stderr).toMatch(new RegExp(`volume ${data[stack]}:/live/${stack} of ${data[stack]} itself .*keeps showing the old data`));
      expect(pendingUndos()).toEqual([]);
      if (stack === 'snapbtrfs') {
        // Still a subvolume, so the next snapshot works.
        expect(statSync(data.snapbtrfs).ino).toBe(256);
        expect((await cli([stack], env)).code).toBe(0);
      }
      const pruned = await cli(['restore', '--prune', stack], env);
      expect(pruned.code, pruned.stderr).toBe(0);
      expect(pruned.stdout).toContain(`removed ${entry!.old}`);
      expect(leftBeside(stack)).toEqual([]);
    });
  }
});

describe('never worse than before', () => {
  it('a time that matches no version is refused before anything stops (exit 2); so is a restore without --yes and without a terminal', async () => {
    writeRestoreStack('composeapp');
    await backUp('composeapp');
    const early = await cli(['restore', 'composeapp', '--time', '2020-01-01', '--yes']);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/job composeapp has no version at or before 2020-01-01T.* Duplicati would silently restore the newest instead/);
    const unconfirmed = await cli(['restore', 'composeapp']);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/without a terminal to confirm on, give --yes/);
    expect(stopped('composeapp')).toBe(false);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  for (const [fault, message] of [
    ['restore_zero', /Duplicati restored 0 of the \d+ files and links/],
    ['restore_fail', /ended Fatal: .*File hash mismatch/],
  ] as const) {
    it(`${fault}: the live data and the stack are as they were; exit 1 naming it; nothing left beside the data`, async () => {
      writeRestoreStack('composeapp');
      await prepare('composeapp');
      await backUp('composeapp');
      await change('composeapp');
      const before = await folderManifest(data.composeapp);
      await standin('flag', fault, 'on');
      const result = await cli(['restore', 'composeapp', '--yes']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/FAILED, nothing changed/);
      // The stack was started again on its data, untouched: only its heartbeats moved on.
      expect(settled(await folderManifest(data.composeapp), 'composeapp')).toEqual(settled(before, 'composeapp'));
      expect(await unitState('composeapp-stack.service')).toBe('active');
      expect(leftBeside('composeapp')).toEqual([]);
      expect(pendingUndos()).toEqual([]);
    });
  }

  it('a verify hook that fails on the restored data: the old data is put back, the stack runs on it, the restored copy is kept and named (exit 1)', async () => {
    writeRestoreStack('composeapp');
    await prepare('composeapp');
    await backUp('composeapp');
    await change('composeapp');
    await backUp('composeapp');
    // From now on the stack's verify hook fails: the restored data does not pass it.
    writeRestoreStack('composeapp', '  verify: test -e added.txt\n');
    const result = await cli(['restore', 'composeapp', '--version', '1', '--yes', '--json']);
    expect(result.code).toBe(1);
    const document = JSON.parse(result.stdout) as { result: string; rolled_back: boolean; paths: Array<{ restored_copy: string }> };
    expect(document.result).toBe('rolled_back');
    // Captured before each start: the restored data, then the old data put back.
    const [older, newer, restored, putBack] = capturesOf('composeapp');
    expect(restored).toEqual(older);
    expect(settled(putBack, 'composeapp')).toEqual(settled(newer, 'composeapp'));
    expect(settled(await folderManifest(document.paths[0]!.restored_copy), 'composeapp')).toEqual(settled(older, 'composeapp'));
    expect(result.stderr).toContain(`the restored copy is kept at ${document.paths[0]!.restored_copy}`);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(pendingUndos()).toEqual([]);
  });

  it('SIGKILL between the renames, then recover: the path is wholly old, the stack running', async () => {
    writeRestoreStack('composeapp');
    await prepare('composeapp');
    await backUp('composeapp');
    await change('composeapp');
    await backUp('composeapp');
    const newer = capturesOf('composeapp').at(-1)!;
    const run = startCli(['restore', 'composeapp', '--version', '1', '--yes']);
    // Killed once the first rename's way back is journaled (the renames follow at once).
    await waitUntil('the swap to begin', () => existsSync(journal) && readFileSync(journal, 'utf8').includes('"rename-back"'), 120_000);
    run.child.kill('SIGKILL');
    await run.finished;
    const dryRun = await cli(['recover', '--dry-run']);
    expect(dryRun.stdout).toMatch(/rename .* back to .*data\/composeapp/);
    const recovered = await cli(['recover']);
    expect(recovered.code, recovered.stdout + recovered.stderr).toBe(0);
    // Wholly old: what recover started the stack on is the data of before the restore.
    expect(settled(capturesOf('composeapp').at(-1), 'composeapp')).toEqual(settled(newer, 'composeapp'));
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(leftBeside('composeapp')).toEqual([]);
    expect(pendingUndos()).toEqual([]);
  });

  for (const driver of ['exec', 'api'] as const) {
    it(`SIGTERM while Duplicati restores (${driver} driver): the restore is ended inside Duplicati first, the live data untouched, the stack running, exit 143`, async () => {
      if (driver === 'api') writeUserFile(path.join(root, 'stack-backup.yaml'), `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n`);
      const env: Record<string, string> = driver === 'api' ? { DUPLICATI_PASSWORD: world.DUPLICATI_API_PASSWORD! } : {};
      writeRestoreStack('composeapp');
      await prepare('composeapp');
      expect((await cli(['composeapp'], env)).code).toBe(0);
      await change('composeapp');
      const before = await folderManifest(data.composeapp);
      await standin('set', 'restore_seconds', '8');
      const run = startCli(['restore', 'composeapp', '--yes'], env);
      const started = driver === 'api' ? / RESTORE_START / : / CLI_RESTORE_START /;
      await waitUntil('the restore to start in Duplicati', () => standinEvents().some((line) => started.test(line)), 120_000);
      run.child.kill('SIGTERM');
      const result = await run.finished;
      expect(result.code, result.stderr).toBe(143);
      // Ended there, not left writing into a folder that is about to go.
      const ended = driver === 'api' ? / RESTORE_END .* (Fatal|Interrupted)/ : / CLI_RESTORE_KILLED /;
      expect(standinEvents().some((line) => ended.test(line))).toBe(true);
      expect(settled(await folderManifest(data.composeapp), 'composeapp')).toEqual(settled(before, 'composeapp'));
      expect(await unitState('composeapp-stack.service')).toBe('active');
      expect(leftBeside('composeapp')).toEqual([]);
      expect(pendingUndos()).toEqual([]);
    });
  }

  it('--to DIR: the version lands in the folder, exact; the stack is never stopped', async () => {
    writeRestoreStack('composeapp');
    await prepare('composeapp');
    await backUp('composeapp');
    const [version] = capturesOf('composeapp');
    const folder = path.join(world.WORLD_DIR!, 'data', `picked-${process.pid}`);
    try {
      const result = await cli(['restore', 'composeapp', '--to', folder, '--yes']);
      expect(result.code, result.stderr).toBe(0);
      expect(await folderManifest(path.join(folder, 'composeapp'))).toEqual(version);
      expect(stopped('composeapp')).toBe(false);
      expect(await unitState('composeapp-stack.service')).toBe('active');
    } finally {
      await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'rm', '-rf', '--', folder]);
    }
  });
});
