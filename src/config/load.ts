/**
 * Reads and validates the configuration: the root folder, stack-backup.yaml with its
 * environment overrides, and stacks/*.yaml. Every failure is a ConfigError naming the file and
 * the key (or line), thrown before anything outside is touched.
 */
import { readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Yaml from 'yaml';
import type { z } from 'zod/v3';
import { ConfigError, UsageError } from '../errors.js';
import { within } from '../paths.js';
import { assertPlainStackName, didYouMean, normaliseStackArgument, stackNameProblem } from './names.js';
import { ParsedFileCache } from './cache.js';
import { assertNoOverlaps, realPathOf, snapshotPathsOf } from './overlaps.js';
import { hookPhases, maxTimeoutSeconds, schemas, type GlobalFile, type StackFile } from './schema.js';
import type { GlobalConfig, RestoreTestFile, RestoreTestSettings, SampleSize, SnapshotSettings, StackConfig } from './types.js';

export const globalFileName = 'stack-backup.yaml';

const defaults = {
  duplicatiContainer: 'duplicati',
  serverUtil: 'duplicati-server-util',
  runTimeoutSeconds: 25,
  waitTimeoutSeconds: 21600,
  pollIntervalSeconds: 5,
  pausedTimeoutSeconds: 60,
  stopTimeoutSeconds: 120,
  startTimeoutSeconds: 120,
  hookTimeoutSeconds: 300,
  logRetentionDays: 30,
  apiUrl: 'http://127.0.0.1:8200',
};

/**
 * The api driver needs a password: from DUPLICATI_PASSWORD, or a file only the user can read.
 * It is checked here, before anything is touched, and read only when signing in.
 */
function checkPasswordSource(passwordFile: string | undefined, environment: Environment): void {
  if (environment.DUPLICATI_PASSWORD) return;
  if (passwordFile === undefined) {
    throw new ConfigError(globalFileName, 'duplicati.password_file', 'driver api needs a password: set duplicati.password_file or DUPLICATI_PASSWORD');
  }
  let mode: number;
  try {
    mode = statSync(passwordFile).mode;
  } catch (error) {
    throw new ConfigError(globalFileName, 'duplicati.password_file', `cannot read ${passwordFile}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  if (mode & 0o077) {
    throw new ConfigError(globalFileName, 'duplicati.password_file', `${passwordFile} can be read by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 ${passwordFile}`);
  }
}

type Environment = Record<string, string | undefined>;

/** --root, else $STACK_BACKUP_ROOT, else the current folder. */
export function resolveRoot(option: string | undefined, environment: Environment, cwd: string): string {
  return path.resolve(cwd, option ?? environment.STACK_BACKUP_ROOT ?? '.');
}

/** Relative to the root where possible, so messages name `stacks/x.yaml` as the user knows it. */
function displayPath(root: string, file: string): string {
  const relative = path.relative(root, file);
  return relative.startsWith('..') ? file : relative;
}

function readYaml(root: string, file: string, missingIsEmpty: boolean): unknown {
  const shown = displayPath(root, file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingIsEmpty) return {};
    throw new ConfigError(shown, undefined, code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? error}`);
  }
  // Loaded here, not at the top: a command whose files are all cached never needs the parser.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  const document = parseDocument(text, { uniqueKeys: true });
  const problem = document.errors[0];
  if (problem) {
    const where = problem.linePos?.[0];
    const line = where ? `line ${where.line}, column ${where.col}` : undefined;
    throw new ConfigError(shown, line, `YAML syntax error: ${problem.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  const value: unknown = document.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(shown, undefined, 'expected a mapping of keys to values at the top level');
  }
  return value;
}

const caches = new Map<string, ParsedFileCache>();

function cacheOf(root: string): ParsedFileCache {
  let cache = caches.get(root);
  if (!cache) caches.set(root, (cache = new ParsedFileCache(root)));
  return cache;
}

/** Writes what this process parsed into the roots' caches; the command line calls it once at the end. */
export function saveConfigCaches(): void {
  for (const cache of caches.values()) cache.save();
}

/** Reads and validates a file, or takes the validated value from the cache while the file is unchanged. */
function readValidated<T>(root: string, file: string, schema: () => z.ZodType<T, z.ZodTypeDef, unknown>, missingIsEmpty: boolean): T {
  let stats: Stats | undefined;
  try {
    stats = statSync(file);
  } catch {
    stats = undefined;
  }
  // A missing optional file is an empty mapping, valid as every key of it is optional.
  if (!stats && missingIsEmpty) return {} as T;
  const cache = cacheOf(root);
  if (stats) {
    const cached = cache.get(file, stats);
    if (cached !== undefined) return cached as T;
  }
  const value = validate(schema(), readYaml(root, file, missingIsEmpty), displayPath(root, file));
  if (stats) cache.set(file, stats, value);
  return value;
}

function keyPath(segments: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of segments) {
    text += typeof segment === 'number' ? `[${segment}]` : text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

/** The keys a strict object schema allows at a path, for "unknown key" messages. */
function allowedKeys(schema: z.ZodTypeAny, segments: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  for (const segment of segments) {
    const shape = (unwrap(current) as { shape?: Record<string, unknown> }).shape;
    if (!shape || typeof segment !== 'string') return [];
    current = shape[segment];
  }
  const shape = (unwrap(current) as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: unknown): unknown {
  let current = schema as { unwrap?: () => unknown };
  while (typeof current?.unwrap === 'function') current = current.unwrap() as typeof current;
  return current;
}

function valueAt(value: unknown, segments: readonly PropertyKey[]): unknown {
  let current = value;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

function describeIssue(schema: z.ZodTypeAny, input: unknown, issue: z.ZodIssue): { key: string | undefined; detail: string } {
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeys(schema, issue.path).join(', ');
    return { key: keyPath([...issue.path, issue.keys[0]!]), detail: `unknown key (allowed here: ${allowed})` };
  }
  const key = issue.path.length > 0 ? keyPath(issue.path) : undefined;
  const value = valueAt(input, issue.path);
  if (value === undefined) return { key, detail: 'required key is missing' };
  // JSON has no Infinity: YAML's .inf is shown as written.
  const shownValue = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value);
  return { key, detail: `${issue.message} (got ${shownValue})` };
}

/** Validates against the schema; the error names the first problem and lists the others. */
function validate<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown, shown: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // One line per key and problem: a value can break several rules with the same message (.inf).
  const described = result.error.issues.map((issue) => describeIssue(schema, value, issue));
  const [first, ...others] = described.filter(
    (entry, index) => described.findIndex((other) => other.key === entry.key && other.detail === entry.detail) === index,
  );
  const error = new ConfigError(shown, first!.key, first!.detail);
  for (const other of others) error.message += `\n${new ConfigError(shown, other.key, other.detail).message}`;
  throw error;
}

function secondsFromEnvironment(environment: Environment, name: string, fallback: number | undefined): number | undefined {
  const raw = environment[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || value > maxTimeoutSeconds) {
    throw new ConfigError(
      `environment variable ${name}`,
      undefined,
      `expected a number of seconds greater than 0 and at most ${maxTimeoutSeconds} (7 days), got "${raw}"`,
    );
  }
  return value;
}

/** Where the Podman API listens: $CONTAINER_HOST, else $DOCKER_HOST, else the rootless default. */
export function podmanSocketPath(environment: Environment): string {
  for (const name of ['CONTAINER_HOST', 'DOCKER_HOST'] as const) {
    const value = environment[name];
    if (!value) continue;
    if (value.startsWith('unix://')) return value.slice('unix://'.length);
    if (value.startsWith('/')) return value;
    throw new ConfigError(`environment variable ${name}`, undefined, `expected unix:///path/to/podman.sock, got "${value}"`);
  }
  const runtime = environment.XDG_RUNTIME_DIR;
  if (!runtime) {
    throw new ConfigError(
      'environment',
      undefined,
      'cannot find the Podman API: set CONTAINER_HOST, DOCKER_HOST or XDG_RUNTIME_DIR',
    );
  }
  return path.join(runtime, 'podman', 'podman.sock');
}

export function loadGlobalConfig(root: string, environment: Environment): GlobalConfig {
  const file = path.join(root, globalFileName);
  const parsed: GlobalFile = readValidated(root, file, () => schemas().globalFileSchema, true);
  const duplicati = parsed.duplicati ?? {};
  const toMs = (seconds: number) => Math.round(seconds * 1000);
  const driver = duplicati.driver ?? 'exec';
  if (driver === 'api') checkPasswordSource(duplicati.password_file, environment);
  return {
    root,
    file,
    duplicati: {
      driver,
      url: duplicati.url ?? defaults.apiUrl,
      passwordFile: duplicati.password_file,
      warningsFail: duplicati.warnings_fail ?? false,
      container: environment.DUPLICATI_CONTAINER || duplicati.container || defaults.duplicatiContainer,
      serverUtil: duplicati.server_util ?? defaults.serverUtil,
      runTimeoutMs: toMs(
        secondsFromEnvironment(environment, 'DUPLICATI_RUN_TIMEOUT', duplicati.run_timeout) ?? defaults.runTimeoutSeconds,
      ),
      waitTimeoutMs: toMs(
        secondsFromEnvironment(environment, 'DUPLICATI_WAIT_TIMEOUT', duplicati.wait_timeout) ?? defaults.waitTimeoutSeconds,
      ),
      pollIntervalMs: toMs(duplicati.poll_interval ?? defaults.pollIntervalSeconds),
      pausedTimeoutMs: toMs(duplicati.paused_timeout ?? defaults.pausedTimeoutSeconds),
    },
    backupMount: parsed.backup_mount,
    hookTimeoutMs: toMs(parsed.hook_timeout ?? defaults.hookTimeoutSeconds),
    logRetentionDays: parsed.log_retention_days ?? defaults.logRetentionDays,
    monitor: {
      healthchecks: parsed.monitor?.healthchecks,
      webhook: parsed.monitor?.webhook,
      uptimeKuma: parsed.monitor?.uptime_kuma,
      ntfy: parsed.monitor?.ntfy,
    },
    metricsFile: parsed.metrics_file,
    restore: { keepOld: parsed.restore?.keep_old ?? true },
    restoreTest: parsed.restore_test,
  };
}

/** Reads `restore_test.sample`: 20, "2%", "all"; undefined when it is none of these. */
export function parseSampleSize(value: unknown): SampleSize | undefined {
  if (value === 'all') return 'all';
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return { count: value };
  if (typeof value === 'string') {
    const match = /^(\d+(?:\.\d+)?)%$/.exec(value.trim());
    if (match && Number(match[1]) > 0 && Number(match[1]) <= 100) return { percent: Number(match[1]) };
  }
  return undefined;
}

/** A stack's restore test: its own keys over stack-backup.yaml's; false in either turns it off (the stack's wins). */
function restoreTestOf(stackFile: RestoreTestFile | false | undefined, global: GlobalConfig, shown: string): RestoreTestSettings | undefined {
  if (stackFile === false) return undefined;
  if (stackFile === undefined && (global.restoreTest === undefined || global.restoreTest === false)) return undefined;
  const merged: RestoreTestFile = { ...(global.restoreTest || {}), ...(stackFile ?? {}) };
  const sample = parseSampleSize(merged.sample ?? 20);
  if (!sample) throw new ConfigError(stackFile?.sample !== undefined ? shown : globalFileName, 'restore_test.sample', `expected a number of files, a percentage such as "2%", or "all" (got ${JSON.stringify(merged.sample)})`);
  return { sample, intervalMs: Math.round((merged.interval ?? 0) * 1000), countTolerancePercent: merged.count_tolerance ?? 0 };
}

/** A stack file is stacks/<name>.yaml or stacks/<name>.yml. */
const stackFileExtensions = ['.yaml', '.yml'] as const;

/**
 * Every stack in stacks/, by name, with its file; "_" files are templates and "." files
 * editors' leftovers, not stacks. A name in both a .yaml and a .yml file is refused: which
 * one is meant cannot be guessed.
 */
function stackFiles(root: string): Map<string, string> {
  const folder = path.join(root, 'stacks');
  let entries: string[];
  try {
    entries = readdirSync(folder);
  } catch (error) {
    // The whole path: a relative "stacks" says nothing when --root itself is wrong.
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(folder, undefined, code === 'ENOENT' ? 'no such folder: is --root (or STACK_BACKUP_ROOT) right?' : `cannot read the stacks folder: ${code ?? error}`);
  }
  const files = new Map<string, string>();
  for (const entry of entries.sort()) {
    const extension = stackFileExtensions.find((candidate) => entry.endsWith(candidate));
    if (!extension || entry.startsWith('_') || entry.startsWith('.')) continue;
    const name = entry.slice(0, -extension.length);
    const shown = `stacks/${entry}`;
    const problem = stackNameProblem(name);
    if (problem) throw new ConfigError(shown, undefined, `"${name}" is not a stack name: ${problem}; rename the file`);
    const other = files.get(name);
    if (other !== undefined) {
      throw new ConfigError(shown, undefined, `stack "${name}" is also defined by ${displayPath(root, other)}: keep one of the two files`);
    }
    files.set(name, path.join(folder, entry));
  }
  return files;
}

/** Names of every stack in stacks/, sorted. */
export function listStackNames(root: string): string[] {
  return [...stackFiles(root).keys()].sort();
}

/** The stack's file: stacks/<name>.yaml, or stacks/<name>.yml when only that exists. */
export function stackFilePath(root: string, name: string): string {
  const folder = path.join(root, 'stacks');
  for (const extension of stackFileExtensions) {
    const file = path.join(folder, `${name}${extension}`);
    try {
      statSync(file);
      return file;
    } catch {
      // Try the next extension.
    }
  }
  return path.join(folder, `${name}.yaml`);
}

export function loadStack(root: string, name: string, global: GlobalConfig): StackConfig {
  const file = stackFilePath(root, name);
  const shown = displayPath(root, file);
  const parsed: StackFile = readValidated(root, file, () => schemas().stackFileSchema, false);
  return normaliseStack(name, file, shown, parsed, global);
}

function normaliseStack(name: string, file: string, shown: string, parsed: StackFile, global: GlobalConfig): StackConfig {
  if (parsed.container_label !== undefined && parsed.project_label !== undefined) {
    throw new ConfigError(shown, 'container_label', 'set either container_label or project_label, not both');
  }
  if (parsed.freeze_ondemand && parsed.ondemand_socket === undefined) {
    throw new ConfigError(shown, 'ondemand_socket', 'required key is missing: freeze_ondemand is true');
  }
  let selector = { key: 'io.podman.compose.project', value: parsed.project_label ?? name };
  if (parsed.container_label !== undefined) {
    const separator = parsed.container_label.indexOf('=');
    selector = { key: parsed.container_label.slice(0, separator), value: parsed.container_label.slice(separator + 1) };
  }
  const hooks = Object.fromEntries(
    hookPhases.map((phase) => {
      const commands = parsed.hooks?.[phase];
      return [phase, commands === undefined ? [] : Array.isArray(commands) ? commands : [commands]];
    }),
  ) as StackConfig['hooks'];
  const toMs = (seconds: number) => Math.round(seconds * 1000);
  const snapshot = parsed.snapshot ? normaliseSnapshot(shown, parsed.snapshot) : undefined;
  const restoreTest = restoreTestOf(parsed.restore_test, global, shown);
  return {
    name,
    file,
    unit: parsed.unit ?? `${name}-stack.service`,
    selector,
    selectorSet: parsed.project_label !== undefined || parsed.container_label !== undefined,
    jobs: parsed.duplicati_jobs.map(String),
    stopTimeoutMs: toMs(parsed.stop_timeout ?? defaults.stopTimeoutSeconds),
    startTimeoutMs: toMs(parsed.start_timeout ?? defaults.startTimeoutSeconds),
    restorePolicy: parsed.restore_policy ?? 'previous',
    freeze: parsed.freeze_ondemand
      ? { socket: parsed.ondemand_socket!, service: parsed.ondemand_service }
      : undefined,
    hooks,
    hookTimeoutMs: parsed.hook_timeout !== undefined ? toMs(parsed.hook_timeout) : global.hookTimeoutMs,
    monitor: {
      healthchecks: parsed.monitor?.healthchecks ?? global.monitor.healthchecks,
      webhook: parsed.monitor?.webhook ?? global.monitor.webhook,
      uptimeKuma: parsed.monitor?.uptime_kuma ?? global.monitor.uptimeKuma,
      ntfy: parsed.monitor?.ntfy ?? global.monitor.ntfy,
    },
    ...(snapshot ? { snapshot } : {}),
    restore: { keepOld: parsed.restore?.keep_old ?? global.restore.keepOld },
    ...(restoreTest ? { restoreTest } : {}),
  };
}

/**
 * Paths that would snapshot into themselves, or two snapshots into one target, are refused
 * here, before anything is touched: either would copy a snapshot into the data or lose one.
 */
function normaliseSnapshot(shown: string, parsed: NonNullable<StackFile['snapshot']>): SnapshotSettings {
  const paths = parsed.paths.map((entry) => ({ source: path.normalize(entry.source).replace(/(.)\/$/, '$1'), target: path.normalize(entry.target).replace(/(.)\/$/, '$1') }));
  paths.forEach((entry, index) => {
    const key = `snapshot.paths[${index}]`;
    if (entry.source === '/' || entry.target === '/') throw new ConfigError(shown, `${key}.${entry.source === '/' ? 'source' : 'target'}`, 'the root folder cannot be snapshotted or replaced');
    if (within(entry.source, entry.target)) {
      throw new ConfigError(shown, `${key}.target`, `${entry.target} lies inside its source ${entry.source}: the snapshot would be copied into the data`);
    }
    if (within(entry.target, entry.source)) {
      throw new ConfigError(shown, `${key}.target`, `${entry.target} contains its source ${entry.source}: removing the snapshot would remove the data`);
    }
    paths.forEach((other, otherIndex) => {
      if (otherIndex >= index) return;
      const otherKey = `snapshot.paths[${otherIndex}]`;
      if (other.target === entry.target) throw new ConfigError(shown, `${key}.target`, `${entry.target} is also the target of ${otherKey}: each path needs its own target`);
      if (within(other.target, entry.target) || within(entry.target, other.target)) {
        throw new ConfigError(shown, `${key}.target`, `${entry.target} and the target of ${otherKey} (${other.target}) lie inside one another`);
      }
      if (within(other.target, entry.source) || within(entry.source, other.target)) {
        throw new ConfigError(shown, `${key}.source`, `${entry.source} and the target of ${otherKey} (${other.target}) lie inside one another`);
      }
      if (within(entry.target, other.source) || within(other.source, entry.target)) {
        throw new ConfigError(shown, `${key}.target`, `${entry.target} and the source of ${otherKey} (${other.source}) lie inside one another`);
      }
    });
  });
  // A source reached through a link is snapshotted where it really is (a btrfs snapshot of the
  // link itself would fail); overlaps are checked by real path across all stacks (overlaps.ts).
  return { driver: parsed.driver ?? 'auto', paths: paths.map((entry) => ({ ...entry, source: realPathOf(entry.source) })) };
}

/**
 * Refuses snapshot paths that overlap, across every stack of the root (not only the ones
 * asked for): each other stack file that can be read counts; one that cannot is refused when
 * it is run. Nothing to do when none of `stacks` is in snapshot mode.
 */
export function assertNoPathOverlaps(root: string, global: GlobalConfig, stacks: readonly StackConfig[]): void {
  if (!stacks.some((stack) => stack.snapshot)) return;
  const all = [...stacks];
  for (const name of listStackNames(root)) {
    if (all.some((stack) => stack.name === name)) continue;
    try {
      all.push(loadStack(root, name, global));
    } catch {
      // Refused on its own when it is run or checked.
    }
  }
  assertNoOverlaps(snapshotPathsOf(all, (stack) => displayPath(root, stack.file)));
}

/**
 * The stacks a command line names, in the given order, or every stack for `all`. All of them
 * are loaded and validated here, so a bad file refuses the run before any stack is touched.
 */
export function selectStacks(root: string, global: GlobalConfig, targets: readonly string[]): StackConfig[] {
  const known = listStackNames(root);
  if (targets.length === 1 && targets[0] === 'all') {
    const stacks = known.map((name) => loadStack(root, name, global));
    assertNoPathOverlaps(root, global, stacks);
    return stacks;
  }
  const names: string[] = [];
  for (const target of targets) {
    if (target === 'all') throw new UsageError('"all" cannot be combined with stack names');
    const name = resolveStackArgument(root, global, known, target);
    if (!names.includes(name)) names.push(name);
  }
  const stacks = names.map((name) => loadStack(root, name, global));
  assertNoPathOverlaps(root, global, stacks);
  return stacks;
}

function resolveStackArgument(root: string, global: GlobalConfig, known: string[], argument: string): string {
  const name = normaliseStackArgument(argument);
  if (known.includes(name)) return name;
  // A unit name that is not <name>-stack.service may still be some stack's `unit:`.
  if (argument.endsWith('.service')) {
    for (const candidate of known) {
      if (loadStack(root, candidate, global).unit === argument) return candidate;
    }
  }
  assertPlainStackName(name, argument);
  throw new UsageError(`no stack "${argument}"${didYouMean(name, known)}: there is no stacks/${name}.yaml or stacks/${name}.yml (see "stack-backup list")`);
}
