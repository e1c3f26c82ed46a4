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
import { constants, mkdirSync, openSync, readFileSync, closeSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { SnapshotDriverName, SnapshotPath, SnapshotSettings } from '../config/types.js';
import { CommandError, TimeoutError, errorMessage } from '../errors.js';
import { identifyFunction, identityMismatch, parseLook, removalTimeoutMs, unshareArgv, type MadePaths, type PathIdentity, type RemovalMethod, type RemovalOutcome } from './made-paths.js';
import { describeFailure, type CommandRunner } from './process.js';

/** How long creating or removing one snapshot may take: reflink copies grow with the number of files. */
export const snapshotTimeoutMs = removalTimeoutMs;
/** How long reading a path's facts may take (a hung mount must not hang the run). */
export const factsTimeoutMs = 30_000;

export { unshareArgv };

/** Beside the target, never inside it: a read-only snapshot cannot hold it, and the source must not. */
export function markerPath(target: string): string {
  return `${target}.stack-backup`;
}

/**
 * Where a btrfs snapshot is made before it is renamed to its target: beside it, under a name no
 * one can know in advance (the run's random ID), looked at just before (nothing there) and just
 * after (a subvolume of its own: had a folder been planted there, `btrfs subvolume snapshot`
 * would have put the snapshot inside it instead). Beside the target, in the same folder, since
 * a read-only subvolume cannot move to another folder (its `..` would change: EROFS).
 */
export function temporaryPath(target: string, run: string): string {
  return `${target}.stack-backup-new.${run}`;
}

/** What the marker beside a snapshot says: who made what, and how to know it again. */
export interface SnapshotMarker {
  madeBy: 'stack-backup';
  stack: string;
  run: string;
  driver: SnapshotDriverName;
  source: string;
  target: string;
  identity: PathIdentity;
}

/** What a target path holds before a snapshot is made there. */
export type TargetState =
  /** Nothing; `staleMarker`: a marker of a snapshot that is gone is left beside it. */
  | { state: 'absent'; staleMarker: boolean }
  /** A snapshot that stack-backup made: the marker beside it describes exactly what is there. */
  | { state: 'ours'; marker: SnapshotMarker }
  /** Anything else, with why it is not stack-backup's. */
  | { state: 'foreign'; reason: string };

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

/** What a snapshot's creation made, known as soon as it exists, before it is at its target (btrfs). */
export interface MadeSnapshot {
  identity: PathIdentity;
  /** btrfs: where it was made, beside the target, before its rename to the target (temporaryPath). */
  holder?: string | undefined;
}

/** A snapshot to remove: what the crash journal keeps of it. */
export interface SnapshotToRemove {
  driver: SnapshotDriverName;
  target: string;
  /** What was made; absent when the run ended before it knew (or an earlier version wrote it). */
  made?: MadeSnapshot | undefined;
}

export interface Snapshots {
  /** Reads the facts of one path; touches nothing but a probe file when `reflink` (removed at once). */
  facts(path: SnapshotPath, probe: { reflink: boolean }, signal?: AbortSignal): Promise<PathFacts>;
  /** Subvolume roots inside a btrfs source, read inside the user's namespace. */
  nestedSubvolumes(source: string, signal?: AbortSignal): Promise<string[]>;
  /** Whether the target exists and who made it; the last look before a snapshot is made. */
  targetState(target: string, signal?: AbortSignal): Promise<TargetState>;
  /**
   * Makes the snapshot exclusively (never into or over anything that exists), calls `made` as
   * soon as it knows what it made (for the crash journal, before the snapshot is at its target),
   * then writes the marker beside it exclusively.
   */
  create(
    driver: SnapshotDriverName,
    path: SnapshotPath,
    owner: { stack: string; run: string },
    made: (snapshot: MadeSnapshot) => void,
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * Removes the snapshot, and then its marker, only where it is still what was made; anything
   * else at the target is kept and said so (`kept`). A target already gone is fine.
   */
  remove(snapshot: SnapshotToRemove, signal?: AbortSignal): Promise<RemovalOutcome>;
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
  if (facts.target.state === 'foreign') {
    return `target ${path.target} already exists and was not made by stack-backup (${facts.target.reason}): remove it or choose another target`;
  }
  return undefined;
}

function dirnameOf(target: string): string {
  return path.dirname(target);
}

/** How a snapshot of this driver is removed. */
export function removalMethod(driver: SnapshotDriverName): RemovalMethod {
  return driver === 'btrfs' ? 'btrfs-subvolume' : 'files';
}

/**
 * The commands that make a snapshot, shell-ready, for the dry run and the run alike. btrfs: a
 * read-only snapshot at a fresh name beside the target (temporaryPath), then renamed to the
 * target by `mv -n -T`, which renames with RENAME_NOREPLACE (coreutils 9.1 `renameat2`) and so
 * never replaces what may have appeared at the target meanwhile. reflink: `mkdir` fails when
 * anything is at the target (a link too), and `cp -T` then copies the source's contents into
 * that new folder, owners and modes kept.
 */
export function createArgvs(driver: SnapshotDriverName, path: SnapshotPath, temporary = temporaryPath(path.target, 'RUN')): string[][] {
  if (driver === 'btrfs') {
    return [
      // The user owns the source subvolume: the snapshot needs no namespace, which keeps it quick.
      ['btrfs', 'subvolume', 'snapshot', '-r', '--', path.source, temporary],
      ['mv', '-n', '-T', '--', temporary, path.target],
    ];
  }
  return [
    ['mkdir', '--', path.target],
    [...unshareArgv, 'cp', '-a', '--reflink=always', '-T', '--', path.source, path.target],
  ];
}

function basename(target: string): string {
  return path.basename(target);
}

/**
 * Prints one line per fact. Run in a child process: a path on a mount that hangs must not hold
 * this process. `findmnt -T` names the mount a path is on (stat's %m would stop at a btrfs
 * subvolume, whose device number differs from its filesystem's). The target is looked at
 * without following a link there; whether it is stack-backup's is decided by comparing what
 * is there with what the marker beside it says (readMarker).
 */
const factsScript = [
  identifyFunction,
  'source=$1 target=$2 probe=$3',
  'parent=$(dirname -- "$target")',
  'if [ -e "$source" ]; then echo source.exists=1; if [ -d "$source" ]; then echo source.directory=1; fi; echo "source.fstype=$(stat -f -c %T -- "$source")"; echo "source.inode=$(stat -c %i -- "$source")"; echo "source.mount=$(findmnt -n -o TARGET -T "$source" | head -n 1)"; fi',
  'if [ -d "$parent" ]; then echo parent.exists=1; if [ -w "$parent" ]; then echo parent.writable=1; fi; echo "parent.fstype=$(stat -f -c %T -- "$parent")"; echo "parent.mount=$(findmnt -n -o TARGET -T "$parent" | head -n 1)"; fi',
  'identify "$target" | sed "s/^/target./"',
  'if [ -e "$target.stack-backup" ] || [ -L "$target.stack-backup" ]; then echo marker.exists=1; fi',
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

/** The facts of a path, the target's state decided with the marker's text (undefined: none readable). */
export function parseFacts(output: string, markerText?: string, target = ''): PathFacts {
  const values = new Map<string, string>();
  for (const line of output.split('\n')) {
    const separator = line.indexOf('=');
    if (separator > 0) values.set(line.slice(0, separator), line.slice(separator + 1));
  }
  const flag = (key: string) => values.get(key) === '1';
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
    target: judgeTarget(target, parseLook(output, 'target.'), flag('marker.exists'), markerText),
    ...(values.has('reflink') ? { reflink: flag('reflink') } : {}),
  };
}

/** A marker's text as stack-backup writes it, or undefined when it is not one (an earlier version's has no identity). */
export function parseMarker(text: string | undefined): SnapshotMarker | undefined {
  if (text === undefined) return undefined;
  try {
    const marker = JSON.parse(text) as Partial<SnapshotMarker>;
    const identity = marker.identity;
    if (marker.madeBy !== 'stack-backup' || !identity || typeof identity.inode !== 'string' || typeof identity.folder !== 'string') return undefined;
    if (marker.driver !== 'btrfs' && marker.driver !== 'reflink') return undefined;
    return marker as SnapshotMarker;
  } catch {
    return undefined;
  }
}

/**
 * Whose the target is: stack-backup's only when its marker describes exactly what is there
 * (PathIdentity); a marker alone proves nothing (a user's folder may have taken the name), and
 * a link is never stack-backup's.
 */
export function judgeTarget(target: string, look: ReturnType<typeof parseLook>, markerExists: boolean, markerText: string | undefined): TargetState {
  if (look.kind === 'absent') return { state: 'absent', staleMarker: markerExists };
  if (look.kind === 'link') return { state: 'foreign', reason: `it is a symbolic link to ${look.to}` };
  if (!markerExists) return { state: 'foreign', reason: `no ${markerPath(target)} beside it` };
  const marker = parseMarker(markerText);
  if (!marker) return { state: 'foreign', reason: `${markerPath(target)} beside it does not say what stack-backup made there (an earlier version wrote it, or it is not stack-backup's)` };
  if (look.kind !== 'folder') return { state: 'foreign', reason: 'it is not a folder' };
  const mismatch = identityMismatch(marker.identity, look.identity);
  if (mismatch !== undefined) return { state: 'foreign', reason: `${markerPath(target)} describes what stack-backup made there, but ${mismatch}` };
  return { state: 'ours', marker };
}

/** Reads a marker without following a link at its path; undefined when there is none to read. */
function readMarker(target: string): string | undefined {
  let descriptor: number;
  try {
    descriptor = openSync(markerPath(target), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    return readFileSync(descriptor, 'utf8');
  } catch {
    return undefined;
  } finally {
    closeSync(descriptor);
  }
}

/**
 * Removes a marker of stack-backup's: only a regular file whose text is a marker of ours (a
 * link at its path is only unlinked, never followed). Missing is fine.
 */
function removeMarker(target: string): void {
  const text = readMarker(target);
  if (text === undefined) return;
  let parsed: { madeBy?: unknown } | undefined;
  try {
    parsed = JSON.parse(text) as { madeBy?: unknown };
  } catch {
    parsed = undefined;
  }
  if (parsed?.madeBy !== 'stack-backup') return;
  try {
    unlinkSync(markerPath(target));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** mkdir, which fails on anything at the path (a link too); said as a person reads it. */
function makeExclusively(folder: string, mode: number): void {
  try {
    mkdirSync(folder, { mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new CommandError(`${folder} appeared since it was looked at; it was left alone`);
    throw error;
  }
}

export function createSnapshots(run: CommandRunner, paths: MadePaths): Snapshots {
  async function mustSucceed(argv: readonly string[], timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
    const result = await run(argv, { timeoutMs, signal });
    if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
    return result.stdout;
  }

  /** What the run made at `where`, read at once (it must be a folder). */
  async function identify(where: string, signal: AbortSignal | undefined): Promise<PathIdentity> {
    const look = await paths.look(where, signal);
    if (look.kind !== 'folder') throw new CommandError(`${where} is not the folder that was just made (${look.kind})`);
    return look.identity;
  }

  async function removeAt(where: string, identity: PathIdentity, method: RemovalMethod, signal: AbortSignal | undefined): Promise<RemovalOutcome> {
    return paths.remove(where, identity, method, snapshotTimeoutMs, signal);
  }

  return {
    async facts(snapshotPath, probe, signal) {
      const output = await mustSucceed(factsArgv(snapshotPath, probe.reflink), factsTimeoutMs, signal);
      return parseFacts(output, readMarker(snapshotPath.target), snapshotPath.target);
    },
    async nestedSubvolumes(source, signal) {
      // The source's folders may be 0700 and a subordinate UID's: only the namespace sees them all.
      const output = await mustSucceed(nestedArgv(source), factsTimeoutMs, signal);
      return output.split('\n').filter((line) => line !== '');
    },
    async targetState(target, signal) {
      const output = await mustSucceed(factsArgv({ source: '/nonexistent', target }, false), factsTimeoutMs, signal);
      return parseFacts(output, readMarker(target), target).target;
    },
    async create(driver, snapshotPath, owner, made, signal) {
      const { target } = snapshotPath;
      let identity: PathIdentity;
      if (driver === 'btrfs') {
        const temporary = temporaryPath(target, owner.run);
        const [snapshot, rename] = createArgvs(driver, snapshotPath, temporary);
        if ((await paths.look(temporary, signal)).kind !== 'absent') throw new CommandError(`${temporary} exists: it was left alone`);
        await mustSucceed(snapshot!, snapshotTimeoutMs, signal);
        identity = await identify(temporary, signal);
        if (identity.subvolume === undefined) {
          throw new CommandError(`${temporary} is not the subvolume just made (something else took its name): it was left alone`);
        }
        made({ identity, holder: temporary });
        await mustSucceed(rename!, snapshotTimeoutMs, signal);
        // mv -n succeeds without moving when the target exists: what is at the target decides.
        const there = await paths.look(target, signal);
        if (there.kind !== 'folder' || identityMismatch(identity, there.identity) !== undefined) {
          throw new CommandError(`${target} appeared while the snapshot was made: it was left alone, and the snapshot (at ${temporary}) is removed`);
        }
      } else {
        makeExclusively(target, 0o755);
        identity = await identify(target, signal);
        made({ identity });
      }
      const marker: SnapshotMarker = { madeBy: 'stack-backup', stack: owner.stack, run: owner.run, driver, source: snapshotPath.source, target, identity };
      // Exclusively ("wx" is O_CREAT|O_EXCL, which never follows a link): a marker already there is not this run's.
      writeFileSync(markerPath(target), `${JSON.stringify(marker)}\n`, { flag: 'wx' });
      if (driver !== 'btrfs') await mustSucceed(createArgvs(driver, snapshotPath)[1]!, snapshotTimeoutMs, signal);
    },
    async remove(snapshot, signal) {
      const { target, made } = snapshot;
      const method = removalMethod(snapshot.driver);
      if (!made) {
        const look = await paths.look(target, signal);
        if (look.kind === 'absent') {
          removeMarker(target);
          return { outcome: 'absent' };
        }
        return { outcome: 'kept', reason: 'the crash journal records no identity for it (the run ended before it knew what it made, or an earlier version wrote the entry), so it cannot be told from a folder of someone else\'s' };
      }
      let outcome = await removeAt(target, made.identity, method, signal);
      if (made.holder !== undefined) {
        // The run may have ended between the snapshot and its rename: it is still at its first name.
        const atFirstName = await removeAt(made.holder, made.identity, method, signal);
        if (atFirstName.outcome === 'removed' && outcome.outcome !== 'removed') outcome = atFirstName;
      }
      if (outcome.outcome !== 'kept') removeMarker(target);
      return outcome;
    },
  };
}
