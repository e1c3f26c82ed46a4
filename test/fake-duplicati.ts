/**
 * The fake Duplicati server: its queue (one worker, pickup delay, de-duplicated runs, pause),
 * its jobs' records and versions, and its restores into the fake world's folders. Time is the
 * world's clock; what it does is recorded in the world's actions.
 */
import type { BackupJob, Duplicati, DuplicatiStatus, JobProgress, JobResult, JobResultKind, PreparedRun, JobRun, StatusOptions, TaskState } from '../src/adapters/duplicati.js';
import { UnknownJobError } from '../src/adapters/duplicati.js';
import type { BackupVersion, RestoreOutcome, RestoreRequest, VersionEntry } from '../src/adapters/backup-versions.js';
import type { FileFacts } from '../src/adapters/source-files.js';
import { CommandError, throwIfAborted } from '../src/errors.js';
import type { FakeWorld } from './fakes.js';

export interface FakeJob {
  id: string;
  name: string;
}

export interface FakeTask {
  task: number;
  backupId: string;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** Whether the job's stack unit was active at any moment while the task ran. */
  sawLiveStack: boolean;
  /** Ended by stop or abort: Interrupted, the record left alone. */
  stopped?: boolean;
}

/**
 * Duplicati's queue as documented: one worker; a task waits pickupDelayMs in the queue before it
 * starts; run is de-duplicated; while paused nothing starts. Time is the world's clock.
 */
export class FakeDuplicati implements Duplicati {
  jobs: FakeJob[] = [];
  /** Which unit backs which backup ID, to record backups taken while the stack was up. */
  readonly unitOf = new Map<string, string>();
  pickupDelayMs = 0;
  durationMs = 5000;
  paused = false;
  /** `run` enqueues, prints its line, then never returns (until ended after run_timeout). */
  runHangs = false;
  /** `run` prints nothing at all. */
  runSilent = false;
  /** `run` prints its line but nothing is queued (it was ended before it reached the server). */
  dropRuns = false;
  failStatus = 0;
  /** Number of status calls so far. */
  statusCalls = 0;
  /** Called at each status call with its number (1-based), before the answer is computed. */
  onStatus: ((call: number) => void) | undefined;
  /** Called at each run call, before the job is looked up. */
  onRun: ((job: string) => void) | undefined;
  readonly tasks: FakeTask[] = [];
  private nextTask = 10;
  serverVersion = '2.2.0.3_stable_2025-12-04';
  /** Each backup's record (Metadata), updated as Runner.cs does when a task ends. */
  readonly records = new Map<string, Record<string, string>>();
  /** Backup IDs whose task throws: LastErrorDate/LastErrorMessage, task Failed. */
  readonly throwing = new Set<string>();
  /** `stop` and `abort` calls, in order. */
  readonly stopCalls: string[] = [];
  /** Tasks that ignore `stop` (only `abort` ends them). */
  ignoreStop = false;

  constructor(private readonly world: FakeWorld) {}

  job(id: string, name: string, unit?: string): this {
    this.jobs.push({ id, name });
    if (unit) this.unitOf.set(id, unit);
    return this;
  }

  /** Advances the worker to the world's current time. */
  private settle(): void {
    const now = this.world.clock.now();
    for (;;) {
      const active = this.tasks.find((task) => task.startedAt !== undefined && task.endedAt === undefined);
      if (active) {
        const unit = this.unitOf.get(active.backupId);
        if (unit && this.world.state(unit) === 'active') active.sawLiveStack = true;
        if (now < active.startedAt! + this.durationMs) return;
        active.endedAt = active.startedAt! + this.durationMs;
        this.recordEnd(active);
        continue;
      }
      if (this.paused) return;
      const next = this.tasks.find((task) => task.startedAt === undefined);
      if (!next) return;
      const lastEnd = Math.max(0, ...this.tasks.map((task) => task.endedAt ?? 0));
      const startAt = Math.max(next.queuedAt + this.pickupDelayMs, lastEnd);
      if (now < startAt) return;
      next.startedAt = startAt;
      const unit = this.unitOf.get(next.backupId);
      if (unit && this.world.state(unit) === 'active') next.sawLiveStack = true;
    }
  }

  private recordEnd(task: FakeTask): void {
    if (task.stopped) return;
    if (!this.throwing.has(task.backupId)) this.storeFilesOf(task);
    const stamp = new Date(task.endedAt!).toISOString();
    const record = { ...this.records.get(task.backupId) };
    if (this.throwing.has(task.backupId)) Object.assign(record, { LastErrorDate: stamp, LastErrorMessage: `backup ${task.backupId} threw` });
    else Object.assign(record, { LastBackupStarted: new Date(task.startedAt!).toISOString(), LastBackupFinished: stamp });
    this.records.set(task.backupId, record);
  }

  /** A job whose source is a folder of fake files keeps a version of them, as it read them (its start, whole seconds). */
  private storeFilesOf(task: FakeTask): void {
    for (const source of this.sources.get(task.backupId) ?? []) {
      const base = source.replace(/\/+$/, '');
      const mount = (this.world.containerMounts.get('duplicati') ?? []).find((candidate) => base === candidate.destination || base.startsWith(`${candidate.destination}/`));
      const host = mount ? `${mount.source}${base.slice(mount.destination.length)}` : base;
      const files = this.world.sourceFiles.folders.get(host);
      if (!files) continue;
      const facts = new Map<string, FileFacts>();
      for (const [relative, entry] of files) {
        const inContainer = `${base}/${relative}`;
        if (this.keepOut.has(inContainer)) continue;
        facts.set(inContainer, this.corrupt.has(inContainer) ? { ...entry, hash: `${entry.hash} with one byte changed` } : { ...entry });
      }
      const time = new Date(Math.floor(task.startedAt! / 1000) * 1000).toISOString();
      this.storeVersion(task.backupId, { time, files: facts.size, data: `backup task ${task.task}`, facts });
    }
  }

  /**
   * Acts as the REST API driver: `run` answers the task ID, and tasks can be looked up,
   * stopped and aborted (a stopped task ends Interrupted and leaves the record alone).
   */
  useTaskApi(): this {
    this.task = async (id: number): Promise<TaskState> => {
      this.settle();
      const task = this.tasks.find((entry) => entry.task === id);
      if (!task) return { status: 'Gone' };
      if (task.endedAt === undefined) return { status: task.startedAt === undefined ? 'Waiting' : 'Running' };
      if (!task.stopped && this.throwing.has(task.backupId)) return { status: 'Failed', errorMessage: `backup ${task.backupId} threw` };
      return { status: 'Completed' };
    };
    this.stopTask = async (id: number, how: 'stop' | 'abort'): Promise<void> => {
      this.stopCalls.push(`${how} ${id}`);
      this.settle();
      const task = this.tasks.find((entry) => entry.task === id && entry.endedAt === undefined);
      if (!task || (how === 'stop' && this.ignoreStop)) return;
      task.stopped = true;
      task.startedAt ??= this.world.clock.now();
      task.endedAt = this.world.clock.now();
    };
    this.jobSources = async (backupId: string) => this.sources.get(backupId) ?? [];
    this.progress = async (): Promise<JobProgress | undefined> => ({ phase: 'Backup_ProcessingFiles', overall: 0.5, filesDone: 5, filesTotal: 10, bytesDone: 1, bytesTotal: 2 });
    return this;
  }

  task?: (id: number) => Promise<TaskState>;
  stopTask?: (id: number, how: 'stop' | 'abort') => Promise<void>;
  progress?: () => Promise<JobProgress | undefined>;

  async version(): Promise<string> {
    return this.serverVersion;
  }

  /** Puts a task on the queue as Duplicati's own scheduler would. */
  schedule(backupId: string): void {
    this.tasks.push({ task: this.nextTask++, backupId, queuedAt: this.world.clock.now(), sawLiveStack: false });
    this.settle();
  }

  completed(backupId: string): FakeTask[] {
    this.settle();
    return this.tasks.filter((task) => task.backupId === backupId && task.endedAt !== undefined);
  }

  /** Status calls that read the jobs' records too (`jobsOnceGone` and that backup gone), as the exec driver's polls do. */
  statusWithJobsCalls = 0;
  /** listJobs calls so far, and when each was made. */
  listCalls = 0;
  readonly listCallsAt: number[] = [];

  async status(signal?: AbortSignal, options?: StatusOptions): Promise<DuplicatiStatus> {
    throwIfAborted(signal);
    this.world.record('duplicati status');
    this.statusCalls += 1;

    this.onStatus?.(this.statusCalls);
    if (this.failStatus > 0) {
      this.failStatus -= 1;
      throw new CommandError('podman exec duplicati duplicati-server-util status: exit 125: no such container');
    }
    this.settle();
    const active = this.tasks.find((task) => task.startedAt !== undefined && task.endedAt === undefined);
    const queue = this.tasks.filter((task) => task.startedAt === undefined).map((task) => ({ task: task.task, backupId: task.backupId }));
    const gone = options?.jobsOnceGone !== undefined && active?.backupId !== options.jobsOnceGone && !queue.some((task) => task.backupId === options.jobsOnceGone);
    if (gone) this.statusWithJobsCalls += 1;
    return {
      paused: this.paused,
      active: active ? { task: active.task, backupId: active.backupId } : undefined,
      queue,
      ...(gone ? { jobs: this.jobList() } : {}),
    };
  }

  /**
   * Left out by default, as the exec driver does: waiters then poll with the clock. Set it to
   * act as the api driver's long-poll (it should advance the world's clock).
   */
  waitForChange?: (since: DuplicatiStatus, maxWaitMs: number, signal?: AbortSignal) => Promise<void>;

  /** What Duplicati says of each finished job (the exec driver's is Unknown). */
  resultKind: JobResultKind = 'Success';
  resultMessage: string | undefined;

  async result(): Promise<JobResult> {
    this.resultCalls.push(this.world.clock.now());
    return { result: this.resultKind, message: this.resultMessage };
  }

  /** Each backup's sources, as the REST API lists them (GET /api/v1/backup/{id}). */
  readonly sources = new Map<string, string[]>();
  jobSources?: (backupId: string) => Promise<string[]>;

  /** Each backup's versions, newest first: their time, how many files each holds, what their data is called, and (backups of fake source files) each file as the container names it. */
  readonly stored = new Map<string, Array<{ time: string; files: number; data: string; facts?: Map<string, FileFacts> }>>();
  /** Faults of what a backup stores: files kept out, files stored with other contents (container paths). */
  readonly keepOut = new Set<string>();
  readonly corrupt = new Set<string>();
  /** Restores ignore permissions: the process's owner, default modes. */
  loseOwners = false;
  /** What every restore does: `zero` writes nothing and says Success; `fail` throws half-way; `warning` ends with a warning; `deeper` lands one folder down. */
  restoreFault: 'zero' | 'fail' | 'warning' | 'deeper' | undefined;
  /** Called when a restore begins (e.g. to abort the run mid-restore). */
  onRestore: ((request: RestoreRequest) => void) | undefined;

  /** Stores a version of a backup (the newest first in the list, as Duplicati numbers them). */
  storeVersion(backupId: string, version: { time: string; files: number; data: string; facts?: Map<string, FileFacts> }): void {
    this.stored.set(backupId, [version, ...(this.stored.get(backupId) ?? [])]);
  }

  async versions(backupId: string, signal?: AbortSignal): Promise<BackupVersion[]> {
    throwIfAborted(signal);
    return (this.stored.get(backupId) ?? []).map((entry, index) => ({ version: index, time: entry.time, fileCount: entry.files, sizeBytes: entry.files * 1000, duplicatiTime: entry.time }));
  }

  async versionEntries(backupId: string, version: BackupVersion, folder: string, signal?: AbortSignal): Promise<VersionEntry[]> {
    throwIfAborted(signal);
    const stored = this.stored.get(backupId)?.[version.version];
    const base = folder.replace(/\/+$/, '');
    if (stored?.facts) {
      return [{ path: `${base}/`, kind: 'folder', size: undefined }, ...[...stored.facts.keys()].filter((key) => key.startsWith(`${base}/`)).map((key) => ({ path: key, kind: 'file' as const, size: 10 }))];
    }
    const files = stored?.files ?? 0;
    return [{ path: `${base}/`, kind: 'folder', size: undefined }, ...Array.from({ length: files }, (_, index) => ({ path: `${base}/file${index}`, kind: 'file' as const, size: 1000 }))];
  }

  async restore(request: RestoreRequest, signal?: AbortSignal): Promise<RestoreOutcome> {
    throwIfAborted(signal);
    this.world.record(`duplicati restore ${request.job} version ${request.version.version} -> ${request.restorePath}`);
    this.onRestore?.(request);
    throwIfAborted(signal);
    const stored = this.stored.get(request.backupId)?.[request.version.version];
    if (!stored) throw new CommandError(`no version ${request.version.version}`);
    const mount = (this.world.containerMounts.get('duplicati') ?? []).find((candidate) => request.restorePath.startsWith(`${candidate.destination}/`));
    const host = mount ? `${mount.source}${request.restorePath.slice(mount.destination.length)}` : request.restorePath;
    const folder = this.world.madePaths.folders.get(host);
    if (!folder) throw new CommandError(`${request.restorePath} does not exist`);
    if (stored.facts && !request.filters[0]!.startsWith('[')) return this.restoreFiles(stored.facts, request.filters, host);
    if (this.restoreFault === 'zero') return { result: 'Success', restoredFiles: 0, sizeBytes: 0, messages: [] };
    if (this.restoreFault === 'fail') {
      folder.files = Math.floor(stored.files / 2);
      folder.data = `part of ${stored.data}`;
      return { result: 'Fatal', restoredFiles: folder.files, sizeBytes: undefined, messages: ['File hash mismatch'] };
    }
    folder.files = stored.files;
    folder.data = stored.data;
    if (this.restoreFault === 'deeper') folder.deeper = request.filters[0]!.replace(/^\[(.*)\/\.\*\]$/, '$1').split('/').pop()!;
    if (this.restoreFault === 'warning') return { result: 'Warning', restoredFiles: stored.files, sizeBytes: stored.files * 1000, messages: ['Failed to apply metadata to file'] };
    return { result: 'Success', restoredFiles: stored.files, sizeBytes: stored.files * 1000, messages: [] };
  }

  /** A restore of single files (a restore test's sample): each lands below the host folder relative to the files' common folder. */
  private restoreFiles(facts: Map<string, FileFacts>, paths: readonly string[], host: string): RestoreOutcome {
    const folders = paths.map((entry) => entry.split('/').slice(0, -1));
    let common = folders[0] ?? [];
    for (const other of folders.slice(1)) {
      let shared = 0;
      while (shared < common.length && shared < other.length && common[shared] === other[shared]) shared += 1;
      common = common.slice(0, shared);
    }
    const prefix = `${common.join('/')}/`;
    let restored = 0;
    for (const entry of paths) {
      const found = facts.get(entry);
      if (!found) continue;
      const copy = this.loseOwners ? { ...found, uid: '0', gid: '0', mode: found.type === 'file' ? '644' : found.mode } : { ...found };
      const relative = entry.slice(prefix.length);
      if (!this.world.sourceFiles.folders.has(host)) this.world.sourceFiles.folders.set(host, new Map());
      this.world.sourceFiles.folders.get(host)!.set(relative, { ...copy, path: relative });
      restored += 1;
    }
    return { result: 'Success', restoredFiles: restored, sizeBytes: restored * 10, messages: [] };
  }

  async pause(signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    this.world.record('duplicati pause');
    this.paused = true;
  }

  async resume(signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    this.world.record('duplicati resume');
    this.paused = false;
  }

  async listJobs(): Promise<BackupJob[]> {
    this.listCalls += 1;
    this.listCallsAt.push(this.world.clock.now());
    this.settle();
    return this.jobList();
  }

  private jobList(): BackupJob[] {
    return this.jobs.map(({ id, name }) => ({ id, name, record: { ...this.records.get(id) } }));
  }

  /** prepare calls so far, with the time each was made; ready calls, by job. */
  readonly prepareCalls: Array<{ job: string; at: number }> = [];
  readonly readyCalls: string[] = [];

  /** As both drivers do: a job's run is readied (exec: its podman exec) before the stop. */
  async ready(job: string): Promise<void> {
    this.readyCalls.push(job);
  }

  /** As both drivers do: the job's ID and record, read while the stack stops; an unknown job is refused. */
  async prepare(jobName: string, signal?: AbortSignal): Promise<PreparedRun> {
    throwIfAborted(signal);
    this.settle();
    this.prepareCalls.push({ job: jobName, at: this.world.clock.now() });
    const job = this.jobs.find((entry) => entry.id === jobName || entry.name.toLowerCase() === jobName.toLowerCase());
    if (!job) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${jobName}"`, 'No backup found with supplied ID or name');
    return { job: jobName, backupId: job.id, backupName: job.name, recordBefore: { ...this.records.get(job.id) } };
  }

  /** As both drivers do: the job's record is read just before the run (or was, prepared), and an unknown job is refused before anything is queued. */
  async run(jobName: string, signal?: AbortSignal, prepared?: PreparedRun): Promise<JobRun> {
    throwIfAborted(signal);
    this.settle();
    const job = this.jobs.find((entry) => entry.id === jobName || entry.name.toLowerCase() === jobName.toLowerCase());
    if (!job) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${jobName}"`, 'No backup found with supplied ID or name');
    const recordBefore = prepared?.recordBefore ?? { ...this.records.get(job.id) };
    const requestedAt = this.world.clock.now();
    this.world.record(`duplicati run ${jobName}`);
    this.onRun?.(jobName);
    this.settle();
    const existing = this.tasks.find((task) => task.backupId === job.id && task.endedAt === undefined);
    if (!existing && !this.dropRuns) this.schedule(job.id);
    const ours = existing ?? this.tasks.find((task) => task.backupId === job.id && task.endedAt === undefined);
    const task = this.task && !this.dropRuns ? (ours?.task ?? this.tasks.filter((entry) => entry.backupId === job.id).at(-1)?.task) : undefined;
    const line = `Running backup ${job.name} (ID: ${job.id})`;
    // Without the run line, the ID comes from the job list read before the run (exec driver).
    if (this.runSilent) return { backupId: job.id, backupName: job.name, timedOut: true, output: '', recordBefore, requestedAt };
    if (this.runHangs) {
      this.world.clock.advance(25_000);
      return { backupId: job.id, backupName: job.name, timedOut: true, output: line, recordBefore, requestedAt };
    }
    return { backupId: job.id, backupName: job.name, timedOut: false, output: line, task, recordBefore, requestedAt, queuedAt: this.world.clock.now() };
  }

  /** Results read so far, with the time each was read (the verdict). */
  readonly resultCalls: number[] = [];
}
