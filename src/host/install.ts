/**
 * `stack-backup install` / `uninstall`: one timer and one service per root, named
 * stack-backup@<root escaped as `systemd-escape --path` does>, written from the templates in
 * systemd-user/ into ~/.config/systemd/user; then reload and enable the timer. A
 * `stack-backup.timer` from an earlier version serving the same root is disabled and removed,
 * so two timers never fire for one root.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemdManager } from '../adapters/systemd.js';
import type { StackConfig } from '../config/types.js';
import { throwIfAborted } from '../errors.js';
import { undoTimeoutMs } from '../journal/undo-records.js';

/** The units of stack-backup before one per root: replaced by `install`. */
export const legacyUnits = { timer: 'stack-backup.timer', service: 'stack-backup.service' } as const;

export interface InstallPaths {
  /** The package folder: dist/, systemd-user/, README.md. */
  installDir: string;
  cli: string;
  node: string;
  root: string;
  unitDir: string;
}

export function unitDirectory(environment: Record<string, string | undefined>): string {
  const configHome = environment.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(configHome, 'systemd', 'user');
}

export function installPaths(root: string, environment: Record<string, string | undefined>, invokedAs?: string): InstallPaths {
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
  return {
    installDir: path.resolve(path.dirname(cli), '..'),
    // The path the command was started by (an `npm link` symlink, say) stays valid across
    // reinstalls, where the resolved file may not.
    cli: invokedAs ? path.resolve(invokedAs) : cli,
    node: process.execPath,
    root,
    unitDir: unitDirectory(environment),
  };
}

/**
 * The root as `systemd-escape --path` writes it (systemd's unit_name_path_escape): slashes at
 * the ends dropped, "/" becomes "-", a leading "." and every byte that is not a letter, digit,
 * ":", "_" or "." becomes \xNN; "/" alone is "-".
 */
export function escapePath(root: string): string {
  const simplified = path.posix.normalize(root).replace(/^\/+|\/+$/g, '');
  if (simplified === '') return '-';
  let escaped = '';
  const bytes = Buffer.from(simplified, 'utf8');
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index]!;
    const character = String.fromCharCode(byte);
    if (character === '/') escaped += '-';
    else if ((index === 0 && character === '.') || !/[A-Za-z0-9:_.]/.test(character) || byte > 0x7f) {
      escaped += `\\x${byte.toString(16).padStart(2, '0')}`;
    } else escaped += character;
  }
  return escaped;
}

/** The inverse of escapePath, as `systemd-escape --unescape --path` does. */
export function unescapePath(escaped: string): string {
  if (escaped === '-') return '/';
  const bytes: number[] = [];
  for (let index = 0; index < escaped.length; index++) {
    const match = /^\\x([0-9a-fA-F]{2})/.exec(escaped.slice(index));
    if (match) {
      bytes.push(Number.parseInt(match[1]!, 16));
      index += 3;
    } else bytes.push(escaped[index] === '-' ? 0x2f : escaped.charCodeAt(index));
  }
  return `/${Buffer.from(bytes).toString('utf8')}`;
}

export function unitNames(root: string): { service: string; timer: string } {
  const instance = `stack-backup@${escapePath(root)}`;
  return { service: `${instance}.service`, timer: `${instance}.timer` };
}

/** Time for the first forward step to end and the summary and monitoring reports to go out. */
const stopMarginMs = 60_000;
/** Each monitoring report: three attempts of 5 s, 1 s apart (backup/monitor.ts). */
const monitoringMs = 3 * 5000 + 2 * 1000;

/**
 * How long stopping the service may take: the longest undo the configuration allows (one stack
 * is under way at a time: its unit's start with pre_start hooks, the unfreeze, the post_start
 * hooks), plus the monitoring reports and a margin; never less than 5 minutes. Budgets come
 * from undoTimeoutMs, the same that bounds each undo.
 */
export function stopTimeoutSeconds(stacks: readonly StackConfig[]): number {
  let longest = 0;
  for (const stack of stacks) {
    const hooks = (phase: 'pre_start' | 'post_start') => ({
      phase,
      commands: stack.hooks[phase],
      environment: {},
      cwd: '/',
      timeoutMs: stack.hookTimeoutMs,
    });
    let total = undoTimeoutMs({
      kind: 'restore-unit',
      unit: stack.unit,
      stateBefore: 'active',
      start: true,
      startTimeoutMs: stack.startTimeoutMs,
      preStart: hooks('pre_start'),
    });
    if (stack.freeze) total += undoTimeoutMs({ kind: 'unfreeze', socket: stack.freeze.socket, service: stack.freeze.service });
    if (stack.hooks.pre_stop.length > 0 || stack.hooks.post_start.length > 0) total += undoTimeoutMs({ kind: 'hooks', hooks: hooks('post_start') });
    longest = Math.max(longest, total);
  }
  return Math.max(300, Math.ceil((longest + monitoringMs + stopMarginMs) / 1000));
}

/** A value for a unit file: quoted, with systemd's specifiers (%) and escapes (\, ") kept literal. */
function unitValue(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

/** The unit files' text, placeholders replaced. */
export function renderUnits(paths: InstallPaths, stopTimeout: number): Array<{ name: string; text: string }> {
  const names = unitNames(paths.root);
  const values: Record<string, string> = {
    '@INSTALL_DIR@': paths.installDir.replace(/%/g, '%%'),
    '@CLI@': unitValue(paths.cli),
    '@NODE@': unitValue(paths.node),
    '@ROOT@': unitValue(paths.root),
    // WorkingDirectory= takes the path as it is: no quotes, only specifiers escaped.
    '@ROOT_PATH@': paths.root.replace(/%/g, '%%'),
    '@ROOT_COMMENT@': paths.root.replace(/\n/g, ' ').replace(/%/g, '%%'),
    '@SERVICE@': names.service,
    '@STOP_TIMEOUT@': `${stopTimeout}s`,
  };
  return [
    { name: names.service, template: 'stack-backup@.service' },
    { name: names.timer, template: 'stack-backup@.timer' },
  ].map(({ name, template }) => {
    const text = readFileSync(path.join(paths.installDir, 'systemd-user', template), 'utf8');
    return { name, text: text.replace(/@[A-Z_]+@/g, (token) => values[token] ?? token) };
  });
}

/** The root an installed service file serves: its --root argument. */
export function rootOfServiceFile(text: string): string | undefined {
  const match = /^ExecStart=.*--root "((?:[^"\\]|\\.)*)"/m.exec(text);
  return match ? match[1]!.replace(/%%/g, '%').replace(/\\(.)/g, '$1') : undefined;
}

/** TimeoutStopSec= of an installed service file, in seconds; undefined when absent or not understood. */
export function installedStopTimeout(text: string): number | undefined {
  const match = /^TimeoutStopSec=(.+)$/m.exec(text);
  if (!match) return undefined;
  const value = match[1]!.trim();
  if (value === 'infinity') return Number.POSITIVE_INFINITY;
  const units: Record<string, number> = { '': 1, s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600 };
  let seconds = 0;
  for (const part of value.split(/\s+/)) {
    const piece = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(part);
    if (!piece || units[piece[2]!] === undefined) return undefined;
    seconds += Number(piece[1]) * units[piece[2]!]!;
  }
  return seconds;
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Every root with a timer installed by this version: the timer and the root its service serves. */
export function installedRoots(unitDir: string): Array<{ timer: string; service: string; root: string }> {
  let entries: string[];
  try {
    entries = readdirSync(unitDir);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => /^stack-backup@.+\.timer$/.test(entry))
    .sort()
    .map((timer) => {
      const service = timer.replace(/\.timer$/, '.service');
      const text = readIfExists(path.join(unitDir, service));
      return { timer, service, root: (text && rootOfServiceFile(text)) ?? unescapePath(timer.slice('stack-backup@'.length, -'.timer'.length)) };
    });
}

function writeAtomically(target: string, text: string): void {
  // Written aside and renamed, so systemd never reads half a file.
  writeFileSync(`${target}.tmp`, text, { mode: 0o644 });
  renameSync(`${target}.tmp`, target);
}

export async function installUnits(
  paths: InstallPaths,
  stopTimeout: number,
  systemd: SystemdManager,
  report: (text: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  mkdirSync(paths.unitDir, { recursive: true });
  const names = unitNames(paths.root);
  // The timer of an earlier version for this root goes first, so two never fire for one root.
  const legacyService = path.join(paths.unitDir, legacyUnits.service);
  const legacyText = readIfExists(legacyService);
  const legacyTimer = path.join(paths.unitDir, legacyUnits.timer);
  if (legacyText !== undefined || existsSync(legacyTimer)) {
    const legacyRoot = legacyText ? rootOfServiceFile(legacyText) : undefined;
    if (legacyRoot === undefined || legacyRoot === paths.root) {
      throwIfAborted(signal);
      if (existsSync(legacyTimer)) await systemd.disableNow(legacyUnits.timer);
      rmSync(legacyTimer, { force: true });
      rmSync(legacyService, { force: true });
      report(`replaced ${legacyUnits.timer} of an earlier version: disabled it and removed ${legacyTimer} and ${legacyService}`);
    } else {
      report(
        `warning: ${legacyUnits.timer} of an earlier version serves ${legacyRoot}; left alone: run "stack-backup --root ${legacyRoot} install" to replace it`,
      );
    }
  }
  for (const unit of renderUnits(paths, stopTimeout)) {
    // Between files, never inside one: a signal leaves whole files behind.
    throwIfAborted(signal);
    const target = path.join(paths.unitDir, unit.name);
    writeAtomically(target, unit.text);
    report(`wrote ${target}`);
  }
  throwIfAborted(signal);
  await systemd.daemonReload();
  throwIfAborted(signal);
  await systemd.enableNow(names.timer);
  report(`enabled ${names.timer} for ${paths.root}; see "systemctl --user list-timers ${names.timer}"`);
}

export async function uninstallUnits(
  root: string,
  unitDir: string,
  systemd: SystemdManager,
  report: (text: string) => void,
  signal?: AbortSignal,
): Promise<boolean> {
  const names = unitNames(root);
  const files = [names.timer, names.service].map((name) => path.join(unitDir, name)).filter((file) => existsSync(file));
  if (files.length === 0) return false;
  throwIfAborted(signal);
  if (existsSync(path.join(unitDir, names.timer))) await systemd.disableNow(names.timer);
  for (const file of files) {
    rmSync(file, { force: true });
    report(`removed ${file}`);
  }
  await systemd.daemonReload();
  report(`disabled ${names.timer}; ${root} has no timer now`);
  return true;
}
