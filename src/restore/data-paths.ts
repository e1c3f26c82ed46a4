/**
 * Where a stack's data lives on the host, and where its restore is staged: pure, from the
 * stack's settings, its jobs' sources as the Duplicati container sees them, and that container's
 * volumes (Podman's inspect). In snapshot mode each `snapshot.paths[].source` is a data path
 * (its job backs up the target, as the container sees it); in stop mode each job source is one,
 * mapped to the host through the volume that holds it.
 *
 * Each data path is restored into a new staging folder beside it, on the same filesystem, then
 * swapped into place by rename; the old data goes to another name beside it. So the Duplicati
 * container must write the staging folder through a volume of the data's *parent* folder; a
 * volume of the data folder itself would also keep showing the old folder after the swap, so
 * the next backup would read the old data.
 */
import path from 'node:path';
import type { ContainerMount } from '../adapters/podman.js';
import type { FolderKind } from '../adapters/made-paths.js';
import type { StackConfig } from '../config/types.js';
import { within } from '../paths.js';

/** The names a restore gives beside a data path. */
export function stagingPathOf(live: string, run: string): string {
  return `${live}.stack-backup-restore-${run}`;
}

export function oldPathOf(live: string, run: string): string {
  return `${live}.stack-backup-old-${run}`;
}

/** One folder of the stack's data, and its restore. */
export interface DataPath {
  job: string;
  backupId: string;
  /** The job's source as the Duplicati container sees it: what its versions hold. */
  source: string;
  /** Where it lives on the host. */
  live: string;
  /** A btrfs subvolume (snapshot mode's btrfs sources: the next snapshot needs one), else a folder. */
  kind: FolderKind;
  /** The new folder beside it that Duplicati restores into, and where the container writes it. */
  staging: string;
  stagingInContainer: string;
  /** Where the data it replaces goes. */
  old: string;
}

export interface JobSources {
  job: string;
  backupId: string;
  /** As the Duplicati container sees them (Backup.Sources), folders with or without a trailing "/". */
  sources: string[];
}

/** The volume through which the container sees a path of its own, and the path on the host. */
export function hostPathOf(inContainer: string, mounts: readonly ContainerMount[]): { host: string; mount: ContainerMount } | undefined {
  const trimmed = trimSlash(inContainer);
  const mount = mounts.filter((candidate) => within(candidate.destination, trimmed)).sort((a, b) => b.destination.length - a.destination.length)[0];
  return mount ? { host: path.join(mount.source, path.relative(mount.destination, trimmed)), mount } : undefined;
}

/** Where the container sees a host path through a writable volume of a folder above it; undefined when none. */
export function writableInContainer(host: string, mounts: readonly ContainerMount[]): string | undefined {
  const mount = mounts
    .filter((candidate) => candidate.writable !== false && within(candidate.source, path.dirname(host)))
    .sort((a, b) => b.source.length - a.source.length)[0];
  return mount ? path.posix.join(mount.destination, path.relative(mount.source, host)) : undefined;
}

function trimSlash(folder: string): string {
  return folder.length > 1 ? folder.replace(/\/+$/, '') : folder;
}

export interface DataPathsInput {
  stack: StackConfig;
  jobs: readonly JobSources[];
  mounts: readonly ContainerMount[];
  run: string;
  /** Snapshot mode: which data paths are btrfs subvolumes (by host path). */
  subvolumes?: ReadonlySet<string>;
  container: string;
  /**
   * A restore swaps each path into place (default); a restore test only reads it and writes a
   * scratch folder beside it, so a volume of the data folder itself, or paths inside one another,
   * do not stop it.
   */
  purpose?: 'restore' | 'restore test';
}

/**
 * The stack's data paths, or the problems that refuse the restore (each names the job, the
 * source or the path, and what to change). Nothing is touched to find them.
 */
export function dataPathsOf(input: DataPathsInput): { paths: DataPath[]; problems: string[]; warnings: string[] } {
  const { stack, jobs, mounts, run, container } = input;
  const swapped = (input.purpose ?? 'restore') === 'restore';
  const paths: DataPath[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  const add = (job: JobSources, source: string, live: string) => {
    const staging = stagingPathOf(live, run);
    const stagingInContainer = writableInContainer(staging, mounts);
    if (stagingInContainer === undefined) {
      problems.push(
        swapped
          ? `the Duplicati container "${container}" cannot write beside ${live}, where its restore is staged: add a writable volume of its folder, e.g. -v ${path.dirname(live)}:/restore${path.dirname(live)} (a volume of ${live} itself would not do: after the swap it would keep showing the old data)`
          : `the Duplicati container "${container}" cannot write beside ${live}, where the restore test restores its sample: add a writable volume of its folder, e.g. -v ${path.dirname(live)}:/restore${path.dirname(live)}`,
      );
      return;
    }
    paths.push({
      job: job.job,
      backupId: job.backupId,
      source: trimSlash(source),
      live,
      kind: input.subvolumes?.has(live) ? 'btrfs-subvolume' : 'folder',
      staging,
      stagingInContainer,
      old: oldPathOf(live, run),
    });
  };
  if (stack.snapshot) {
    for (const [index, snapshotPath] of stack.snapshot.paths.entries()) {
      // The job reads the target; its versions hold the target's path as the container sees it.
      const covering = mounts.filter((mount) => within(mount.source, path.dirname(snapshotPath.target))).sort((a, b) => b.source.length - a.source.length)[0];
      if (!covering) {
        problems.push(`snapshot.paths[${index}]: the Duplicati container "${container}" does not see ${snapshotPath.target}, so no job's versions can be told to hold it`);
        continue;
      }
      const inContainer = path.posix.join(covering.destination, path.relative(covering.source, snapshotPath.target));
      const job = jobs.find((candidate) => candidate.sources.some((source) => trimSlash(source) === inContainer));
      if (!job) {
        problems.push(`snapshot.paths[${index}]: no job of the stack backs up ${inContainer} (where the container sees ${snapshotPath.target}); its jobs back up ${jobs.flatMap((candidate) => candidate.sources).join(', ') || 'nothing'}`);
        continue;
      }
      add(job, inContainer, snapshotPath.source);
      // The stack's jobs read the snapshot, but a volume of the source itself (another job's, a
      // stop-mode job of the live data) keeps showing the folder the swap renames away: that job
      // would back up the old data, and btrfs cannot free an old subvolume a mount still holds,
      // until the container is restarted.
      const pinned = swapped ? mounts.filter((mount) => within(snapshotPath.source, mount.source)) : [];
      for (const mount of pinned) {
        warnings.push(
          `the Duplicati container "${container}" has the volume ${mount.source}:${mount.destination} of ${snapshotPath.source} itself (or of a folder in it): after the swap it keeps showing the old data (a job reading it backs that up, and its space is not freed) until the container is restarted; mount the parent folder ${path.dirname(snapshotPath.source)} instead`,
        );
      }
    }
    return { paths, problems, warnings };
  }
  for (const job of jobs) {
    if (job.sources.length === 0) problems.push(`job ${job.job} backs up nothing (no sources)`);
    for (const source of job.sources) {
      const found = hostPathOf(source, mounts);
      if (!found) {
        problems.push(`job ${job.job}: its source ${source} is on no volume of the Duplicati container "${container}", so where it lives on the host is unknown`);
        continue;
      }
      if (swapped && (trimSlash(found.mount.destination) === trimSlash(source) || within(trimSlash(source), found.mount.destination))) {
        problems.push(
          `job ${job.job}: its source ${source} is the volume ${found.mount.source}:${found.mount.destination} itself: after the swap the container would keep seeing the old data there (and back it up); mount its parent folder ${path.dirname(found.mount.source)} instead`,
        );
        continue;
      }
      add(job, source, found.host);
    }
  }
  // Two sources of one folder, or one inside another, cannot each be swapped.
  for (const [index, entry] of swapped ? paths.entries() : []) {
    for (const other of paths.slice(index + 1)) {
      if (within(entry.live, other.live) || within(other.live, entry.live)) {
        problems.push(`${entry.live} (job ${entry.job}) and ${other.live} (job ${other.job}) lie inside one another: each data path is swapped as a whole`);
      }
    }
  }
  return { paths, problems, warnings };
}
