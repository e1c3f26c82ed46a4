/**
 * The on-disk shape of the configuration files, as zod schemas. Every key carries a
 * description: it is the reference that stacks/_template.yaml and the README follow.
 * Normalisation into the shapes the rest of the program uses lives in load.ts.
 *
 * zod's classic API (`zod/v3`, shipped inside zod 4) loads in a fifth of the time of zod 4's,
 * and every command reads the configuration first: it keeps `stack-backup list` quick. The
 * schemas are built on first use, so a command whose files are all in the parse cache (cache.ts)
 * does not load zod at all.
 */
import { createRequire } from 'node:module';
import type * as Zod from 'zod/v3';

export const hookPhases = [
  'pre_stop',
  'post_stop',
  'pre_backup',
  'post_backup',
  'pre_start',
  'post_start',
  'verify',
] as const;
export type HookPhase = (typeof hookPhases)[number];

/** The longest any *_timeout may be: 7 days. */
export const maxTimeoutSeconds = 7 * 24 * 3600;

function build(z: typeof Zod.z) {
  /** One message for every way a value can be wrong, saying what is allowed. */
  const expecting = (message: string) => ({ errorMap: () => ({ message }) });

  // Every timeout is finite and at most 7 days: .inf, huge numbers and anything a timer would
  // overflow on (Node's timers hold at most 2^31-1 ms, about 24.8 days) are refused.
  const seconds = () =>
    z
      .number(expecting(`expected a number of seconds greater than 0 and at most ${maxTimeoutSeconds} (7 days)`))
      .positive()
      .finite()
      .max(maxTimeoutSeconds);

  const hookCommands = z.union(
    [z.string().min(1), z.array(z.string().min(1)).min(1)],
    expecting('expected a shell command or a non-empty list of shell commands'),
  );

  const unitName = (suffix: string) =>
    z
      .string(expecting(`expected a systemd unit name ending in ${suffix}`))
      .regex(new RegExp(`^[A-Za-z0-9:_.@\\\\-]+\\${suffix}$`));

  const absolutePath = () =>
    z
      .string(expecting('expected an absolute path'))
      .regex(/^\/./, { message: 'expected an absolute path' });

  const url = z.string(expecting('expected an http:// or https:// URL')).regex(/^https?:\/\/[^\s]+$/);

  const monitorSchema = z
    .object(
      {
        healthchecks: url
          .optional()
          .describe('Healthchecks ping URL: URL/start?rid=RUN when the stack\'s run begins, URL/0?rid=RUN or URL/1?rid=RUN at its end, with the log tail (up to 100 kB) as the body.'),
        webhook: url.optional().describe('URL that gets a JSON POST per stack run: stack, result, downtime, duration, error (generic webhooks).'),
        uptime_kuma: url
          .optional()
          .describe('Uptime Kuma push URL (as Uptime Kuma shows it): status=up or down, msg=the result, ping=the downtime in ms, per stack run.'),
        ntfy: url.optional().describe('ntfy topic URL: a notification per stack run, its title, priority and tags by result, the summary as text.'),
      },
      expecting('expected a mapping with healthchecks, webhook, uptime_kuma and/or ntfy'),
    )
    .strict()
    .optional();

  const restoreSchema = z
    .object(
      {
        keep_old: z
          .boolean(expecting('expected true or false'))
          .optional()
          .describe('Keep the data a restore replaced, as PATH.stack-backup-old-RUN beside it, until `stack-backup restore --prune STACK` (true), or remove it once the restored stack has passed its verify hooks (false). Default: true.'),
      },
      expecting('expected a mapping with keep_old'),
    )
    .strict()
    .optional();

  const restoreTestSchema = z
    .union(
      [
        z.literal(false),
        z
          .object(
            {
              sample: z
                .union([z.number().int().positive(), z.string().regex(/^(all|\d+(\.\d+)?%)$/)], expecting('expected a number of files, a percentage such as "2%", or "all"'))
                .optional()
                .describe('Files per run: a number (20), a percentage of the files ("2%"), or "all". Default: 20.'),
              interval: z
                .number(expecting('expected a number of seconds, 0 or more'))
                .nonnegative()
                .finite()
                .max(366 * 86_400)
                .optional()
                .describe('Seconds since the last passing test before the next one is due; 0: every run. Default: 0.'),
              count_tolerance: z
                .number(expecting('expected a percentage from 0 to 100'))
                .min(0)
                .max(100)
                .optional()
                .describe('How far, in percent, the number of files in the version may differ from the frozen source before the test fails. Default: 0.'),
            },
            expecting('expected a mapping with sample, interval and count_tolerance, or false'),
          )
          .strict(),
      ],
      expecting('expected a mapping with sample, interval and count_tolerance, or false'),
    )
    .optional();

  const stackFileSchema = z.object({
    duplicati_jobs: z
      .array(
        z.union([z.string().min(1), z.number().int().nonnegative()], expecting('expected a Duplicati job name or numeric ID')),
        expecting('expected a non-empty list of Duplicati job names or IDs'),
      )
      .min(1, { message: 'expected at least one Duplicati job name or ID' })
      .describe('Duplicati backup jobs (names or numeric IDs) to run while the stack is stopped, in order.'),
    unit: z
      .string(expecting('expected a systemd unit name ending in .service or .target'))
      .regex(/^[A-Za-z0-9:_.@\\-]+\.(service|target)$/, { message: 'expected a systemd unit name ending in .service or .target' })
      .optional()
      .describe('The systemd --user unit that runs the stack: a .service, or a .target grouping units. Default: <name>-stack.service.'),
    project_label: z
      .string(expecting('expected a compose project name'))
      .min(1)
      .optional()
      .describe('Compose project of the stack: its containers carry io.podman.compose.project=<this>, and this label alone selects them. Unset: the stack name, and Quadlet\'s PODMAN_SYSTEMD_UNIT of its units.'),
    container_label: z
      .string(expecting('expected "KEY=VALUE"'))
      .regex(/^[^=\s]+=.+$/)
      .optional()
      .describe('Label selector that replaces project_label and alone selects the stack\'s containers.'),
    stop_timeout: seconds()
      .optional()
      .describe('Seconds to wait for the unit to stop and then for its containers to exit. Default: 120.'),
    start_timeout: seconds().optional().describe('Seconds to wait for the unit to start again. Default: 120.'),
    restore_policy: z
      .enum(['previous', 'always'], expecting('expected "previous" or "always"'))
      .optional()
      .describe('previous: start the unit again only if it was active before; always: start it in any case. Default: previous.'),
    freeze_ondemand: z
      .boolean(expecting('expected true or false'))
      .optional()
      .describe('Stop the on-demand socket (and its service) during the backup so no visitor starts the stack. Default: false.'),
    ondemand_socket: unitName('.socket')
      .optional()
      .describe('The .socket unit that starts the stack on demand. Required when freeze_ondemand is true.'),
    ondemand_service: unitName('.service')
      .optional()
      .describe('The service that the on-demand socket activates. Optional.'),
    hooks: z
      .object(
        Object.fromEntries(hookPhases.map((phase) => [phase, hookCommands.optional()])) as Record<
          HookPhase,
          Zod.ZodOptional<typeof hookCommands>
        >,
        expecting('expected a mapping of hook phases to commands'),
      )
      .strict()
      .optional()
      .describe('Shell commands per phase: pre_stop, post_stop, pre_backup, post_backup, pre_start, post_start, verify.'),
    hook_timeout: seconds()
      .optional()
      .describe('Seconds one hook command may run before its process group is killed. Default: the global hook_timeout.'),
    snapshot: z
      .object(
        {
          driver: z
            .enum(['auto', 'btrfs', 'reflink'], expecting('expected "auto", "btrfs" or "reflink"'))
            .optional()
            .describe('auto: btrfs where the source is a btrfs subvolume, else reflink; btrfs: a read-only subvolume snapshot; reflink: cp -a --reflink=always (XFS, btrfs). Default: auto.'),
          paths: z
            .array(
              z
                .object(
                  {
                    source: absolutePath().describe('The live data: an absolute path (with btrfs, a subvolume you own).'),
                    target: absolutePath().describe(
                      'Where its snapshot is made, on the same filesystem: the path the Duplicati job backs up (as its container sees it). It must not exist, unless stack-backup made it.',
                    ),
                  },
                  expecting('expected a mapping with source and target'),
                )
                .strict(),
              expecting('expected a non-empty list of {source, target} mappings'),
            )
            .min(1, { message: 'expected at least one {source, target} mapping' })
            .describe('The folders to snapshot while the stack is stopped.'),
        },
        expecting('expected a mapping with driver and paths'),
      )
      .strict()
      .optional()
      .describe('Snapshot mode: the stack is down only while its data is snapshotted; the jobs back up the snapshots with the stack running again. Absent: stop mode.'),
    monitor: monitorSchema.describe('Where to report this stack\'s runs; each key replaces the one of stack-backup.yaml.'),
    restore: restoreSchema.describe('How `stack-backup restore` treats this stack; each key replaces the one of stack-backup.yaml.'),
    restore_test: restoreTestSchema.describe('After each backup, restore a random sample of the frozen source and compare it exactly; each key replaces the one of stack-backup.yaml; false: no test for this stack.'),
  }).strict();

  const globalFileSchema = z.object({
    duplicati: z
      .object({
        container: z
          .string(expecting('expected a container name'))
          .min(1)
          .optional()
          .describe('Name of the Duplicati container. Default: duplicati. Environment: DUPLICATI_CONTAINER.'),
        server_util: z
          .string(expecting('expected a path'))
          .min(1)
          .optional()
          .describe(
            'duplicati-server-util inside the container. Default: duplicati-server-util (LinuxServer image: /app/duplicati/duplicati-server-util).',
          ),
        run_timeout: seconds()
          .optional()
          .describe('Seconds "run" may take to enqueue a job before it is ended and the job is followed by polling. Default: 25. Environment: DUPLICATI_RUN_TIMEOUT.'),
        wait_timeout: seconds()
          .optional()
          .describe('Seconds to wait for one job to run. Default: 21600. Environment: DUPLICATI_WAIT_TIMEOUT.'),
        poll_interval: seconds()
          .optional()
          .describe('Longest time in seconds between two status polls; polls start every 0.1 s and slow down to a tenth of the time waited. Default: 5.'),
        driver: z
          .enum(['exec', 'api'], expecting('expected "exec" or "api"'))
          .optional()
          .describe('exec: duplicati-server-util through podman exec (cannot see a backup\'s result); api: the REST API, which can. Default: exec.'),
        url: z
          .string(expecting('expected an http:// or https:// URL'))
          .regex(/^https?:\/\/[^\s]+$/)
          .optional()
          .describe('Where the REST API listens (driver api). Default: http://127.0.0.1:8200.'),
        password_file: z
          .string(expecting('expected an absolute path'))
          .regex(/^\//)
          .optional()
          .describe('File holding the Duplicati password (driver api), readable by you only. Or set DUPLICATI_PASSWORD. Never put the password itself here.'),
        warnings_fail: z
          .boolean(expecting('expected true or false'))
          .optional()
          .describe('Fail the stack when Duplicati reports Warning (driver api). Default: false.'),
        paused_timeout: seconds()
          .optional()
          .describe('Seconds a paused server may hold our queued job before the stack fails. Default: 60.'),
      }, expecting('expected a mapping of Duplicati settings'))
      .strict()
      .optional()
      .describe('How to reach Duplicati.'),
    backup_mount: z
      .string(expecting('expected an absolute path'))
      .regex(/^\//)
      .optional()
      .describe('A folder that must be reachable before any stack is stopped (reading it triggers an automount).'),
    hook_timeout: seconds().optional().describe('Seconds one hook command may run. Default: 300.'),
    monitor: monitorSchema.describe('Where to report every stack\'s run (a stack file\'s monitor keys win).'),
    restore: restoreSchema.describe('How `stack-backup restore` treats every stack (a stack file\'s restore keys win).'),
    restore_test: restoreTestSchema.describe('The restore test of every stack (a stack file\'s restore_test keys win; false there turns it off).'),
    metrics_file: z
      .string(expecting('expected an absolute path'))
      .regex(/^\//)
      .optional()
      .describe('Prometheus textfile (node_exporter textfile collector) written after each stack, e.g. /var/lib/node_exporter/textfile/stack_backup.prom.'),
    log_retention_days: z
      .number(expecting('expected a whole number of days greater than 0'))
      .int()
      .positive()
      .optional()
      .describe('Days to keep logs/backup-<stack>-YYYY-MM-DD.log files; older ones are deleted after each run. Default: 30.'),
  }).strict();
  return { stackFileSchema, globalFileSchema };
}

type Schemas = ReturnType<typeof build>;
export type StackFile = Zod.infer<Schemas['stackFileSchema']>;
export type GlobalFile = Zod.infer<Schemas['globalFileSchema']>;

let built: Schemas | undefined;

/** The schemas, built (and zod loaded) on first use. */
export function schemas(): Schemas {
  built ??= build((createRequire(import.meta.url)('zod/v3') as typeof Zod).z);
  return built;
}
