/**
 * The real adapters, built in one place. Loaded only by commands that touch the outside world,
 * so `list` and `--dry-run` do not pay for loading dockerode and execa.
 */
import { readFileSync } from 'node:fs';
import type { DuplicatiSettings, GlobalConfig } from '../config/types.js';
import type { Adapters } from '../steps/context.js';
import { systemClock } from './clock.js';
import { createApiDuplicati } from './duplicati-api.js';
import { createExecDuplicati, type Duplicati } from './duplicati.js';
import { checkFolder } from './files.js';
import { createHookRunner } from './hooks.js';
import { createContainerEngine } from './podman.js';
import { runCommand } from './process.js';
import { createSystemd, type SystemdManager } from './systemd.js';

export function createDuplicati(settings: DuplicatiSettings): Duplicati {
  if (settings.driver === 'exec') return createExecDuplicati(runCommand, settings);
  return createApiDuplicati({
    url: settings.url,
    password: () => process.env.DUPLICATI_PASSWORD || readFileSync(settings.passwordFile!, 'utf8').trim(),
    runTimeoutMs: settings.runTimeoutMs,
    clock: systemClock,
  });
}

export function createAdapters(global: GlobalConfig, podmanSocket: string): Adapters {
  return {
    systemd: createSystemd(runCommand),
    engine: createContainerEngine(podmanSocket),
    duplicati: createDuplicati(global.duplicati),
    runHook: createHookRunner(runCommand),
    clock: systemClock,
    checkFolder,
  };
}

/** What replaying the crash journal needs: no Podman API, no Duplicati. */
export function createRecoveryAdapters() {
  return { systemd: createSystemd(runCommand), runHook: createHookRunner(runCommand), clock: systemClock };
}

export function createSystemdManager(): SystemdManager {
  return createSystemd(runCommand);
}
