// What the benchmark's scripts share: the real world of the test suite (its env file, running as
// its user, its scripts), the stand-in's records, a stack's log, and the tables' arithmetic.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const checkout = path.resolve(here, '..');
export const worldDir = process.env.WORLD_DIR ?? '/var/tmp/stack-backup-world';
export const quick = process.env.BENCH_QUICK === '1';

export const world = Object.fromEntries(
  readFileSync(path.join(worldDir, 'env'), 'utf8')
    .split('\n')
    .map((line) => /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line))
    .filter(Boolean)
    .map((match) => [match[1], match[2].replace(/^"(.*)"$/, '$1')]),
);

export const asUser = (...argv) => spawnSync(world.WORLD_AS_USER, argv, { encoding: 'utf8' });
export const script = (name, ...args) => execFileSync('bash', [path.join(checkout, 'test', 'world', name), ...args], { encoding: 'utf8' });

/** stack-backup as the world's user, in the world's root; throws unless it exits 0. */
export function stackBackup(...args) {
  const run = asUser(process.execPath, world.WORLD_CLI, '--root', world.WORLD_ROOT, ...args);
  if (run.status !== 0) throw new Error(`stack-backup ${args.join(' ')} exited ${run.status}: ${run.stdout}${run.stderr}`);
  return run;
}

/** The stand-in's finished job runs. */
export function records() {
  return readFileSync(world.STANDIN_RECORDS, 'utf8')
    .split('\n')
    .filter((line) => /^\d+ /.test(line))
    .map((line) => {
      const [task, id, name, start, end, verdict] = line.split(/\s+/);
      return { task: Number(task), id, name, start: Number(start), end: Number(end), verdict };
    });
}

/** Writes a file of the world's root as its user owns it. */
export function writeUserFile(file, text, mode = 0o644) {
  writeFileSync(file, text, { mode });
  execFileSync('chown', [`${world.WORLD_UID}:${world.WORLD_GID}`, file]);
}

export function writeStackFile(stack, text) {
  writeUserFile(path.join(world.WORLD_ROOT, 'stacks', `${stack}.yaml`), text);
}

/** Writes stack-backup.yaml for the driver under test (exec: the defaults, no file). */
export function useDriver(driver) {
  const file = path.join(world.WORLD_ROOT, 'stack-backup.yaml');
  const passwordFile = path.join(world.WORLD_ROOT, 'duplicati-password');
  rmSync(file, { force: true });
  if (driver !== 'api') return;
  writeUserFile(passwordFile, `${world.DUPLICATI_API_PASSWORD}\n`, 0o600);
  writeUserFile(file, `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n  password_file: ${passwordFile}\n`);
}

/** The lines of the last run in the newest log of this kind (backup, restore) and stack. */
export function lastRun(kind, stack) {
  const logs = path.join(world.WORLD_ROOT, 'logs');
  const file = readdirSync(logs)
    .filter((name) => name.startsWith(`${kind}-${stack}-`))
    .sort()
    .at(-1);
  if (!file) throw new Error(`no ${kind} log of ${stack} in ${logs}`);
  const lines = readFileSync(path.join(logs, file), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const run = lines.filter((line) => line.run).at(-1)?.run;
  return lines.filter((line) => line.run === run);
}

/** Of the last run's lines, the last that matches: a message, or (a string) the end of that step. */
export function lastLogLine(kind, stack, match) {
  const matches = typeof match === 'string' ? (line) => line.step === match && line.event === 'end' : (line) => match.test(line.msg);
  const found = lastRun(kind, stack).filter(matches).at(-1);
  if (!found) throw new Error(`the last ${kind} run of ${stack} logged no line matching ${match}`);
  return found;
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
export const spread = (values) => Math.max(...values) - Math.min(...values);
/** "median ± half the spread", or "-" when nothing was measured. */
export const cell = (values) => {
  const known = values.filter((value) => value !== undefined && !Number.isNaN(value));
  return known.length === 0 ? '-' : `${median(known).toFixed(0)} ± ${(spread(known) / 2).toFixed(0)}`;
};

/** Lines printed as they come, and kept for bench/results.md. */
export function report() {
  const lines = [];
  return {
    lines,
    say(text) {
      lines.push(text);
      console.log(text);
    },
  };
}
