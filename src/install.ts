/**
 * `stack-backup install`: the user units from systemd-user/, with this installation's paths
 * and root filled in, written to ~/.config/systemd/user; then reload and enable the timer.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemdManager } from './adapters/systemd.js';
import { throwIfAborted } from './errors.js';

export const unitFiles = ['stack-backup.service', 'stack-backup.timer'] as const;
export const timerUnit = 'stack-backup.timer';

export interface InstallPaths {
  /** The package folder: dist/, systemd-user/, README.md. */
  installDir: string;
  cli: string;
  node: string;
  root: string;
  unitDir: string;
}

export function installPaths(root: string, environment: Record<string, string | undefined>, invokedAs?: string): InstallPaths {
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const configHome = environment.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return {
    installDir: path.resolve(path.dirname(cli), '..'),
    // The path the command was started by (an `npm link` symlink, say) stays valid across
    // reinstalls, where the resolved file may not.
    cli: invokedAs ? path.resolve(invokedAs) : cli,
    node: process.execPath,
    root,
    unitDir: path.join(configHome, 'systemd', 'user'),
  };
}

/** The unit files' text, placeholders replaced. */
export function renderUnits(paths: InstallPaths): Array<{ name: string; text: string }> {
  const values: Record<string, string> = {
    '@INSTALL_DIR@': paths.installDir,
    '@CLI@': paths.cli,
    '@NODE@': paths.node,
    '@ROOT@': paths.root,
  };
  return unitFiles.map((name) => {
    const template = readFileSync(path.join(paths.installDir, 'systemd-user', name), 'utf8');
    return { name, text: template.replace(/@[A-Z_]+@/g, (token) => values[token] ?? token) };
  });
}

export async function installUnits(
  paths: InstallPaths,
  systemd: SystemdManager,
  report: (text: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  mkdirSync(paths.unitDir, { recursive: true });
  for (const unit of renderUnits(paths)) {
    // Between files, never inside one: a signal leaves whole files behind.
    throwIfAborted(signal);
    const target = path.join(paths.unitDir, unit.name);
    // Written aside and renamed, so systemd never reads half a file.
    writeFileSync(`${target}.tmp`, unit.text, { mode: 0o644 });
    renameSync(`${target}.tmp`, target);
    report(`wrote ${target}`);
  }
  throwIfAborted(signal);
  await systemd.daemonReload();
  throwIfAborted(signal);
  await systemd.enableNow(timerUnit);
  report(`enabled ${timerUnit}; see "systemctl --user list-timers ${timerUnit}"`);
}
