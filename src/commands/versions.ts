/** `stack-backup versions STACK`: each job's versions, as Duplicati keeps them: number (0 = newest), time, files, size. */
import { loadGlobalConfig, selectStacks } from '../config/load.js';
import { UsageError } from '../errors.js';
import { exitCodes } from '../exit-codes.js';
import { formatBytes } from '../format.js';
import { writeJson } from '../report/json-output.js';
import { formatTable } from '../report/report.js';
import { jobVersions } from './restore.js';
import { rootOf, type GlobalOptions } from './options.js';

export async function versionsCommand(target: string | undefined, options: GlobalOptions): Promise<number> {
  if (target === undefined || target === 'all') throw new UsageError('name one stack (see stack-backup list)');
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  const [stack] = selectStacks(root, global, [target]);
  const { createDuplicati } = await import('../adapters/real.js');
  const jobs = await jobVersions(stack!, createDuplicati(global.duplicati));
  if (options.json) {
    writeJson(process.stdout, {
      root,
      stack: stack!.name,
      jobs: jobs.map((job) => ({
        job: job.job,
        backup_id: job.backupId,
        versions: job.versions.map((version) => ({ version: version.version, time: version.time, file_count: version.fileCount ?? null, size_bytes: version.sizeBytes ?? null })),
      })),
    });
    return exitCodes.success;
  }
  const megabytes = (bytes: number | undefined) => (bytes === undefined ? '-' : formatBytes(bytes));
  const rows = jobs.flatMap((job) =>
    job.versions.map((version) => [job.job, String(version.version), version.time.replace('T', ' ').replace(/\.\d+Z$|Z$/, 'Z'), version.fileCount === undefined ? '-' : String(version.fileCount), megabytes(version.sizeBytes)]),
  );
  process.stdout.write(`${formatTable(['JOB', 'VERSION', 'TIME', 'FILES', 'SIZE'], rows).join('\n')}\n`);
  for (const job of jobs) if (job.versions.length === 0) process.stdout.write(`job ${job.job}: no version yet\n`);
  return exitCodes.success;
}
