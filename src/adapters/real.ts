/**
 * The real adapters, built in one place. Loaded only by commands that touch the outside world,
 * so `list` and `--dry-run` do not pay for loading dockerode and execa.
 */
import { readFileSync } from 'node:fs';
import type { DuplicatiSettings, GlobalConfig } from '../config/types.js';
import type { Adapters } from './adapters.js';
import { systemClock } from './clock.js';
import { createApiDuplicati } from './duplicati-api.js';
import { createExecDuplicati, type Duplicati } from './duplicati.js';
import { checkFolder } from './files.js';
import { createHookRunner } from './hooks.js';
import { createContainerEngine } from './podman.js';
import { openInteractive, runCommand } from './process.js';
import { acquireUnitLock, unitLockFolder } from './lock.js';
import { createMadePaths } from './made-paths.js';
import { createSourceFiles } from './source-files.js';
import { createSnapshots, type Snapshots } from './snapshots.js';
import { createSystemd, type Systemd, type SystemdManager } from './systemd.js';

/**
 * `sessions`: a backup run's exec driver keeps exec sessions open into the Duplicati container
 * (duplicati-session.ts) until the run closes them; doctor, recover, versions and restore make
 * their calls with one `podman exec` each.
 */
export function createDuplicati(settings: DuplicatiSettings, options: { sessions?: boolean } = {}): Duplicati {
  if (settings.driver === 'exec') return createExecDuplicati(runCommand, settings, { open: options.sessions ? openInteractive : undefined, clock: systemClock });
  return createApiDuplicati({
    url: settings.url,
    password: () => process.env.DUPLICATI_PASSWORD || readFileSync(settings.passwordFile!, 'utf8').trim(),
    runTimeoutMs: settings.runTimeoutMs,
    waitTimeoutMs: settings.waitTimeoutMs,
    pausedTimeoutMs: settings.pausedTimeoutMs,
    clock: systemClock,
  });
}

/** `sessions`: see createDuplicati; a backup run asks for them and closes them at its end (backup/run.ts). */
export function createAdapters(global: GlobalConfig, podmanSocket: string, options: { sessions?: boolean } = {}): Adapters {
  return {
    systemd: createSystemd(runCommand),
    engine: createContainerEngine(podmanSocket),
    duplicati: createDuplicati(global.duplicati, options),
    runHook: createHookRunner(runCommand),
    clock: systemClock,
    checkFolder,
    snapshots: createSnapshots(runCommand, createMadePaths(runCommand)),
    madePaths: createMadePaths(runCommand),
    sourceFiles: createSourceFiles(runCommand),
    lockUnit: unitLocker(global.root),
  };
}

/** Locks units in the user's runtime folder, for this root. */
export function unitLocker(root: string) {
  return (unit: string, onLost: (error: Error) => void) => acquireUnitLock(unitLockFolder(process.env), unit, root, onLost);
}

/**
 * What replaying the crash journal needs: no Podman API; Duplicati only to tell whether a kept
 * snapshot is still read (made when first asked).
 */
export function createRecoveryAdapters(global: GlobalConfig) {
  let duplicati: Duplicati | undefined;
  return {
    systemd: createSystemd(runCommand),
    runHook: createHookRunner(runCommand),
    clock: systemClock,
    snapshots: createSnapshots(runCommand, createMadePaths(runCommand)),
    madePaths: createMadePaths(runCommand),
    duplicati: () => (duplicati ??= createDuplicati(global.duplicati)),
    lockUnit: unitLocker(global.root),
  };
}

export function createSystemdManager(): Systemd & SystemdManager {
  return createSystemd(runCommand);
}

export function createRealSnapshots(): Snapshots {
  return createSnapshots(runCommand, createMadePaths(runCommand));
}
