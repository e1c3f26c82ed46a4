/**
 * Snapshots of a stack's data, without root. A driver is a small interface (check, create,
 * remove); btrfs and reflink are built here, and ZFS or LVM would be two more (see the README).
 *
 * The data of rootless containers belongs to the user's subordinate UIDs, and database folders
 * are often mode 0700: the user alone can neither read nor remove them. Commands that must read,
 * copy or remove those files run inside the user's namespace (`podman unshare`), where they are
 * the user's. `podman unshare` refuses to run as a remote client, so CONTAINER_HOST (which the
 * Podman API needs) is taken out of its environment.
 */
import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { SnapshotDriverName, SnapshotPath, SnapshotSettings } from '../config/types.js';
import { CommandError, TimeoutError } from '../errors.js';
import { describeFailure, type CommandRunner } from './process.js';

/** How long creating or removing one snapshot may take: reflink copies grow with the number of files. */
export const snapshotTimeoutMs = 30 * 60_000;
/** How long reading a path's facts may take (a hung mount must not hang the run). */
export const factsTimeoutMs = 30_000;

/** Inside the user's namespace, as the container's files see it (local Podman, not the API). */
export const unshareArgv = ['env', '-u', 'CONTAINER_HOST', '-u', 'CONTAINER_CONNECTION', 'podman', 'unshare'] as const;

/** Beside the target, never inside it: a read-only snapshot cannot hold it, and the source must not. */
export function markerPath(target: string): string {
  return `${target}.stack-backup`;
}

/** What a target path holds before a snapshot is made there. */
export type TargetState = 'absent' | 'ours' | 'foreign';

/** What is known of one path before anything is touched; read in a child process. */
export interface PathFacts {
  source: { exists: boolean; directory: boolean; fsType: string; inode: number; mount: string };
  parent: { exists: boolean; writable: boolean; mount: string; fsType: string };
  target: TargetState;
  /** Only asked for the reflink driver: whether the target's filesystem can share blocks. */
  reflink?: boolean;
  /** Only asked for the btrfs driver: subvolumes inside the source (a snapshot leaves them out). */
  nestedSubvolumes?: string[];
}

export interface Snapshots {
  /** Reads the facts of one path; touches nothing but a probe file when `reflink` (removed at once). */
  facts(path: SnapshotPath, probe: { reflink: boolean }, signal?: AbortSignal): Promise<PathFacts>;
  /** Subvolume roots inside a btrfs source, read inside the user's namespace. */
  nestedSubvolumes(source: string, signal?: AbortSignal): Promise<string[]>;
  /** Whether the target exists and who made it; the last look before a snapshot is made. */
  targetState(target: string, signal?: AbortSignal): Promise<TargetState>;
  /** Writes the marker, then the snapshot; fails when the target exists. */
  create(driver: SnapshotDriverName, path: SnapshotPath, owner: string, signal?: AbortSignal): Promise<void>;
  /** Removes the snapshot, then its marker; a target already gone is fine. */
  remove(driver: SnapshotDriverName, target: string, signal?: AbortSignal): Promise<void>;
}

/** The driver for a path: what the configuration says, or for `auto` what the source is. */
export function chooseDriver(setting: SnapshotSettings['driver'], source: PathFacts['source']): SnapshotDriverName {
  if (setting !== 'auto') return setting;
  return source.fsType === 'btrfs' && source.inode === btrfsSubvolumeRootInode ? 'btrfs' : 'reflink';
}

/** A btrfs subvolume's root folder always has this inode number (BTRFS_FIRST_FREE_OBJECTID). */
export const btrfsSubvolumeRootInode = 256;

/** Filesystems where `cp --reflink=always` shares blocks instead of copying them. */
const reflinkFilesystems = ['xfs', 'btrfs', 'bcachefs'];

/**
 * Why this path cannot be snapshotted with this driver, or undefined. Pure: the facts were read
 * before, so `doctor` and the preflight judge alike.
 */
export function snapshotProblem(driver: SnapshotDriverName, path: SnapshotPath, facts: PathFacts): string | undefined {
  const { source, parent } = facts;
  if (!source.exists) return `source ${path.source} does not exist`;
  if (!source.directory) return `source ${path.source} is not a folder`;
  if (!parent.exists) return `the target's folder ${dirnameOf(path.target)} does not exist`;
  if (!parent.writable) return `the target's folder ${dirnameOf(path.target)} is not writable`;
  if (source.mount !== parent.mount) {
    return `source ${path.source} (on ${source.mount}) and target ${path.target} (on ${parent.mount}) are not on the same filesystem: a snapshot cannot cross filesystems`;
  }
  if (driver === 'btrfs') {
    if (source.fsType !== 'btrfs') return `source ${path.source} is on ${source.fsType}, not btrfs (driver btrfs)`;
    if (source.inode !== btrfsSubvolumeRootInode) {
      return `source ${path.source} is a plain folder, not a btrfs subvolume (make it one: btrfs subvolume create; or use driver reflink)`;
    }
    if (facts.nestedSubvolumes && facts.nestedSubvolumes.length > 0) {
      return `source ${path.source} contains other subvolumes (${facts.nestedSubvolumes.join(', ')}), which a snapshot leaves out as empty folders`;
    }
  } else {
    if (!reflinkFilesystems.includes(source.fsType)) {
      return `source ${path.source} is on ${source.fsType}, which cannot share blocks (reflink needs XFS with reflink=1, btrfs or bcachefs)`;
    }
    if (facts.reflink === false) return `the filesystem of ${path.target} cannot share blocks (cp --reflink=always fails there; XFS needs reflink=1)`;
  }
  if (facts.target === 'foreign') {
    return `target ${path.target} already exists and was not made by stack-backup (no ${markerPath(path.target)} beside it): remove it or choose another target`;
  }
  return undefined;
}

function dirnameOf(target: string): string {
  return path.dirname(target);
}

/** The commands that make a snapshot, shell-ready, for the dry run and the run alike. */
export function createArgvs(driver: SnapshotDriverName, path: SnapshotPath): string[][] {
  if (driver === 'btrfs') {
    // The user owns the source subvolume: the snapshot needs no namespace, which keeps it quick.
    return [['btrfs', 'subvolume', 'snapshot', '-r', '--', path.source, path.target]];
  }
  // mkdir fails when the target exists (cp would copy into it); -T then copies the source's
  // contents onto that new folder, owners and modes kept.
  return [
    ['mkdir', '--', path.target],
    [...unshareArgv, 'cp', '-a', '--reflink=always', '-T', '--', path.source, path.target],
  ];
}

/** The commands that remove a snapshot, for the dry run and the run alike. */
export function removeArgvs(driver: SnapshotDriverName, target: string): string[][] {
  if (driver === 'btrfs') {
    return [
      ['btrfs', 'property', 'set', '-ts', target, 'ro', 'false'],
      // Needs user_subvol_rm_allowed; without it, the empty subvolume is removed with rmdir
      // (kernels since 4.18 let its owner), after its files, inside the user's namespace.
      [...unshareArgv, 'sh', '-c', 'btrfs subvolume delete -- "$1" >/dev/null 2>&1 || rm -rf --one-file-system -- "$1"', 'sh', target],
    ];
  }
  return [[...unshareArgv, 'rm', '-rf', '--one-file-system', '--', target]];
}

/**
 * Prints one line per fact. Run in a child process: a path on a mount that hangs must not hold
 * this process. `findmnt -T` names the mount a path is on (stat's %m would stop at a btrfs
 * subvolume, whose device number differs from its filesystem's).
 */
const factsScript = [
  'source=$1 target=$2 probe=$3',
  'parent=$(dirname -- "$target")',
  'if [ -e "$source" ]; then echo source.exists=1; if [ -d "$source" ]; then echo source.directory=1; fi; echo "source.fstype=$(stat -f -c %T -- "$source")"; echo "source.inode=$(stat -c %i -- "$source")"; echo "source.mount=$(findmnt -n -o TARGET -T "$source" | head -n 1)"; fi',
  'if [ -d "$parent" ]; then echo parent.exists=1; if [ -w "$parent" ]; then echo parent.writable=1; fi; echo "parent.fstype=$(stat -f -c %T -- "$parent")"; echo "parent.mount=$(findmnt -n -o TARGET -T "$parent" | head -n 1)"; fi',
  'if [ -e "$target" ] || [ -L "$target" ]; then echo target.exists=1; fi',
  'if [ -f "$target.stack-backup" ]; then echo target.marker=1; fi',
  // The reflink probe: a file cloned beside the target and removed at once.
  'if [ "$probe" = 1 ] && [ -d "$parent" ] && [ -w "$parent" ]; then file=$(mktemp -p "$parent" .stack-backup-probe.XXXXXX) && { if cp --reflink=always -- "$file" "$file.clone" 2>/dev/null; then echo reflink=1; else echo reflink=0; fi; rm -f -- "$file" "$file.clone"; }; fi',
  'exit 0',
].join('; ');

/** Subvolume roots below the source: folders with the root inode, not descended into. */
const nestedScript = 'find "$1" -mindepth 1 -xdev -type d -inum 256 -print 2>/dev/null; exit 0';

export function nestedArgv(source: string): string[] {
  return [...unshareArgv, 'sh', '-c', nestedScript, 'sh', source];
}

export function factsArgv(snapshotPath: SnapshotPath, reflinkProbe: boolean): string[] {
  return ['sh', '-c', factsScript, 'sh', snapshotPath.source, snapshotPath.target, reflinkProbe ? '1' : '0'];
}

export function parseFacts(output: string): PathFacts {
  const values = new Map<string, string>();
  for (const line of output.split('\n')) {
    const separator = line.indexOf('=');
    if (separator > 0) values.set(line.slice(0, separator), line.slice(separator + 1));
  }
  const flag = (key: string) => values.get(key) === '1';
  const targetExists = flag('target.exists');
  return {
    source: {
      exists: flag('source.exists'),
      directory: flag('source.directory'),
      fsType: values.get('source.fstype') ?? 'unknown',
      inode: Number(values.get('source.inode') ?? Number.NaN),
      mount: values.get('source.mount') ?? '',
    },
    parent: {
      exists: flag('parent.exists'),
      writable: flag('parent.writable'),
      mount: values.get('parent.mount') ?? '',
      fsType: values.get('parent.fstype') ?? 'unknown',
    },
    target: !targetExists ? 'absent' : flag('target.marker') ? 'ours' : 'foreign',
    ...(values.has('reflink') ? { reflink: flag('reflink') } : {}),
  };
}

export function createSnapshots(run: CommandRunner): Snapshots {
  async function mustSucceed(argv: readonly string[], timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
    const result = await run(argv, { timeoutMs, signal });
    if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs));
    return result.stdout;
  }
  return {
    async facts(snapshotPath, probe, signal) {
      const output = await mustSucceed(factsArgv(snapshotPath, probe.reflink), factsTimeoutMs, signal);
      return parseFacts(output);
    },
    async nestedSubvolumes(source, signal) {
      // The source's folders may be 0700 and a subordinate UID's: only the namespace sees them all.
      const output = await mustSucceed(nestedArgv(source), factsTimeoutMs, signal);
      return output.split('\n').filter((line) => line !== '');
    },
    async targetState(target, signal) {
      const output = await mustSucceed(factsArgv({ source: '/nonexistent', target }, false), factsTimeoutMs, signal);
      return parseFacts(output).target;
    },
    async create(driver, snapshotPath, owner, signal) {
      await writeFile(markerPath(snapshotPath.target), `${JSON.stringify({ madeBy: 'stack-backup', owner, driver, source: snapshotPath.source })}\n`);
      for (const argv of createArgvs(driver, snapshotPath)) await mustSucceed(argv, snapshotTimeoutMs, signal);
    },
    async remove(driver, target, signal) {
      const state = await this.targetState(target, signal);
      if (state !== 'absent') {
        for (const argv of removeArgvs(driver, target)) await mustSucceed(argv, snapshotTimeoutMs, signal);
        if ((await this.targetState(target, signal)) !== 'absent') throw new CommandError(`${target} is still there after its removal`);
      }
      await rm(markerPath(target), { force: true });
    },
  };
}
