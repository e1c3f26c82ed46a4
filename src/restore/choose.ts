/**
 * Which version of each job a restore takes, decided before anything is touched. Duplicati's own
 * restore silently takes the newest version when the time asked for matches none
 * (LocalDatabase.cs, RestoreTimeNoMatch): here a version that does not exist is a usage error
 * (exit 2), and the one chosen is then asked for by its exact time or number.
 */
import type { BackupVersion } from '../adapters/duplicati.js';
import { UsageError } from '../errors.js';

/** What the command line asked for. */
export interface VersionRequest {
  /** --version N: one job's version number (0 = newest). */
  version?: number | undefined;
  /** --time: each job's newest version at or before it (ms since the epoch). */
  time?: number | undefined;
  /** --job: the only job restored. */
  job?: string | undefined;
}

export interface JobVersions {
  job: string;
  backupId: string;
  versions: BackupVersion[];
}

export interface ChosenVersion {
  job: string;
  backupId: string;
  version: BackupVersion;
}

/**
 * `2026-11-30` (that whole day: its versions up to 23:59:59.999, local time) or
 * `2026-11-30T02:00`, `2026-11-30T02:00:30` (local time), each optionally with `Z` or an offset;
 * undefined when it is not one of these.
 */
export function parseRestoreTime(text: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(text.trim());
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, zone] = match;
  const numbers = [year, month, day, hour ?? '0', minute ?? '0', second ?? '0'].map(Number) as [number, number, number, number, number, number];
  if (numbers[1] < 1 || numbers[1] > 12 || numbers[2] < 1 || numbers[2] > 31 || numbers[3] > 23 || numbers[4] > 59 || numbers[5] > 59) return undefined;
  const wholeDay = hour === undefined;
  let ms: number;
  if (zone === undefined) {
    ms = new Date(numbers[0], numbers[1] - 1, numbers[2], numbers[3], numbers[4], numbers[5]).getTime();
  } else {
    const offset = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2)));
    ms = Date.UTC(numbers[0], numbers[1] - 1, numbers[2], numbers[3], numbers[4], numbers[5]) - offset * 60_000;
  }
  if (new Date(ms).getDate() !== numbers[2] && zone === undefined) return undefined;
  return wholeDay ? ms + 86_400_000 - 1 : ms;
}

function describe(version: BackupVersion): string {
  return `version ${version.version} (${version.time})`;
}

/**
 * The version of each job: the newest by default; --time: each job's newest at or before it;
 * --version: that number, which with several jobs needs --job. Refused (UsageError) when a job
 * has no such version, naming what it has.
 */
export function chooseVersions(jobs: readonly JobVersions[], request: VersionRequest, stack: string): ChosenVersion[] {
  let selected = [...jobs];
  if (request.job !== undefined) {
    const wanted = request.job.toLowerCase();
    selected = jobs.filter((entry) => entry.job.toLowerCase() === wanted || entry.backupId === request.job);
    if (selected.length === 0) {
      throw new UsageError(`--job ${request.job}: stack ${stack} has no such job (its jobs: ${jobs.map((entry) => entry.job).join(', ')})`);
    }
  }
  if (request.version !== undefined && request.time !== undefined) throw new UsageError('--version and --time cannot be combined');
  if (request.version !== undefined && selected.length > 1) {
    throw new UsageError(`--version is a version of one job, and stack ${stack} has ${selected.length} (${selected.map((entry) => entry.job).join(', ')}): name it with --job, or use --time`);
  }
  return selected.map((entry) => {
    const newestFirst = [...entry.versions].sort((a, b) => a.version - b.version);
    const have = newestFirst.length === 0 ? 'none' : newestFirst.map(describe).join(', ');
    if (newestFirst.length === 0) throw new UsageError(`job ${entry.job} of stack ${stack} has no backup version to restore`);
    let version: BackupVersion | undefined;
    if (request.version !== undefined) {
      version = newestFirst.find((candidate) => candidate.version === request.version);
      if (!version) throw new UsageError(`job ${entry.job} has no version ${request.version} (it has ${have})`);
    } else if (request.time !== undefined) {
      version = newestFirst.find((candidate) => Date.parse(candidate.time) <= request.time!);
      if (!version) {
        throw new UsageError(`job ${entry.job} has no version at or before ${new Date(request.time).toISOString()} (its oldest is ${describe(newestFirst.at(-1)!)}); Duplicati would silently restore the newest instead`);
      }
    } else {
      version = newestFirst[0]!;
    }
    return { job: entry.job, backupId: entry.backupId, version };
  });
}
