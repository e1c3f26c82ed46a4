/**
 * `stack-backup restore STACK`: brings a stack back from its backup (or, with --to, its data
 * into a folder; with --prune, removes what earlier restores kept). Every choice is checked
 * before anything is touched: the options, the stack, each job's version (a version that does
 * not exist is exit 2, never Duplicati's silent fallback to the newest), the confirmation.
 */
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { findJob, type Duplicati } from '../adapters/duplicati.js';
import { loadGlobalConfig, podmanSocketPath, selectStacks } from '../config/load.js';
import { assertOnlyUserCanWrite } from '../config/permissions.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { LockHeldError, UsageError } from '../errors.js';
import { isRootLocked } from '../adapters/lock.js';
import { exitCodeFor, exitCodes } from '../exit-codes.js';
import { formatBytes } from '../format.js';
import { secondsOf, writeJson } from '../report/json-output.js';
import { chooseVersions, parseRestoreTime, type ChosenVersion, type JobVersions, type VersionRequest } from '../restore/choose.js';
import type { RestoreResult } from '../restore/orchestrator.js';
import { verbosityOf } from './backup.js';
import { rootOf, type GlobalOptions } from './options.js';
import { abortOnSignals } from './signals.js';

export interface RestoreOptions extends GlobalOptions {
  version?: string;
  time?: string;
  job?: string;
  yes?: boolean;
  to?: string;
  prune?: boolean;
}

/** Each job of the stack with its backup ID and versions, as Duplicati lists them. */
export async function jobVersions(stack: StackConfig, duplicati: Duplicati, signal?: AbortSignal): Promise<JobVersions[]> {
  if (!duplicati.versions) throw new UsageError('this Duplicati driver cannot list versions');
  const known = await duplicati.listJobs(signal);
  const jobs: JobVersions[] = [];
  for (const job of stack.jobs) {
    const found = findJob(known, job);
    if (!found) throw new UsageError(`Duplicati has no backup job "${job}" (stacks/${stack.name}: duplicati_jobs); it has ${known.map((entry) => entry.name).join(', ') || 'none'}`);
    jobs.push({ job, backupId: found.id, versions: await duplicati.versions(found.id, signal) });
  }
  return jobs;
}

function parseOptions(options: RestoreOptions): VersionRequest {
  const parsed: VersionRequest = {};
  if (options.job !== undefined) parsed.job = options.job;
  if (options.version !== undefined) {
    if (!/^\d+$/.test(options.version)) throw new UsageError(`--version: "${options.version}" is not a version number (0 is the newest; see stack-backup versions)`);
    parsed.version = Number(options.version);
  }
  if (options.time !== undefined) {
    const time = parseRestoreTime(options.time);
    if (time === undefined) throw new UsageError(`--time: "${options.time}" is not a date or a time (ISO 8601: 2026-11-30, 2026-11-30T02:00)`);
    parsed.time = time;
  }
  if (options.prune && (options.version !== undefined || options.time !== undefined || options.job !== undefined || options.to !== undefined)) {
    throw new UsageError('--prune removes what earlier restores kept: it takes no version, time, job or --to');
  }
  if (options.to !== undefined && !options.to.startsWith('/')) throw new UsageError(`--to: "${options.to}" is not an absolute path`);
  return parsed;
}

function describeChoice(choices: readonly ChosenVersion[]): string {
  return choices
    .map((choice) => {
      const files = choice.version.fileCount !== undefined ? `, ${choice.version.fileCount} files` : '';
      const size = choice.version.sizeBytes !== undefined ? `, ${formatBytes(choice.version.sizeBytes)}` : '';
      return `job ${choice.job}: version ${choice.version.version} of ${choice.version.time}${files}${size}`;
    })
    .join('; ');
}

/** On a terminal: asks, naming what will happen. Without one: --yes is needed. */
async function confirm(stack: StackConfig, choices: readonly ChosenVersion[], options: RestoreOptions): Promise<void> {
  if (options.yes) return;
  if (!process.stdin.isTTY) throw new UsageError('restore replaces a stack\'s data: without a terminal to confirm on, give --yes');
  const what = options.to !== undefined ? `into ${options.to} (the stack is not touched)` : `stopping ${stack.unit}, replacing its data (the old data is kept beside it) and starting it again`;
  const prompt = `Restore stack ${stack.name} from ${describeChoice(choices)}, ${what}? Type "yes" to go on: `;
  const reader = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await reader.question(prompt)).trim().toLowerCase();
    if (answer !== 'yes' && answer !== 'y') throw new UsageError('not confirmed: nothing was touched');
  } finally {
    reader.close();
  }
}

function restoreJson(root: string, result: RestoreResult, code: number) {
  return {
    root,
    stack: result.stack,
    result: result.restored ? 'restored' : result.rolledBack ? 'rolled_back' : 'failed',
    exit_code: code,
    restored: result.restored,
    rolled_back: result.rolledBack,
    left_down: result.notRestored,
    // The old name of left_down, inverted: kept for one release.
    stack_restored: !result.notRestored,
    aborted: result.aborted,
    versions: result.versions,
    paths: result.paths.map((entry) => ({ path: entry.path, job: entry.job, restored_files: entry.files ?? null, restored_bytes: entry.bytes ?? null, old: entry.old, restored_copy: entry.restoredCopy })),
    downtime_seconds: secondsOf(result.downtimeMs),
    duration_seconds: secondsOf(result.durationMs),
    error: result.error ?? null,
    undo_errors: result.restoreErrors,
    // The old name of undo_errors: kept for one release.
    restore_errors: result.restoreErrors,
    kept_paths: result.kept,
    unrecorded: result.unrecorded,
    log_file: result.logFile,
  };
}

export async function restoreCommand(target: string | undefined, options: RestoreOptions): Promise<number> {
  if (target === undefined) throw new UsageError('name the stack to restore (see stack-backup list)');
  if (target === 'all') throw new UsageError('restore takes one stack at a time, never "all"');
  const request = parseOptions(options);
  const root = rootOf(options);
  const global: GlobalConfig = loadGlobalConfig(root, process.env);
  const [stack] = selectStacks(root, global, [target]);
  assertOnlyUserCanWrite(root, [stack!.file]);
  // A job that is not the stack's ends here, before Duplicati is asked or anything is touched.
  if (request.job !== undefined && !stack!.jobs.some((job) => job.toLowerCase() === request.job!.toLowerCase())) {
    throw new UsageError(`--job ${request.job}: stack ${stack!.name} has no such job (its jobs: ${stack!.jobs.join(', ')})`);
  }
  const out = options.json ? process.stderr : process.stdout;
  if (options.prune && options.dryRun) {
    const { keptCopiesOf, planPrune } = await import('../restore/prune.js');
    const copies = keptCopiesOf(root, stack!.name);
    out.write(`${planPrune(stack!.name, copies).join('\n')}\nDry run: nothing was touched.\n`);
    if (options.json) writeJson(process.stdout, { root, stack: stack!.name, dry_run: true, would_remove: copies.map((copy) => copy.path) });
    return exitCodes.success;
  }
  const podmanSocket = podmanSocketPath(process.env);
  const [{ createAdapters }, { createProgress }, { systemClock }, run] = await Promise.all([
    import('../adapters/real.js'),
    import('../report/report.js'),
    import('../adapters/clock.js'),
    import('../restore/run.js'),
  ]);
  const adapters = createAdapters(global, podmanSocket);
  const progress = createProgress(process.stderr, systemClock, verbosityOf(options));
  const controller = new AbortController();
  const removeHandlers = abortOnSignals(controller, (text) => progress.message(text), 'putting the stack back');
  try {
    if (options.prune) {
      const { pruneKept } = await import('../restore/prune.js');
      const report = await pruneKept({ global, adapters, progress, signal: controller.signal, stack: stack!.name });
      for (const line of report.removed) out.write(`removed ${line}\n`);
      for (const line of report.kept) out.write(`kept ${line}\n`);
      for (const line of report.failed) out.write(`NOT REMOVED ${line}\n`);
      if (report.removed.length + report.kept.length + report.failed.length === 0) out.write(`nothing kept by restores of ${stack!.name}\n`);
      if (options.json) writeJson(process.stdout, { root, stack: stack!.name, removed: report.removed, kept: report.kept, failed: report.failed });
      return report.failed.length > 0 ? exitCodes.stackFailed : exitCodes.success;
    }
    // A backup under way holds the root's lock (and the job's database): say so before asking Duplicati.
    if (!options.dryRun && (await isRootLocked(root))) throw new LockHeldError(`another stack-backup run holds the lock of ${root}: restore once it has ended`);
    // Read before anything is touched: a version that does not exist ends here, exit 2.
    const choices = chooseVersions(await jobVersions(stack!, adapters.duplicati, controller.signal), request, stack!.name);
    if (options.dryRun) {
      const [{ planRestore }, { planRestoreTo }] = await Promise.all([import('../restore/sequence.js'), import('../restore/into-folder.js')]);
      const planned = await run.readPlannedPaths({ global, stack: stack!, choices, adapters, signal: controller.signal });
      if (planned.problem) out.write(`The preflight would fail now: ${planned.problem}\n`);
      const input = { stack: stack!, global, choices, paths: planned.paths };
      const plan = options.to !== undefined ? planRestoreTo({ ...input, folder: path.resolve(options.to) }) : planRestore(input);
      out.write(`${plan.join('\n')}\nDry run: nothing was touched.\n`);
      const versions = choices.map((choice) => ({ job: choice.job, version: choice.version.version, time: choice.version.time }));
      if (options.json) writeJson(process.stdout, { root, stack: stack!.name, dry_run: true, ...(options.to !== undefined ? { to: path.resolve(options.to) } : {}), versions });
      return exitCodes.success;
    }
    await confirm(stack!, choices, options);
    if (options.to !== undefined) {
      const { restoreTo } = await import('../restore/into-folder.js');
      const result = await restoreTo({ global, stack: stack!, choices, adapters, progress, output: process.stderr, signal: controller.signal, folder: options.to });
      const code = controller.signal.aborted ? exitCodeFor(controller.signal.reason) : result.ok ? exitCodes.success : exitCodes.stackFailed;
      process.stderr.write(result.ok ? `restored into ${result.folder}: ${result.paths.map((entry) => `${entry.path} (${entry.files ?? 0} files and links)`).join(', ')}; the stack was not touched\n` : `NOT restored into ${result.folder}: ${result.error}\n`);
      if (options.json) writeJson(process.stdout, { root, stack: stack!.name, to: result.folder, exit_code: code, restored: result.ok, paths: result.paths, error: result.error ?? null });
      return code;
    }
    const report = await run.runRestore({ global, stack: stack!, choices, adapters, progress, output: process.stderr, signal: controller.signal });
    const failed = !report.result.ok || report.recovery.failed.length > 0;
    const code = controller.signal.aborted ? exitCodeFor(controller.signal.reason) : failed ? exitCodes.stackFailed : exitCodes.success;
    if (options.json) writeJson(process.stdout, restoreJson(root, report.result, code));
    return code;
  } finally {
    removeHandlers();
  }
}
