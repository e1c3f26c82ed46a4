/**
 * Paths that stack-backup makes on disk and removes later: snapshots today, and the restore's
 * staging folders, old copies and scratch folders. The one rule for all of them: a path is
 * removed only while it is still the very thing that was made, known by its identity, never by
 * its name alone. So a user's folder that took the name, a link planted there, or a folder whose
 * parent now resolves elsewhere is kept and named, never deleted.
 *
 * The identity is what an unprivileged user can read and a rename keeps: the filesystem (statfs
 * f_fsid; btrfs derives it from the filesystem's UUID and the subvolume's ID, so it names the
 * subvolume), the inode, the birth time (nanoseconds), and for a btrfs subvolume its ID
 * (`btrfs inspect-internal rootid`, which needs no privilege; `btrfs subvolume show`, which would
 * give the UUIDs, needs CAP_SYS_ADMIN in btrfs-progs 6.2). A snapshot's root has its source's
 * inode (256) and birth time, but another subvolume ID and f_fsid. The real path of the folder
 * the path was made in is kept too: a removal that finds that folder resolving elsewhere (a link
 * planted above the path) refuses. The check and the removal run in one child process, so
 * nothing changes between them but what the kernel does meanwhile.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CommandError, TimeoutError } from '../errors.js';
import { describeFailure, type CommandRunner } from './process.js';

/** What a made path was, as read just after it was made. */
export interface PathIdentity {
  /** statfs f_fsid, as `stat -f -c %i` prints it. */
  filesystem: string;
  inode: string;
  /** Birth time as `stat -c %w` prints it (nanoseconds), or "-" where the filesystem keeps none. */
  born: string;
  /** btrfs: the subvolume's ID, for a subvolume's root folder; else absent. */
  subvolume?: string | undefined;
  /** The real path of the folder it was made in. */
  folder: string;
  /** st_dev when it was read; for the log only (a btrfs subvolume's changes when it is mounted again). */
  device?: string | undefined;
}

/** What is at a path now, read without following a link there. */
export type PathLook =
  | { kind: 'absent' }
  | { kind: 'link'; to: string }
  | { kind: 'folder' | 'other'; identity: PathIdentity };

/** How a made path is removed: its files (inside the user's namespace), or as a btrfs subvolume. */
export type RemovalMethod = 'files' | 'btrfs-subvolume';

export type RemovalOutcome = { outcome: 'removed' } | { outcome: 'absent' } | { outcome: 'kept'; reason: string };

/** Inside the user's namespace, as the container's files see it (local Podman, not the API). */
export const unshareArgv = ['env', '-u', 'CONTAINER_HOST', '-u', 'CONTAINER_CONNECTION', 'podman', 'unshare'] as const;

/**
 * Shell function `identify PATH`: one `key=value` line per fact, without following a link at
 * PATH. `stat` without -L reads the path itself; `realpath -e` resolves the folder it is in.
 */
export const identifyFunction = [
  'identify() {',
  'if [ -L "$1" ]; then echo kind=link; echo "to=$(readlink -- "$1")"; return 0; fi;',
  'if [ ! -e "$1" ]; then echo kind=absent; return 0; fi;',
  'if [ -d "$1" ]; then echo kind=folder; else echo kind=other; fi;',
  'stat --printf "device=%d\\ninode=%i\\nborn=%w\\n" -- "$1";',
  'echo "filesystem=$(stat -f -c %i -- "$1")";',
  'echo "folder=$(realpath -e -- "$(dirname -- "$1")")";',
  'if [ "$(stat -f -c %T -- "$1")" = btrfs ] && [ "$(stat -c %i -- "$1")" = 256 ]; then echo "subvolume=$(btrfs inspect-internal rootid -- "$1" 2>/dev/null)"; fi;',
  '}',
].join(' ');

export function identifyArgv(path: string): string[] {
  return ['sh', '-c', `${identifyFunction}; identify "$1"`, 'sh', path];
}

/** Parses `identify` lines (optionally under a prefix such as "target."). */
export function parseLook(output: string, prefix = ''): PathLook {
  const values = new Map<string, string>();
  for (const line of output.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const separator = line.indexOf('=');
    if (separator > prefix.length) values.set(line.slice(prefix.length, separator), line.slice(separator + 1));
  }
  const kind = values.get('kind');
  if (kind === 'link') return { kind: 'link', to: values.get('to') ?? '' };
  if (kind !== 'folder' && kind !== 'other') return { kind: 'absent' };
  return {
    kind,
    identity: {
      filesystem: values.get('filesystem') ?? '',
      inode: values.get('inode') ?? '',
      born: values.get('born') ?? '-',
      ...(values.get('subvolume') ? { subvolume: values.get('subvolume') } : {}),
      folder: values.get('folder') ?? '',
      device: values.get('device'),
    },
  };
}

/** Why `found` is not the thing `made` describes, or undefined when it is. */
export function identityMismatch(made: PathIdentity, found: PathIdentity): string | undefined {
  if (found.folder !== made.folder) return `its folder now resolves to ${found.folder}, not ${made.folder} as when it was made`;
  if (found.filesystem !== made.filesystem || found.inode !== made.inode) return 'it is another folder than the one stack-backup made (filesystem or inode differ)';
  if (found.born !== made.born) return `it is another folder than the one stack-backup made (born ${found.born}, not ${made.born})`;
  if ((found.subvolume ?? '') !== (made.subvolume ?? '')) return `it is another subvolume than the one stack-backup made (ID ${found.subvolume ?? 'none'}, not ${made.subvolume ?? 'none'})`;
  return undefined;
}

/**
 * The removal, run as one script: it looks at PATH again (no link, the same real folder, the
 * same filesystem, inode, birth time and subvolume ID) and removes it only then. Exit 0 and
 * `removed` or `absent`; exit 3 and `kept: WHY` when it is not what was made; anything else is
 * a failure. `rm -rf` never follows a link inside the tree, and `--one-file-system` keeps it on
 * the tree's own filesystem (a mount inside stays).
 */
const removeScript = [
  'p=$1 folder=$2 filesystem=$3 inode=$4 born=$5 subvolume=$6 method=$7',
  'if [ -L "$p" ]; then echo "kept: it is a symbolic link (to $(readlink -- "$p")), and stack-backup never removes through a link"; exit 3; fi',
  'if [ ! -e "$p" ]; then echo absent; exit 0; fi',
  'if [ ! -d "$p" ]; then echo "kept: it is not a folder"; exit 3; fi',
  'real=$(realpath -e -- "$(dirname -- "$p")")',
  'if [ "$real" != "$folder" ]; then echo "kept: its folder now resolves to $real, not $folder as when it was made"; exit 3; fi',
  'if [ "$(stat -f -c %i -- "$p") $(stat -c %i -- "$p")" != "$filesystem $inode" ] || [ "$(stat -c %w -- "$p")" != "$born" ]; then echo "kept: it is another folder than the one stack-backup made (filesystem, inode or birth time differ)"; exit 3; fi',
  'if [ -n "$subvolume" ] && [ "$(btrfs inspect-internal rootid -- "$p" 2>/dev/null)" != "$subvolume" ]; then echo "kept: it is another subvolume than the one stack-backup made"; exit 3; fi',
  // btrfs: writable first (a read-only snapshot cannot be emptied), then delete the subvolume
  // (needs user_subvol_rm_allowed); without that mount option its files go, then the empty
  // subvolume, which kernels since 4.18 let its owner remove with rmdir.
  'if [ "$method" = btrfs-subvolume ]; then btrfs property set -ts "$p" ro false >/dev/null 2>&1; btrfs subvolume delete -- "$p" >/dev/null 2>&1 || rm -rf --one-file-system -- "$p"; else rm -rf --one-file-system -- "$p"; fi',
  'if [ -e "$p" ] || [ -L "$p" ]; then echo "still there after its removal" >&2; exit 1; fi',
  'echo removed',
].join('\n');

/** The command that removes `path` if it is still `made`, inside the user's namespace. */
export function removeArgv(path: string, made: PathIdentity, method: RemovalMethod): string[] {
  return [...unshareArgv, 'sh', '-c', removeScript, 'sh', path, made.folder, made.filesystem, made.inode, made.born, made.subvolume ?? '', method];
}

/** The removal as a person reads it in a dry run: the check, then the commands. */
export function describeRemoval(path: string, method: RemovalMethod, what = 'what stack-backup made'): string[] {
  const check = `only if ${path} is still ${what} (not a link; its folder resolves to the same real path; the same filesystem, inode and birth time${method === 'btrfs-subvolume' ? ' and subvolume ID' : ''}), else it is kept and named; inside podman unshare:`;
  return method === 'btrfs-subvolume'
    ? [check, `btrfs property set -ts ${path} ro false`, `btrfs subvolume delete -- ${path} (else rm -rf --one-file-system -- ${path})`]
    : [check, `rm -rf --one-file-system -- ${path}`];
}

/**
 * The rename, run as one script inside the user's namespace: `from` must still be `made` (as for
 * a removal), nothing may be at `to`, and both lie in one folder (a rename within a folder never
 * changes a folder's `..`, so it works for read-only btrfs subvolumes and for folders of
 * subordinate UIDs alike). `mv -n -T` renames with RENAME_NOREPLACE. Exit 0 and `renamed`, or
 * `already` when `to` already holds `made` and `from` is gone (a rename done before a crash);
 * exit 3 and `kept: WHY` when it must not be done; anything else is a failure.
 */
const renameScript = [
  'from=$1 to=$2 folder=$3 filesystem=$4 inode=$5 born=$6 subvolume=$7',
  'same() { [ ! -L "$1" ] && [ -d "$1" ] && [ "$(realpath -e -- "$(dirname -- "$1")")" = "$folder" ] && [ "$(stat -f -c %i -- "$1") $(stat -c %i -- "$1")" = "$filesystem $inode" ] && [ "$(stat -c %w -- "$1")" = "$born" ] && { [ -z "$subvolume" ] || [ "$(btrfs inspect-internal rootid -- "$1" 2>/dev/null)" = "$subvolume" ]; }; }',
  'if [ ! -e "$from" ] && [ ! -L "$from" ]; then if same "$to"; then echo already; exit 0; fi; echo "kept: $from is gone, and $to is not what was there"; exit 3; fi',
  'if ! same "$from"; then echo "kept: $from is not what stack-backup recorded there (a link, another folder, or its folder resolves elsewhere)"; exit 3; fi',
  'if [ -e "$to" ] || [ -L "$to" ]; then echo "kept: $to exists, and a rename never replaces anything"; exit 3; fi',
  'mv -n -T -- "$from" "$to" || exit 1',
  'if same "$to" && [ ! -e "$from" ]; then echo renamed; exit 0; fi',
  'echo "the rename of $from to $to did not take place" >&2; exit 1',
].join('\n');

export function renameArgv(from: string, to: string, made: PathIdentity): string[] {
  return [...unshareArgv, 'sh', '-c', renameScript, 'sh', from, to, made.folder, made.filesystem, made.inode, made.born, made.subvolume ?? ''];
}

export type RenameOutcome = { outcome: 'renamed' } | { outcome: 'already' } | { outcome: 'kept'; reason: string };

/** How a folder of stack-backup's is made: a plain folder, or a btrfs subvolume (where the data it stands for is one). */
export type FolderKind = 'folder' | 'btrfs-subvolume';

/** The command that makes a folder exclusively: `mkdir` and `btrfs subvolume create` both fail on anything at the path. */
export function makeFolderArgv(path: string, kind: FolderKind): string[] {
  return kind === 'btrfs-subvolume' ? ['btrfs', 'subvolume', 'create', '--', path] : ['mkdir', '-m', '700', '--', path];
}

/**
 * What a restore left in a folder, read inside the user's namespace (the files belong to
 * subordinate UIDs, in folders of mode 0700): how many regular files and symlinks are below it,
 * whether each probe (a path relative to it) is there, and its top-level names.
 */
const inspectScript = [
  'folder=$1; shift',
  'echo "files=$(find "$folder" -mindepth 1 \\( -type f -o -type l \\) | wc -l)"',
  'for name in "$folder"/* "$folder"/.[!.]* "$folder"/..?*; do if [ -e "$name" ] || [ -L "$name" ]; then echo "top=${name##*/}"; fi; done',
  'index=0; for probe in "$@"; do if [ -e "$folder/$probe" ] || [ -L "$folder/$probe" ]; then echo "probe.$index=1"; else echo "probe.$index=0"; fi; index=$((index + 1)); done',
].join('\n');

export function inspectArgv(folder: string, probes: readonly string[]): string[] {
  return [...unshareArgv, 'sh', '-c', inspectScript, 'sh', folder, ...probes];
}

export interface FolderContents {
  /** Regular files and symlinks below it. */
  files: number;
  /** Whether each probe is there, in order. */
  present: boolean[];
  /** Its top-level names. */
  names: string[];
}

export function parseContents(output: string, probes: number): FolderContents {
  const lines = output.split('\n');
  const files = Number(lines.find((line) => line.startsWith('files='))?.slice('files='.length) ?? Number.NaN);
  const names = lines.filter((line) => line.startsWith('top=')).map((line) => line.slice('top='.length));
  const present = Array.from({ length: probes }, (_, index) => lines.includes(`probe.${index}=1`));
  return { files, present, names };
}

/**
 * Moves everything in `folder/child` up into `folder`, then removes the empty child, inside the
 * user's namespace: Duplicati releases that keep a selected folder's name (2.3.0.109 canary,
 * fc2e039b9) restore a job with several sources one level deeper than the stable ones. The child
 * is first renamed aside, so an entry of the same name inside it cannot collide with it.
 */
const liftScript = [
  'folder=$1 child=$2 aside="$1/.stack-backup-landing"',
  'mv -n -T -- "$folder/$child" "$aside" || exit 1',
  'if [ -e "$folder/$child" ]; then echo "$folder/$child is still there" >&2; exit 1; fi',
  'find "$aside" -mindepth 1 -maxdepth 1 -exec mv -n -t "$folder" -- {} + || exit 1',
  'rmdir -- "$aside"',
].join('\n');

export function liftArgv(folder: string, child: string): string[] {
  return [...unshareArgv, 'sh', '-c', liftScript, 'sh', folder, child];
}

/** Gives `to` the owner, group, mode and mtime of `from` (the folder it replaces), inside the user's namespace. */
export function copyAttributesArgv(from: string, to: string): string[] {
  return [...unshareArgv, 'sh', '-c', 'chown --reference="$1" -- "$2" && chmod --reference="$1" -- "$2" && touch -r "$1" -- "$2"', 'sh', from, to];
}

export const lookTimeoutMs = 30_000;
/** How long removing one made folder may take: a large copy's files go one by one. */
export const removalTimeoutMs = 30 * 60_000;

export interface MadePaths {
  /** What is at the path now, without following a link there. */
  look(path: string, signal?: AbortSignal): Promise<PathLook>;
  /** Removes the path only while it is still `made`; never throws for what it keeps. */
  remove(path: string, made: PathIdentity, method: RemovalMethod, timeoutMs: number, signal?: AbortSignal): Promise<RemovalOutcome>;
  /** Makes a folder exclusively (mode 0700, or a subvolume) and returns what it made. */
  makeFolder(path: string, kind: FolderKind, signal?: AbortSignal): Promise<PathIdentity>;
  /** Renames `from` (which must still be `made`) to `to` in the same folder, never replacing anything. */
  rename(from: string, to: string, made: PathIdentity, timeoutMs: number, signal?: AbortSignal): Promise<RenameOutcome>;
  /** What is in a folder (a restore's staging folder), read inside the user's namespace. */
  contents(folder: string, probes: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<FolderContents>;
  /** Moves the entries of `folder/child` up into `folder` (a restore that landed one level deeper). */
  lift(folder: string, child: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Gives `to` the owner, group, mode and mtime of `from`. */
  copyAttributes(from: string, to: string, signal?: AbortSignal): Promise<void>;
  /** Free bytes for an unprivileged user on the filesystem of `folder`. */
  freeBytes(folder: string): Promise<number>;
}

export function createMadePaths(run: CommandRunner): MadePaths {
  return {
    async look(path, signal) {
      const result = await run(identifyArgv(path), { timeoutMs: lookTimeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, lookTimeoutMs));
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, lookTimeoutMs), result.output);
      return parseLook(result.stdout);
    },
    async contents(folder, probes, timeoutMs, signal) {
      const result = await run(inspectArgv(folder, probes), { timeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
      return parseContents(result.stdout, probes.length);
    },
    async lift(folder, child, timeoutMs, signal) {
      const result = await run(liftArgv(folder, child), { timeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
    },
    async copyAttributes(from, to, signal) {
      const result = await run(copyAttributesArgv(from, to), { timeoutMs: lookTimeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, lookTimeoutMs));
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, lookTimeoutMs), result.output);
    },
    async freeBytes(folder) {
      const stats = await statfs(folder);
      return stats.bavail * stats.bsize;
    },
    async makeFolder(path, kind, signal) {
      const result = await run(makeFolderArgv(path, kind), { timeoutMs: lookTimeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, lookTimeoutMs));
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, lookTimeoutMs), result.output);
      const made = await this.look(path, signal);
      if (made.kind !== 'folder' || (kind === 'btrfs-subvolume' && made.identity.subvolume === undefined)) {
        throw new CommandError(`${path} is not the ${kind === 'btrfs-subvolume' ? 'subvolume' : 'folder'} just made`);
      }
      return made.identity;
    },
    async rename(from, to, made, timeoutMs, signal) {
      if (dirname(from) !== dirname(to)) throw new Error(`a rename of stack-backup's stays in one folder: ${from} -> ${to}`);
      const result = await run(renameArgv(from, to, made), { timeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
      const said = result.stdout.trim().split('\n').pop() ?? '';
      if (result.exitCode === 3 && said.startsWith('kept: ')) return { outcome: 'kept', reason: said.slice('kept: '.length) };
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
      return said === 'already' ? { outcome: 'already' } : { outcome: 'renamed' };
    },
    async remove(path, made, method, timeoutMs, signal) {
      const result = await run(removeArgv(path, made, method), { timeoutMs, signal });
      if (result.timedOut) throw new TimeoutError(describeFailure(result, timeoutMs));
      const said = result.stdout.trim().split('\n').pop() ?? '';
      if (result.exitCode === 3 && said.startsWith('kept: ')) return { outcome: 'kept', reason: said.slice('kept: '.length) };
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
      return said === 'absent' ? { outcome: 'absent' } : { outcome: 'removed' };
    },
  };
}
