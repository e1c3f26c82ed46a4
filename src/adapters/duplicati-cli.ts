/**
 * The exec driver's restores. `duplicati-server-util` has no restore, verify or list command
 * (its commands: Duplicati/CommandLine/ServerUtil/Commands/), so a restore runs `duplicati-cli`
 * inside the Duplicati container with the job's own storage, options and local database, which
 * `duplicati-server-util export` gives (Commands/Export.cs, the server's BackupGet export:
 * Backup.TargetURL, DBPath, Sources, Settings with the passphrase). Without the job's database
 * the CLI would rebuild one from the remote files first: hours for a large backup (#1391).
 *
 * The secrets never are in a command line (where `ps` shows them) nor in a log: the export is
 * written into a folder of mode 0700 made for it, read back through `podman exec`'s output and
 * removed in the same call; the CLI gets them through `--parameters-file` (CLI/Program.cs
 * ReadOptionsFromFile: one option per line; `--target=URL` replaces the storage URL given on the
 * command line), a file in a 0700 folder that stack-backup writes through the exec's standard
 * input and that is removed as soon as the CLI ends. While the CLI uses the job's database the
 * server must run no task of that job (SQLite "database is locked"): the restore step pauses it
 * first (`duplicati-server-util pause`), its undo registered before.
 */
import { randomUUID } from 'node:crypto';
import { CommandError, TimeoutError } from '../errors.js';
import type { DuplicatiSettings } from '../config/types.js';
import { shellLine } from '../shell-quote.js';
import type { BackupVersion, RestoreOutcome, RestoreRequest, VersionEntry } from './backup-versions.js';
import { describeFailure, type CommandRunner } from './process.js';

const exportTimeoutMs = 60_000;
const listTimeoutMs = 10 * 60_000;
const stopTimeoutMs = 30_000;

/** A job's settings as its export gives them; `options` holds secrets and is never logged. */
export interface ExportedJob {
  id: string;
  name: string;
  targetUrl: string;
  dbPath: string;
  sources: string[];
  /** Its filters, in order (Backup.Filters). */
  filters: Array<{ include: boolean; expression: string }>;
  /** Each of the job's settings as `--name=value`, the passphrase among them. */
  options: string[];
}

const partEnd = '@stack-backup:end';

/** Exports one job (by ID) into a private folder in the container, prints it, removes it: one exec. */
export function exportArgv(settings: Pick<DuplicatiSettings, 'container' | 'serverUtil'>, backupId: string): string[] {
  const script = [
    'umask 077; d=$(mktemp -d) || exit 1',
    `${shellLine([settings.serverUtil])} export --unencrypted --export-passwords=true --destination "$d" -- "$1" >"$d/.said" 2>&1; e=$?`,
    // A name may contain the ID ("app1" holds "1", Export.cs matches names by Contains): every file is printed, the caller picks by ID.
    `if [ "$e" = 0 ]; then for f in "$d"/*.json; do cat -- "$f"; echo; echo "${partEnd}"; done; else cat -- "$d/.said"; fi`,
    'rm -rf -- "$d"; exit "$e"',
  ].join('; ');
  return ['podman', 'exec', settings.container, 'sh', '-c', script, 'sh', backupId];
}

/** Picks the job out of the export's files; undefined when none is it. */
export function parseExport(stdout: string, backupId: string): ExportedJob | undefined {
  for (const part of stdout.split(partEnd)) {
    const start = part.indexOf('{');
    if (start < 0) continue;
    let parsed: { Backup?: { ID?: unknown; Name?: unknown; TargetURL?: unknown; DBPath?: unknown; Sources?: unknown; Settings?: unknown; Filters?: unknown } };
    try {
      parsed = JSON.parse(part.slice(start)) as typeof parsed;
    } catch {
      continue;
    }
    const backup = parsed.Backup;
    if (!backup || String(backup.ID) !== backupId) continue;
    const settings = Array.isArray(backup.Settings) ? (backup.Settings as Array<{ Name?: unknown; Value?: unknown; Filter?: unknown }>) : [];
    return {
      id: String(backup.ID),
      name: String(backup.Name ?? ''),
      targetUrl: String(backup.TargetURL ?? ''),
      dbPath: String(backup.DBPath ?? ''),
      sources: Array.isArray(backup.Sources) ? backup.Sources.map(String) : [],
      filters: filtersOf(backup.Filters),
      // Settings with a filter apply to some paths only (a backup's); a restore takes the job-wide ones.
      options: settings.filter((setting) => !setting.Filter && typeof setting.Name === 'string' && setting.Name !== '').map((setting) => `--${String(setting.Name)}=${String(setting.Value ?? '')}`),
    };
  }
  return undefined;
}

/** Backup.Filters (FilterDto: Order, Include, Expression), in their order. */
export function filtersOf(value: unknown): Array<{ include: boolean; expression: string }> {
  if (!Array.isArray(value)) return [];
  return (value as Array<{ Order?: unknown; Include?: unknown; Expression?: unknown }>)
    .map((filter, index) => ({ order: typeof filter.Order === 'number' ? filter.Order : index, include: filter.Include === true, expression: String(filter.Expression ?? '') }))
    .sort((a, b) => a.order - b.order)
    .map(({ include, expression }) => ({ include, expression }));
}

/** The storage URL without what may be a secret (user, password, query): what a command line may show. */
export function publicUrl(url: string): string {
  const match = /^([a-z0-9+.-]+:\/\/)(?:[^@/]*@)?([^?#]*)/i.exec(url);
  return match ? `${match[1]}${match[2]}` : 'file:///nonexistent';
}

/** The parameters file's lines: the storage URL, the job's options, its database. Secrets: never logged. */
export function parameterLines(job: ExportedJob): string {
  return [`--target=${job.targetUrl}`, ...job.options, `--dbpath=${job.dbPath}`].join('\n') + '\n';
}

/**
 * Runs `duplicati-cli ARGS` with the parameters file made from standard input in a 0700 folder
 * (named by `tag`, so a signal can reach the CLI there: its PID is written beside), bounded by
 * `timeout` inside the container, since a signal to the `podman exec` client does not reach it.
 */
export function cliArgv(settings: Pick<DuplicatiSettings, 'container'>, tag: string, timeoutSeconds: number, args: readonly string[]): string[] {
  const folder = `/tmp/stack-backup-${tag}`;
  const script = [
    `umask 077; d=${shellLine([folder])}; mkdir -m 700 -- "$d" || exit 1`,
    'trap \'rm -rf -- "$d"\' EXIT',
    'cat >"$d/parameters"',
    `timeout -s TERM ${timeoutSeconds} duplicati-cli "$@" --parameters-file="$d/parameters" & child=$!`,
    'echo "$child" >"$d/pid"',
    'wait "$child"',
  ].join('; ');
  return ['podman', 'exec', '-i', settings.container, 'sh', '-c', script, 'sh', ...args];
}

/** Ends a CLI that `cliArgv` started with this tag (SIGTERM: Duplicati ends the restore where it is). */
export function stopCliArgv(settings: Pick<DuplicatiSettings, 'container'>, tag: string): string[] {
  return ['podman', 'exec', settings.container, 'sh', '-c', 'p=$(cat -- "$1/pid" 2>/dev/null) && kill -TERM "$p"', 'sh', `/tmp/stack-backup-${tag}`];
}

/**
 * A time as duplicati-cli prints it (Commands.cs `{e.Time}`: .NET's DateTime.ToString() in the
 * container's culture, local time): invariant `MM/dd/yyyy HH:mm:ss` (the official image sets no
 * LANG or TZ) or en-US `M/d/yyyy h:mm:ss AM`; read as UTC, which both images use.
 */
export function parseCliTime(text: string): string | undefined {
  const match = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?: ([AP]M))?$/.exec(text.trim());
  if (!match) return undefined;
  let hour = Number(match[4]);
  if (match[7] === 'PM' && hour < 12) hour += 12;
  if (match[7] === 'AM' && hour === 12) hour = 0;
  return new Date(Date.UTC(Number(match[3]), Number(match[1]) - 1, Number(match[2]), hour, Number(match[5]), Number(match[6]))).toISOString();
}

const units: Record<string, number> = { byte: 1, bytes: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** `Utility.FormatSizeString`'s `12 bytes`, `1.50 KiB`, `1,024.00 MiB` back to bytes (rounded as it was). */
export function parseSize(text: string): number | undefined {
  const match = /^(-?[\d,]+(?:\.\d+)?) ([A-Za-z]+)$/.exec(text.trim());
  const unit = match ? units[match[2]!.toLowerCase()] : undefined;
  return match && unit !== undefined ? Math.round(Number(match[1]!.replace(/,/g, '')) * unit) : undefined;
}

/** `find` without a filter: `Listing filesets:` and `N<TAB>: TIME (COUNT files, SIZE)` per version. */
export function parseFilesets(output: string): BackupVersion[] {
  const versions: BackupVersion[] = [];
  for (const line of output.split('\n')) {
    const match = /^(\d+)\t: (.+?)(?: \((\d+) files, ([^)]+)\))?\s*$/.exec(line);
    if (!match) continue;
    const time = parseCliTime(match[2]!);
    if (time === undefined) continue;
    versions.push({
      version: Number(match[1]),
      time,
      fileCount: match[3] !== undefined ? Number(match[3]) : undefined,
      sizeBytes: match[4] !== undefined ? parseSize(match[4]) : undefined,
      duplicatiTime: match[2]!,
    });
  }
  return versions.sort((a, b) => a.version - b.version);
}

/** `find URL FILTER --version=N`: `Listing contents N (TIME):`, then `PATH/ ` (a folder), `PATH (SIZE)` (a symlink: -1 bytes). */
export function parseContents(output: string): VersionEntry[] {
  const entries: VersionEntry[] = [];
  let listing = false;
  for (const line of output.split('\n')) {
    if (/^Listing contents \d+ /.test(line)) {
      listing = true;
      continue;
    }
    if (!listing || line.trim() === '') continue;
    if (line.endsWith('/ ') || line.endsWith('/')) {
      entries.push({ path: line.trimEnd(), kind: 'folder', size: undefined });
      continue;
    }
    const match = /^(.*) \((-?[\d,.]+ [A-Za-z]+)\)$/.exec(line);
    if (!match) continue;
    const size = parseSize(match[2]!);
    entries.push(size !== undefined && size < 0 ? { path: match[1]!, kind: 'symlink', size: undefined } : { path: match[1]!, kind: 'file', size });
  }
  return entries;
}

/**
 * `duplicati-cli restore`'s verdict (Program.RunCommandLine, Commands.Restore): exit 0, 2 when
 * its result has warnings, 100 when it threw; `Restored N (SIZE) files to P` (ConsoleOutput.cs:
 * N is RestoredFiles, files written and symlinks made); each warning and error is printed as it
 * happens. Errors alone still exit 0, so the lines the restore printed that are not its progress
 * are Duplicati's messages, and a restore with any of them is not taken as clean.
 */
export function parseRestoreOutput(exitCode: number | undefined, stdout: string, stderr: string): RestoreOutcome {
  const progress = [
    /^Restore started at /,
    /^Checking remote backup/,
    /^\s*Listing remote folder/,
    /^\s*\d+ files need to be restored/,
    /^\s*Downloading file /,
    /^Verifying restored files/,
    /^Completing restore on destination/,
    /^Restored \d+ /,
    /^Duration of restore: /,
    /^Checking existing target files/,
    /^Scanning local files for needed data/,
    /^\s*Patching /,
  ];
  const lines = stdout.split('\n').map((line) => line.trimEnd());
  const restored = lines.map((line) => /^Restored (\d+) \(([^)]+)\) files to /.exec(line)).find(Boolean);
  const messages = [...lines.filter((line) => line.trim() !== '' && !progress.some((pattern) => pattern.test(line))), ...stderr.split('\n').map((line) => line.trim()).filter(Boolean)];
  const result: RestoreOutcome['result'] = exitCode === 0 ? (messages.length > 0 ? 'Error' : 'Success') : exitCode === 2 ? 'Warning' : 'Fatal';
  return {
    result,
    restoredFiles: restored ? Number(restored[1]) : 0,
    sizeBytes: restored ? parseSize(restored[2]!) : undefined,
    messages: result === 'Fatal' && messages.length === 0 ? [`duplicati-cli ended with exit ${exitCode ?? 'signal'} and said nothing`] : messages,
  };
}

export interface ExecRestore {
  exportJob(backupId: string, signal?: AbortSignal): Promise<ExportedJob>;
  versions(backupId: string, signal?: AbortSignal): Promise<BackupVersion[]>;
  versionEntries(backupId: string, version: BackupVersion, folder: string, signal?: AbortSignal): Promise<VersionEntry[]>;
  jobSources(backupId: string, signal?: AbortSignal): Promise<string[]>;
  jobFilters(backupId: string, signal?: AbortSignal): Promise<Array<{ include: boolean; expression: string }>>;
  restore(request: RestoreRequest, signal?: AbortSignal): Promise<RestoreOutcome>;
  pause(signal?: AbortSignal): Promise<void>;
  resume(signal?: AbortSignal): Promise<void>;
}

/** Bounds the CLI inside the container: Duplicati's wait_timeout, as for a job. */
export function createExecRestore(run: CommandRunner, settings: DuplicatiSettings): ExecRestore {
  const seconds = Math.max(1, Math.ceil(settings.waitTimeoutMs / 1000));
  const exportJob = async (backupId: string, signal?: AbortSignal): Promise<ExportedJob> => {
    const result = await run(exportArgv(settings, backupId), { timeoutMs: exportTimeoutMs, signal });
    if (result.timedOut) throw new TimeoutError(`${shellLine(result.argv)}: no answer within ${exportTimeoutMs / 1000} s`);
    // On failure the output is Export.cs's messages; on success it is the job's secrets, never shown.
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, exportTimeoutMs), result.output);
    const job = parseExport(result.stdout, backupId);
    if (!job) throw new CommandError(`${settings.serverUtil} export printed no configuration of backup ${backupId}`);
    return job;
  };
  const cli = async (tag: string, args: string[], job: ExportedJob, timeoutMs: number, signal?: AbortSignal) =>
    run(cliArgv(settings, tag, seconds, args), { timeoutMs, signal, input: parameterLines(job) });
  const versions = async (backupId: string, signal?: AbortSignal): Promise<BackupVersion[]> => {
    const job = await exportJob(backupId, signal);
    const result = await cli(`list-${randomUUID().slice(0, 8)}`, ['find', publicUrl(job.targetUrl)], job, listTimeoutMs, signal);
    if (result.timedOut || result.exitCode !== 0) throw new CommandError(`duplicati-cli find (the versions of backup ${backupId}): ${describeFailure(result, listTimeoutMs)}`, result.output);
    return parseFilesets(result.stdout);
  };
  return {
    exportJob,
    versions,
    async versionEntries(backupId, version, folder, signal) {
      const job = await exportJob(backupId, signal);
      const filter = `[${folder.replace(/\/+$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/.*]`;
      const result = await cli(`list-${randomUUID().slice(0, 8)}`, ['find', publicUrl(job.targetUrl), filter, `--version=${version.version}`], job, listTimeoutMs, signal);
      if (result.timedOut || result.exitCode !== 0) throw new CommandError(`duplicati-cli find (the files of version ${version.version}): ${describeFailure(result, listTimeoutMs)}`, result.output);
      return parseContents(result.stdout);
    },
    async jobSources(backupId, signal) {
      return (await exportJob(backupId, signal)).sources;
    },
    async jobFilters(backupId, signal) {
      return (await exportJob(backupId, signal)).filters;
    },
    async restore(request, signal) {
      const job = await exportJob(request.backupId, signal);
      // The numbers move when a backup ends; the server is paused now, so the one with this time stays this one.
      const now = await versions(request.backupId, signal);
      const same = now.find((candidate) => candidate.time === request.version.time);
      if (!same) throw new CommandError(`backup ${request.backupId} no longer has its version of ${request.version.time}`);
      const args = [
        'restore',
        publicUrl(job.targetUrl),
        ...request.filters,
        `--restore-path=${request.restorePath}`,
        `--version=${same.version}`,
        '--overwrite=false',
        '--restore-permissions=true',
        '--skip-metadata=false',
      ];
      const stop = () => run(stopCliArgv(settings, request.tag), { timeoutMs: stopTimeoutMs }).catch(() => undefined);
      signal?.addEventListener('abort', stop, { once: true });
      try {
        const result = await cli(request.tag, args, job, settings.waitTimeoutMs + 60_000, undefined);
        if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
        if (result.timedOut) throw new TimeoutError(`duplicati-cli restore: not done within ${seconds} s (wait_timeout)`);
        return parseRestoreOutput(result.exitCode, result.stdout, result.stderr);
      } finally {
        signal?.removeEventListener('abort', stop);
      }
    },
    async pause(signal) {
      const result = await run(['podman', 'exec', settings.container, settings.serverUtil, 'pause'], { timeoutMs: exportTimeoutMs, signal });
      if (result.timedOut || result.exitCode !== 0) throw new CommandError(describeFailure(result, exportTimeoutMs), result.output);
    },
    async resume(signal) {
      const result = await run(['podman', 'exec', settings.container, settings.serverUtil, 'resume'], { timeoutMs: exportTimeoutMs, signal });
      if (result.timedOut || result.exitCode !== 0) throw new CommandError(describeFailure(result, exportTimeoutMs), result.output);
    },
  };
}
