/**
 * In-memory fakes of the adapters, sharing one virtual clock: sleeping advances time at once,
 * so waits of hours run in milliseconds. They record what was done, in order, so tests assert
 * what a user would see (unit states, what was started and stopped, hook order).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { timerDelay, type Clock, type Deadline } from '../src/adapters/clock.js';
import type { HookRun } from '../src/adapters/hooks.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../src/adapters/process.js';
import type { ContainerEngine, ContainerEvent, ContainerMount, ContainerSummary } from '../src/adapters/podman.js';
import type { FolderContents, FolderKind, MadePaths, PathIdentity, PathLook, RemovalMethod, RemovalOutcome, RenameOutcome } from '../src/adapters/made-paths.js';
import type { SourceFiles } from '../src/adapters/source-files.js';
import type { FileFacts } from '../src/adapters/source-files.js';
import type { MadeSnapshot, PathFacts, Snapshots, SnapshotToRemove, TargetState } from '../src/adapters/snapshots.js';
import type { Systemd, UnitState } from '../src/adapters/systemd.js';
import type { ContainerSelection } from '../src/config/types.js';
import type { GraphUnit } from '../src/adapters/unit-graph.js';
import { CommandError, LockHeldError, TimeoutError, throwIfAborted } from '../src/errors.js';
import type { GlobalConfig, SnapshotDriverName, SnapshotPath, StackConfig } from '../src/config/types.js';
import type { Journal } from '../src/journal/journal.js';
import type { StackLog, StepHandle } from '../src/report/logging.js';
import { backupStack, type StackResult } from '../src/backup/orchestrator.js';
import type { Adapters } from '../src/adapters/adapters.js';
import { beginStackRun, type StackRun } from '../src/steps/context.js';
import { performUndo, undoContextOf } from '../src/steps/undo-actions.js';
import { createProgress } from '../src/report/report.js';
import { runBackups, type RunReport } from '../src/backup/run.js';
import { FakeDuplicati } from './fake-duplicati.js';

export class FakeClock implements Clock {
  time = 1_700_000_000_000;
  private readonly listeners: Array<() => void> = [];
  now(): number {
    return this.time;
  }
  /** Sleeps so far; every 1000th lets the event loop run, so a runaway wait hits vitest's timeout. */
  private sleeps = 0;
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    this.advance(ms);
    this.sleeps += 1;
    if (this.sleeps % 1000 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    else await Promise.resolve();
    throwIfAborted(signal);
  }
  advance(ms: number): void {
    this.time += ms;
    this.fireDeadlines();
    for (const listener of this.listeners) listener();
  }
  private readonly deadlines = new Set<{ at: number; controller: AbortController; makeError: () => Error }>();
  /** Fires, as the real clock would, once virtual time has reached it (a zero delay fires in a microtask). */
  timeout(ms: number, makeError: () => Error): Deadline {
    const entry = { at: this.time + timerDelay(ms), controller: new AbortController(), makeError };
    this.deadlines.add(entry);
    if (entry.at <= this.time) queueMicrotask(() => this.fireDeadlines());
    return { signal: entry.controller.signal, clear: () => void this.deadlines.delete(entry) };
  }
  /** Deadlines not yet fired or cleared, for tests that check nothing is left behind. */
  get pendingDeadlines(): number {
    return this.deadlines.size;
  }
  private fireDeadlines(): void {
    for (const entry of [...this.deadlines]) {
      if (entry.at > this.time) continue;
      this.deadlines.delete(entry);
      entry.controller.abort(entry.makeError());
    }
  }
  onAdvance(listener: () => void): void {
    this.listeners.push(listener);
  }
}

interface FakeContainer extends Omit<ContainerSummary, 'running'> {
  /** Whether its processes run when the status word alone does not say (a "removing" container). */
  processes?: boolean;
  labels: Record<string, string>;
  unit: string;
  /** Keeps running this long after its unit stopped (a slow shutdown). */
  lingerMs: number;
  exitAt?: number;
  /** When it exited (its `died` event). */
  exitedAt?: number;
}

export class FakeWorld {
  readonly clock = new FakeClock();
  /** Everything done to the outside world, in order: "stop x.service", "hook pre_stop: cmd", "run job"... */
  readonly actions: string[] = [];
  /** The same actions with the virtual time at which each was done. */
  readonly timeline: Array<{ at: number; action: string }> = [];
  /** Called for every hook run, before its planned result is returned (e.g. to abort the run). */
  onHook: ((hook: HookRun) => void | Promise<void>) | undefined;
  readonly units = new Map<string, UnitState>();
  readonly containers: FakeContainer[] = [];
  /** Fail these calls: "start x.service", "stop x.service", "state x.service", "ping". */
  readonly failing = new Set<string>();
  /** These calls never answer (until their signal fires). */
  readonly hanging = new Set<string>();
  readonly hookResults = new Map<string, { exitCode: number; output?: string; hang?: boolean }>();
  readonly hookRuns: HookRun[] = [];
  /** Real milliseconds each container listing takes, as the Podman API does (0: answers at once). */
  containersLatencyMs = 0;
  readonly duplicati = new FakeDuplicati(this);
  readonly snapshots = new FakeSnapshots(this);
  readonly madePaths = new FakeMadePaths(this);
  readonly sourceFiles = new FakeSourceFiles(this);
  /** Units whose lock a run holds, and its root: another root's run is said to hold them. */
  readonly heldUnits = new Map<string, string>();
  /** Every unit lock taken, in order (not in `actions`: it changes nothing a user sees). */
  readonly locksTaken: string[] = [];
  /** States of containers outside the stacks, by name: the Duplicati container runs. */
  readonly containerStates = new Map<string, string>([['duplicati', 'running']]);
  /** Volumes of containers outside the stacks, by name: host folder and where the container sees it. */
  readonly containerMounts = new Map<string, Array<{ source: string; destination: string; writable?: boolean }>>();
  private readonly watchers = new Set<(event?: ContainerEvent) => void>();

  constructor() {
    this.clock.onAdvance(() => this.tick());
  }

  /** Called with each action as it is recorded, before it takes effect (e.g. to look at the journal then). */
  onAction: ((action: string) => void) | undefined;

  /** Records an action in `actions` and `timeline`. */
  record(action: string): void {
    this.actions.push(action);
    this.timeline.push({ at: this.clock.now(), action });
    this.onAction?.(action);
  }

  /** Virtual time of the first (or last) action equal to `action`; undefined when never done. */
  timeOf(action: string, which: 'first' | 'last' = 'first'): number | undefined {
    const matching = this.timeline.filter((entry) => entry.action === action);
    return (which === 'first' ? matching[0] : matching[matching.length - 1])?.at;
  }

  /** Adds a unit; `file` is its UnitFileState (enabled, disabled...), left out when not given. */
  unit(name: string, active: string, load = 'loaded', file?: string): this {
    this.units.set(name, file === undefined ? { load, active } : { load, active, file });
    return this;
  }

  container(name: string, unit: string, labels: Record<string, string>, lingerMs = 0): this {
    this.containers.push({ id: `id-${name}`, name, state: 'running', labels, unit, lingerMs });
    return this;
  }

  state(unit: string): string {
    return this.units.get(unit)?.active ?? 'missing';
  }

  /**
   * How long Podman's list goes on saying an exited container runs (its cleanup, a process of its
   * own, comes after the `died` event): 0, the list says so at once.
   */
  listLagMs = 0;

  private tick(): void {
    const died: FakeContainer[] = [];
    for (const container of this.containers) {
      if (container.state === 'running' && container.exitAt !== undefined && this.clock.now() >= container.exitAt) {
        container.state = 'exited';
        container.exitedAt = container.exitAt;
        died.push(container);
      }
    }
    for (const container of died) for (const watcher of this.watchers) watcher({ id: container.id, action: 'died' });
  }

  private async call(name: string, signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (this.hanging.has(name)) {
      await new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
    }
    if (this.failing.has(name)) throw new CommandError(`${name}: failed (injected)`, 'injected failure output');
  }

  readonly systemd: Systemd = {
    state: async (unit, signal) => {
      await this.call(`state ${unit}`, signal);
      return { ...(this.units.get(unit) ?? { load: 'not-found', active: 'inactive' }) };
    },
    start: async (unit, _timeoutMs, signal) => {
      this.record(`start ${unit}`);
      await this.call(`start ${unit}`, signal);
      const state = this.units.get(unit);
      if (!state || state.load !== 'loaded') throw new CommandError(`Unit ${unit} not found.`);
      state.active = 'active';
      for (const container of this.containers.filter((entry) => entry.unit === unit)) {
        container.state = 'running';
        delete container.exitAt;
        delete container.exitedAt;
      }
    },
    stop: async (unit, _timeoutMs, signal) => {
      this.record(`stop ${unit}`);
      await this.call(`stop ${unit}`, signal);
      const state = this.units.get(unit);
      if (!state || state.load !== 'loaded') throw new CommandError(`Unit ${unit} not loaded.`);
      state.active = 'inactive';
      for (const container of this.containers.filter((entry) => entry.unit === unit && entry.state === 'running')) {
        if (container.lingerMs === 0) container.state = 'exited';
        else container.exitAt = this.clock.now() + container.lingerMs;
      }
    },
    unitGraph: async (unit, signal) => {
      await this.call(`unitGraph ${unit}`, signal);
      return this.unitGraphs.get(unit) ?? [{ unit, activeState: this.units.get(unit)?.active ?? 'inactive', quadlet: false, sourcePath: undefined }];
    },
  };
  /** What unitGraph answers for a unit (default: the unit alone). */
  readonly unitGraphs = new Map<string, GraphUnit[]>();

  readonly engine: ContainerEngine = {
    ping: async (signal) => this.call('ping', signal),
    containers: async (selection: ContainerSelection, signal) => {
      await this.call('containers', signal);
      if (this.containersLatencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.containersLatencyMs));
      return this.containers
        .filter((container) => selection.some((selector) => container.labels[selector.key] === selector.value))
        .map(({ id, name, state, processes, exitedAt }) => {
          const cleaning = exitedAt !== undefined && this.clock.now() < exitedAt + this.listLagMs;
          return { id, name, state: cleaning ? 'running' : state, running: processes ?? (state === 'running' || cleaning) };
        });
    },
    containerState: async (name, signal) => {
      await this.call('containerState', signal);
      return this.containerStates.get(name) ?? 'missing';
    },
    containerMounts: async (name, signal) => {
      await this.call('containerMounts', signal);
      return this.containerMounts.get(name) ?? [];
    },
    watch: async (_selector, onChange) => {
      if (this.failing.has('watch')) throw new Error('events not supported (injected)');
      this.watchers.add(onChange);
      return () => this.watchers.delete(onChange);
    },
  };

  readonly runHook = async (hook: HookRun): Promise<CommandResult> => {
    this.hookRuns.push(hook);
    this.record(`hook ${hook.environment.STACK_PHASE}: ${hook.command}`);
    await this.onHook?.(hook);
    const planned = this.hookResults.get(hook.command) ?? { exitCode: 0 };
    if (planned.hang) {
      this.clock.advance(hook.timeoutMs);
      return { argv: ['/bin/sh', '-c', hook.command], exitCode: undefined, stdout: '', stderr: '', output: '', timedOut: true, durationMs: hook.timeoutMs };
    }
    throwIfAborted(hook.signal);
    const output = planned.output ?? '';
    return { argv: ['/bin/sh', '-c', hook.command], exitCode: planned.exitCode, stdout: output, stderr: '', output, timedOut: false, durationMs: 1 };
  };

  readonly unreachableFolders = new Set<string>();

  adapters(): Adapters {
    return {
      systemd: this.systemd,
      engine: this.engine,
      duplicati: this.duplicati,
      runHook: this.runHook,
      clock: this.clock,
      checkFolder: async (folder) => {
        this.record(`check ${folder}`);
        if (this.unreachableFolders.has(folder)) throw new TimeoutError('no answer within 30 s');
      },
      snapshots: this.snapshots,
      madePaths: this.madePaths,
      sourceFiles: this.sourceFiles,
      lockUnit: async (unit) => {
        const holder = this.heldUnits.get(unit);
        if (holder !== undefined) throw new LockHeldError(`another stack-backup run (root ${holder}) is backing up or restoring unit ${unit} now`);
        this.heldUnits.set(unit, 'this run');
        this.locksTaken.push(unit);
        return async () => void this.heldUnits.delete(unit);
      },
    };
  }
}

/** One source folder as the fake filesystems know it. */
export interface FakeSource {
  fsType: string;
  /** 256: a btrfs subvolume's root. */
  inode: number;
  mount: string;
  nested?: string[];
}

/**
 * Snapshots on fake filesystems: a source is known by its facts (`sources`), a target's parent
 * is writable on the mount of its source unless told otherwise. Records "snapshot SOURCE ->
 * TARGET (driver)" and "remove snapshot TARGET"; failing: "snapshot TARGET", "remove TARGET".
 */
export class FakeSnapshots implements Snapshots {
  readonly sources = new Map<string, FakeSource>();
  /**
   * Targets that exist now and who made them: `stack-backup` (with a marker beside it that
   * describes it) or `someone else` (`marker`: a left-over marker of stack-backup's is beside
   * it, describing something else). `inode` tells one folder from another at the same path.
   */
  readonly targets = new Map<string, { madeBy: 'stack-backup' | 'someone else'; madeAt: number; inode?: string; marker?: boolean }>();
  /** A marker left beside a target that is gone. */
  readonly staleMarkers = new Set<string>();
  /** Each snapshot's life, for asserting what a job could read: target, made, removed. */
  readonly lives: Array<{ target: string; madeAt: number; removedAt?: number }> = [];
  /** Target parents on another mount than their source's, or not writable. */
  readonly otherMount = new Set<string>();
  readonly readOnly = new Set<string>();
  readonly noReflink = new Set<string>();
  private made = 0;
  constructor(private readonly world: FakeWorld) {}

  source(source: string, facts: Partial<FakeSource> = {}): void {
    this.sources.set(source, { fsType: 'btrfs', inode: 256, mount: '/srv', ...facts });
  }

  private check(call: string, signal?: AbortSignal): void {
    throwIfAborted(signal);
    if (this.world.failing.has(call)) throw new CommandError(`${call}: failed (injected)`);
  }

  private identity(target: string, inode: string): PathIdentity {
    return { filesystem: 'fakefs', inode, born: '-', folder: path.dirname(target) };
  }

  async facts(snapshotPath: SnapshotPath, probe: { reflink: boolean }, signal?: AbortSignal): Promise<PathFacts> {
    this.check(`facts ${snapshotPath.source}`, signal);
    const source = this.sources.get(snapshotPath.source);
    const parent = path.dirname(snapshotPath.target);
    const mount = source?.mount ?? '/';
    return {
      source: source
        ? { exists: true, directory: true, fsType: source.fsType, inode: source.inode, mount }
        : { exists: false, directory: false, fsType: 'unknown', inode: Number.NaN, mount: '' },
      parent: { exists: true, writable: !this.readOnly.has(parent), mount: this.otherMount.has(parent) ? '/elsewhere' : mount, fsType: source?.fsType ?? 'ext4' },
      target: await this.targetState(snapshotPath.target),
      ...(probe.reflink ? { reflink: !this.noReflink.has(parent) } : {}),
    };
  }

  async nestedSubvolumes(source: string, signal?: AbortSignal): Promise<string[]> {
    this.check(`nested ${source}`, signal);
    return this.sources.get(source)?.nested ?? [];
  }

  async targetState(target: string, signal?: AbortSignal): Promise<TargetState> {
    this.check(`look ${target}`, signal);
    const existing = this.targets.get(target);
    if (!existing) return { state: 'absent', staleMarker: this.staleMarkers.has(target) };
    if (existing.madeBy !== 'stack-backup') {
      return { state: 'foreign', reason: existing.marker ? `${target}.stack-backup describes what stack-backup made there, but it is another folder` : `no ${target}.stack-backup beside it` };
    }
    const identity = this.identity(target, existing.inode ?? 'planted');
    return { state: 'ours', marker: { madeBy: 'stack-backup', stack: 'earlier', run: 'earlier-run', driver: 'btrfs', source: '', target, identity } };
  }

  async create(
    driver: SnapshotDriverName,
    snapshotPath: SnapshotPath,
    _owner: { stack: string; run: string },
    made: (snapshot: MadeSnapshot) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    this.check(`snapshot ${snapshotPath.target}`, signal);
    if (this.targets.has(snapshotPath.target)) throw new CommandError(`${snapshotPath.target} exists`);
    const inode = `made-${(this.made += 1)}`;
    this.world.record(`snapshot ${snapshotPath.source} -> ${snapshotPath.target} (${driver})`);
    made({ identity: this.identity(snapshotPath.target, inode) });
    this.targets.set(snapshotPath.target, { madeBy: 'stack-backup', madeAt: this.world.clock.now(), inode });
    // Its files are the source's as they are now (a restore test reads them).
    if (this.world.sourceFiles.folders.has(snapshotPath.source)) this.world.sourceFiles.copy(snapshotPath.source, snapshotPath.target);
    this.lives.push({ target: snapshotPath.target, madeAt: this.world.clock.now() });
  }

  async remove(snapshot: SnapshotToRemove, signal?: AbortSignal): Promise<RemovalOutcome> {
    const { target } = snapshot;
    this.check(`remove ${target}`, signal);
    const existing = this.targets.get(target);
    if (!existing) {
      this.staleMarkers.delete(target);
      return { outcome: 'absent' };
    }
    if (!snapshot.made) return { outcome: 'kept', reason: 'the crash journal records no identity for it' };
    if (existing.madeBy !== 'stack-backup' || (existing.inode ?? 'planted') !== snapshot.made.identity.inode) {
      return { outcome: 'kept', reason: 'it is another folder than the one stack-backup made' };
    }
    this.world.record(`remove snapshot ${target}`);
    this.targets.delete(target);
    this.world.sourceFiles.folders.delete(target);
    for (const life of this.lives) if (life.target === target && life.removedAt === undefined) life.removedAt = this.world.clock.now();
    return { outcome: 'removed' };
  }
}

/**
 * Folders on a fake filesystem, each with an identity and what it holds (`data`: a label such as
 * "version 3", so a test sees which data ended up where). Records "make PATH", "rename FROM -> TO",
 * "remove PATH"; failing: "make PATH", "rename FROM", "remove PATH".
 */
export class FakeMadePaths implements MadePaths {
  /** `files`: regular files and links in it; `deeper`: a restore put them one level down, in a folder of this name. */
  readonly folders = new Map<string, { inode: string; data: string; link?: string; files?: number; deeper?: string }>();
  /** Free bytes on every filesystem. */
  freeSpace = 1024 ** 4;
  private made = 0;
  constructor(private readonly world: FakeWorld) {}

  async contents(folder: string, probes: readonly string[], _timeoutMs: number, signal?: AbortSignal): Promise<FolderContents> {
    this.check(`contents ${folder}`, signal);
    const found = this.folders.get(folder);
    const files = found?.files ?? 0;
    if (found?.deeper !== undefined) return { files, present: probes.map(() => false), names: [found.deeper] };
    return { files, present: probes.map(() => files > 0), names: files > 0 ? ['data'] : [] };
  }

  async lift(folder: string, child: string, _timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.check(`lift ${folder}`, signal);
    const found = this.folders.get(folder);
    if (found?.deeper !== child) throw new CommandError(`${folder}/${child} is not there`);
    delete found.deeper;
    this.world.record(`lift ${folder}/${child}`);
  }

  async copyAttributes(from: string, to: string, signal?: AbortSignal): Promise<void> {
    this.check(`attributes ${to}`, signal);
    this.world.record(`attributes ${from} -> ${to}`);
  }

  async freeBytes(): Promise<number> {
    return this.freeSpace;
  }

  /** A folder that exists, e.g. a stack's live data. */
  folder(folder: string, data: string): void {
    this.folders.set(folder, { inode: `existing-${(this.made += 1)}`, data });
  }

  private identity(folder: string, inode: string): PathIdentity {
    return { filesystem: 'fakefs', inode, born: '-', folder: path.dirname(folder) };
  }

  private check(call: string, signal?: AbortSignal): void {
    throwIfAborted(signal);
    if (this.world.failing.has(call)) throw new CommandError(`${call}: failed (injected)`);
  }

  async look(folder: string, signal?: AbortSignal): Promise<PathLook> {
    this.check(`look ${folder}`, signal);
    const found = this.folders.get(folder);
    if (!found) return { kind: 'absent' };
    if (found.link !== undefined) return { kind: 'link', to: found.link };
    return { kind: 'folder', identity: this.identity(folder, found.inode) };
  }

  async makeFolder(folder: string, _kind: FolderKind, signal?: AbortSignal): Promise<PathIdentity> {
    this.check(`make ${folder}`, signal);
    if (this.folders.has(folder)) throw new CommandError(`${folder} exists`);
    const inode = `made-${(this.made += 1)}`;
    this.folders.set(folder, { inode, data: 'empty' });
    this.world.record(`make ${folder}`);
    return this.identity(folder, inode);
  }

  async rename(from: string, to: string, made: PathIdentity, _timeoutMs: number, signal?: AbortSignal): Promise<RenameOutcome> {
    this.check(`rename ${from}`, signal);
    const source = this.folders.get(from);
    if (!source) return this.folders.get(to)?.inode === made.inode ? { outcome: 'already' } : { outcome: 'kept', reason: `${from} is gone, and ${to} is not what was there` };
    if (source.link !== undefined || source.inode !== made.inode) return { outcome: 'kept', reason: `${from} is not what stack-backup recorded there` };
    if (this.folders.has(to)) return { outcome: 'kept', reason: `${to} exists, and a rename never replaces anything` };
    this.folders.delete(from);
    this.folders.set(to, source);
    this.world.record(`rename ${from} -> ${to}`);
    return { outcome: 'renamed' };
  }

  async remove(folder: string, made: PathIdentity, _method: RemovalMethod, _timeoutMs: number, signal?: AbortSignal): Promise<RemovalOutcome> {
    this.check(`remove ${folder}`, signal);
    const found = this.folders.get(folder);
    if (!found) return { outcome: 'absent' };
    if (found.link !== undefined) return { outcome: 'kept', reason: 'it is a symbolic link' };
    if (found.inode !== made.inode) return { outcome: 'kept', reason: 'it is another folder than the one stack-backup made' };
    this.folders.delete(folder);
    this.world.record(`remove ${folder}`);
    return { outcome: 'removed' };
  }
}

/** Files of folders, each known by its facts (a restore test's frozen source, a scratch folder). */
export class FakeSourceFiles implements SourceFiles {
  readonly folders = new Map<string, Map<string, FileFacts>>();
  /** Reads that were asked for, with the virtual time: "list FOLDER", "facts FOLDER (N)". */
  readonly reads: Array<{ at: number; read: string }> = [];
  constructor(private readonly world: FakeWorld) {}

  /** A file of a folder: a 0644 file of the stack's user unless told otherwise. */
  file(folder: string, relative: string, facts: Partial<FileFacts> = {}): void {
    if (!this.folders.has(folder)) this.folders.set(folder, new Map());
    this.folders.get(folder)!.set(relative, { path: relative, type: 'file', size: 10, mode: '644', uid: '0', gid: '0', mtime: '1800000000.123456789', hash: `hash of ${relative}`, ...facts });
  }

  copy(from: string, to: string): void {
    this.folders.set(to, new Map([...(this.folders.get(from) ?? new Map<string, FileFacts>())].map(([key, value]) => [key, { ...value }])));
  }

  async list(folder: string, _timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
    throwIfAborted(signal);
    this.reads.push({ at: this.world.clock.now(), read: `list ${folder}` });
    return [...(this.folders.get(folder)?.keys() ?? [])].sort();
  }

  async facts(folder: string, paths: readonly string[], _timeoutMs: number, signal?: AbortSignal): Promise<Map<string, FileFacts>> {
    throwIfAborted(signal);
    this.reads.push({ at: this.world.clock.now(), read: `facts ${folder} (${paths.length})` });
    const found = new Map<string, FileFacts>();
    for (const relative of paths) {
      const facts = this.folders.get(folder)?.get(relative);
      if (facts) found.set(relative, { ...facts, path: relative });
    }
    return found;
  }
}

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** A StackLog that keeps its lines in memory. */
export class MemoryLog implements StackLog {
  readonly lines: LogLine[] = [];
  readonly file = '/logs/backup-test.log';
  step(name: string, fields?: Record<string, unknown>): StepHandle {
    this.lines.push({ level: 'info', message: `${name}: start`, fields: { step: name, ...fields } });
    return {
      done: (extra) => this.lines.push({ level: 'info', message: `${name}: done`, fields: { step: name, outcome: 'done', ...extra } }),
      failed: (error, extra) =>
        this.lines.push({ level: 'error', message: `${name}: failed: ${error.message}`, fields: { step: name, outcome: 'failed', ...extra } }),
    };
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', message, fields: fields ?? {} });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', message, fields: fields ?? {} });
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', message, fields: fields ?? {} });
  }
  incomplete: string | undefined = undefined;
  close(): void {}
  messages(level?: LogLine['level']): string[] {
    return this.lines.filter((line) => level === undefined || line.level === level).map((line) => line.message);
  }
}

/** A stack config as load.ts would make it, with test overrides. */
export function stackConfig(overrides: Partial<StackConfig> = {}): StackConfig {
  const name = overrides.name ?? 'app';
  return {
    name,
    file: `/root/stacks/${name}.yaml`,
    unit: `${name}-stack.service`,
    selector: { key: 'io.podman.compose.project', value: name },
    selectorSet: false,
    jobs: [name],
    stopTimeoutMs: 120_000,
    startTimeoutMs: 120_000,
    restorePolicy: 'previous',
    freeze: undefined,
    hooks: { pre_stop: [], post_stop: [], pre_backup: [], post_backup: [], pre_start: [], post_start: [], verify: [] },
    hookTimeoutMs: 300_000,
    monitor: { healthchecks: undefined, webhook: undefined },
    restore: { keepOld: true },
    ...overrides,
  };
}

export function globalConfig(overrides: Partial<GlobalConfig> = {}): GlobalConfig {
  return {
    root: '/srv/stack-backup',
    file: '/srv/stack-backup/stack-backup.yaml',
    duplicati: {
      driver: 'exec',
      url: 'http://127.0.0.1:8200',
      passwordFile: undefined,
      warningsFail: false,
      container: 'duplicati',
      serverUtil: 'duplicati-server-util',
      runTimeoutMs: 25_000,
      waitTimeoutMs: 21_600_000,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 60_000,
    },
    backupMount: undefined,
    hookTimeoutMs: 300_000,
    logRetentionDays: 30,
    monitor: { healthchecks: undefined, webhook: undefined },
    metricsFile: undefined,
    restore: { keepOld: true },
    ...overrides,
  };
}

/**
 * A world with one stack `app`: its unit in the given state, two containers labelled as
 * podman-compose does, and a Duplicati job `app` (ID 1) that knows the unit.
 */
export function worldWithStack(unitState = 'active', name = 'app'): FakeWorld {
  return addStack(new FakeWorld(), name, unitState);
}

/**
 * Adds a stack to a world as worldWithStack does: unit `<name>-stack.service`, containers
 * `<name>-web` and `<name>-db`, and a Duplicati job `<name>` with the next free ID.
 */
export function addStack(world: FakeWorld, name: string, unitState = 'active'): FakeWorld {
  world.unit(`${name}-stack.service`, unitState);
  const running = unitState === 'active';
  for (const part of ['web', 'db']) {
    world.container(`${name}-${part}`, `${name}-stack.service`, { 'io.podman.compose.project': name });
    if (!running) world.containers[world.containers.length - 1]!.state = 'exited';
  }
  world.duplicati.job(String(world.duplicati.jobs.length + 1), name, `${name}-stack.service`);
  return world;
}

/**
 * A world for restores of stack `app`: its live data at /srv/data/app, job 1's source
 * /source/app/ and two versions of it (the 29th, 40 files; the 30th, 42), and the Duplicati
 * container's volumes (by default /srv/data read-only at /source and writable at /restore/data).
 */
export function restoreWorld(volumes: ContainerMount[] = [
  { source: '/srv/data', destination: '/source', writable: false },
  { source: '/srv/data', destination: '/restore/data', writable: true },
]): FakeWorld {
  const world = worldWithStack('active');
  world.madePaths.folder('/srv/data/app', 'live data');
  world.containerMounts.set('duplicati', volumes);
  world.duplicati.sources.set('1', ['/source/app/']);
  world.duplicati.jobSources = async (backupId) => world.duplicati.sources.get(backupId) ?? [];
  world.duplicati.storeVersion('1', { time: '2026-11-29T02:00:00.000Z', files: 40, data: 'version of the 29th' });
  world.duplicati.storeVersion('1', { time: '2026-11-30T02:00:00.000Z', files: 42, data: 'version of the 30th' });
  return world;
}

/** The hooks record of a StackConfig with the given phases set. */
export function hooks(phases: Partial<StackConfig['hooks']>): StackConfig['hooks'] {
  return { pre_stop: [], post_stop: [], pre_backup: [], post_backup: [], pre_start: [], post_start: [], verify: [], ...phases };
}

const tempRoots: string[] = [];

/** Removes every folder tempRoot made; call from afterAll. */
export function removeTempRoots(): void {
  for (const root of tempRoots.splice(0)) rmSync(root, { recursive: true, force: true });
}

/** A fresh folder holding the given files (paths relative to it); for config and run tests. */
export function tempRoot(files: Record<string, string> = {}): string {
  const root = mkdtempSync(path.join(tmpdir(), 'stack-backup-test-'));
  tempRoots.push(root);
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(root, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return root;
}

/** Runs one stack through the orchestrator against the fakes. */
export async function runStack(
  world: FakeWorld,
  stack: StackConfig = stackConfig(),
  options: { global?: GlobalConfig; signal?: AbortSignal; journal?: Journal } = {},
): Promise<{ result: StackResult; log: MemoryLog }> {
  const log = new MemoryLog();
  const result = await backupStack(beginStackRun({ runId: 'run-0000-fake', stack, global: options.global ?? globalConfig(), adapters: world.adapters(), log, signal: options.signal ?? new AbortController().signal, journal: options.journal }));
  return { result, log };
}

/** A StackRun for calling one step directly, against the fakes, with a MemoryLog. */
export function stackRun(
  world: FakeWorld,
  stack: StackConfig = stackConfig(),
  options: { global?: GlobalConfig; signal?: AbortSignal; journal?: Journal } = {},
): StackRun & { log: MemoryLog } {
  const log = new MemoryLog();
  return { ...beginStackRun({ runId: 'run-0000-fake', stack, global: options.global ?? globalConfig(), adapters: world.adapters(), log, signal: options.signal ?? new AbortController().signal, journal: options.journal }), log };
}

/** Reads what a step left to read once the stack runs again (the last job's verdict), as the orchestrator does after the restore. */
export async function readAfterStart(run: StackRun): Promise<void> {
  for (const read of run.afterStart?.splice(0) ?? []) await read();
}

/** Runs the undos a step registered, as the orchestrator would; returns the failures. */
export async function unwind(run: StackRun): Promise<Array<{ name: string; error: Error }>> {
  const context = undoContextOf(run);
  return run.undo.unwind((record, signal) => performUndo(record, context, signal), { started: () => {}, finished: () => {} });
}

export interface RecordedCommand {
  argv: readonly string[];
  options: CommandOptions;
}

/** A CommandRunner that records its calls and answers from a list, for the adapters' own tests. */
export function fakeRunner(answers: Array<Partial<CommandResult>>): { run: CommandRunner; calls: RecordedCommand[] } {
  const calls: RecordedCommand[] = [];
  const run: CommandRunner = async (argv, options) => {
    calls.push({ argv, options });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected command ${argv.join(' ')}`);
    const stdout = answer.stdout ?? '';
    return { argv, exitCode: 0, stdout, stderr: '', output: stdout, timedOut: false, durationMs: 10, ...answer };
  };
  return { run, calls };
}

export interface TwoStackRun {
  root: string;
  world: FakeWorld;
  stacks: StackConfig[];
  output: string[];
  progress: string[];
  run(signal?: AbortSignal): Promise<RunReport>;
}

/**
 * Stacks alpha and beta in a fresh root, both units active, for runBackups with the real lock,
 * log files and journal; alpha gets the given hooks, and its pre_stop hook fails with `failAlpha`.
 */
export function twoStackRun(options: { alphaHooks?: Partial<StackConfig['hooks']>; failAlpha?: boolean } = {}): TwoStackRun {
  const root = tempRoot({ 'stacks/alpha.yaml': 'duplicati_jobs: [alpha]\n', 'stacks/beta.yaml': 'duplicati_jobs: [beta]\n' });
  const world = addStack(addStack(new FakeWorld(), 'alpha'), 'beta');
  if (options.failAlpha) world.hookResults.set('alpha maintenance on', { exitCode: 1, output: 'cannot reach alpha\n' });
  const stacks = [
    stackConfig({ name: 'alpha', file: path.join(root, 'stacks/alpha.yaml'), hooks: hooks(options.alphaHooks ?? {}) }),
    stackConfig({ name: 'beta', file: path.join(root, 'stacks/beta.yaml') }),
  ];
  const output: string[] = [];
  const progress: string[] = [];
  const global = globalConfig({ root, file: path.join(root, 'stack-backup.yaml') });
  return {
    root,
    world,
    stacks,
    output,
    progress,
    run: (signal = new AbortController().signal) =>
      runBackups({
        global,
        stacks,
        adapters: world.adapters(),
        progress: createProgress({ write: (text) => progress.push(text) }, world.clock),
        output: { write: (text) => output.push(text) },
        signal,
      }),
  };
}
