/**
 * The end-to-end tests' view of the real world that test/world/setup.sh built: run the
 * installed CLI as the world's user, read real unit states, drive the Duplicati stand-in and
 * read its CLEAN/DIRTY records.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync, chownSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const worldScripts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'world');
const worldDir = process.env.WORLD_DIR ?? '/var/tmp/stack-backup-world';

function readEnvironment(): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(path.join(worldDir, 'env'), 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) values[match[1]!] = match[2]!.replace(/^"(.*)"$/, '$1');
  }
  return values;
}

export const world = readEnvironment();
export const root = world.WORLD_ROOT!;
export const stacks = ['composeapp', 'ondemand', 'plainapp'] as const;

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => (stdout += chunk));
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs a command as the world's user, with its environment (XDG_RUNTIME_DIR, CONTAINER_HOST). */
export function asUser(argv: string[], environment: Record<string, string> = {}): Promise<Finished> {
  const assignments = Object.entries(environment).map(([key, value]) => `${key}=${value}`);
  return collect(spawn(world.WORLD_AS_USER!, ['env', ...assignments, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Starts the installed CLI as the user (`node dist/cli.js --root ROOT ...`) and returns the child. */
export function startCli(args: string[], environment: Record<string, string> = {}): { child: ChildProcess; finished: Promise<Finished> } {
  const assignments = Object.entries(environment).map(([key, value]) => `${key}=${value}`);
  const child = spawn(world.WORLD_AS_USER!, ['env', ...assignments, process.execPath, world.WORLD_CLI!, '--root', root, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, finished: collect(child) };
}

export function cli(args: string[], environment: Record<string, string> = {}): Promise<Finished> {
  return startCli(args, environment).finished;
}

/** `systemctl --user is-active UNIT` as the user: active, inactive, failed, ... */
export async function unitState(unit: string): Promise<string> {
  return (await asUser(['systemctl', '--user', 'is-active', unit])).stdout.trim();
}

/**
 * The states of a stopped unit. ondemand-stack.service can read "failed" after a clean stop:
 * when systemd's SIGTERM reaches `podman run` after ExecStop's `podman stop` and the `--rm`
 * removal, it cannot forward the signal ("container has already been removed") and exits with
 * an error. Down is down; stack-backup starts a failed unit again like an inactive one.
 */
export const downStates = ['inactive', 'failed'];

export async function systemctl(...args: string[]): Promise<Finished> {
  return asUser(['systemctl', '--user', ...args]);
}

export async function runningContainers(project: string): Promise<string[]> {
  const result = await asUser(['podman', 'ps', '--format', '{{.Names}}', '--filter', `label=io.podman.compose.project=${project}`]);
  return result.stdout.split('\n').filter(Boolean);
}

/**
 * Runs a world script as root and resolves with what it printed. When it fails, the rejection
 * carries its exit, its stderr and the end of its stdout, so a world script that dies says why
 * in vitest's output instead of a bare "Command failed".
 */
export function worldScript(script: string, ...args: string[]): Promise<string> {
  const file = path.join(worldScripts, script);
  return new Promise((resolve, reject) =>
    execFile('bash', [file, ...args], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const exit = error.signal ? `signal ${error.signal}` : `exit ${String(error.code)}`;
      const printed = [stderr.trim() && `stderr:\n${stderr.trim()}`, stdout.trim() && `stdout (end):\n${stdout.trim().split('\n').slice(-20).join('\n')}`].filter(Boolean).join('\n');
      reject(new Error(`world script ${script} ${args.join(' ')} failed (${exit})${printed ? `\n${printed}` : ', printing nothing'}`));
    }),
  );
}

/** Back to the baseline: stand-in reset, stack units and the socket up, the proxy service down. */
export async function resetWorld(): Promise<void> {
  await worldScript('reset.sh', '--quiet');
}

export async function standin(...args: string[]): Promise<string> {
  return worldScript('standin.sh', ...args);
}

export interface JobRecord {
  task: number;
  backupId: string;
  name: string;
  startedAt: number;
  endedAt: number;
  verdict: 'CLEAN' | 'DIRTY';
}

/** The stand-in's record of every job it ran. */
export function jobRecords(): JobRecord[] {
  const file = world.STANDIN_RECORDS!;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => /^\d+ /.test(line))
    .map((line) => {
      const [task, backupId, name, startedAt, endedAt, verdict] = line.split(/\s+/);
      return { task: Number(task), backupId: backupId!, name: name!, startedAt: Number(startedAt), endedAt: Number(endedAt), verdict: verdict as 'CLEAN' | 'DIRTY' };
    });
}

/** Writes a stack file (owned by the user, mode 644) into the world's root. */
export function writeStack(name: string, yaml: string): void {
  writeUserFile(path.join(root, 'stacks', `${name}.yaml`), yaml);
}

export function writeUserFile(file: string, text: string, mode = 0o644): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text, { mode });
  chownSync(file, Number(world.WORLD_UID), Number(world.WORLD_GID));
}

export const defaultStackFiles: Record<string, string> = {
  composeapp: 'duplicati_jobs: [composeapp]\n',
  plainapp: 'duplicati_jobs: [plainapp]\n',
  ondemand:
    'duplicati_jobs: [ondemand]\nfreeze_ondemand: true\nondemand_socket: ondemand-proxy.socket\nondemand_service: ondemand-proxy.service\n',
};

/** The three default stack files and nothing else in stacks/; logs emptied; no global file. */
export function resetRoot(): void {
  for (const entry of readdirSync(path.join(root, 'stacks'))) rmSync(path.join(root, 'stacks', entry), { force: true });
  for (const [name, yaml] of Object.entries(defaultStackFiles)) writeStack(name, yaml);
  rmSync(path.join(root, 'stack-backup.yaml'), { force: true });
  for (const entry of readdirSync(path.join(root, 'logs'))) rmSync(path.join(root, 'logs', entry), { recursive: true, force: true });
}

/** JSON lines of a stack's log file of today. */
export function logLines(stack: string): Array<Record<string, unknown>> {
  const folder = path.join(root, 'logs');
  const files = readdirSync(folder).filter((entry) => entry.startsWith(`backup-${stack}-`) && entry.endsWith('.log'));
  return files.flatMap((file) =>
    readFileSync(path.join(folder, file), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>),
  );
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until the check holds, at most timeoutMs; throws naming what was awaited. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The stand-in's event lines ("<ms> ENQUEUE|START|END ..."). */
export function standinEvents(): string[] {
  const file = world.STANDIN_EVENTS!;
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** True once the stand-in has started a job of this name. */
export function jobStarted(name: string): boolean {
  return standinEvents().some((line) => new RegExp(`^\\d+ START \\d+ \\d+ ${name}\\b`).test(line));
}
