import type { HookPhase } from './schema.js';

/** Selects a stack's containers through the Podman API: label KEY=VALUE. */
export interface LabelSelector {
  key: string;
  value: string;
}

export interface FreezeSettings {
  socket: string;
  service: string | undefined;
}

/** One stack, normalised: defaults applied, seconds turned into milliseconds. */
export interface StackConfig {
  name: string;
  file: string;
  unit: string;
  selector: LabelSelector;
  jobs: string[];
  stopTimeoutMs: number;
  startTimeoutMs: number;
  restorePolicy: 'previous' | 'always';
  freeze: FreezeSettings | undefined;
  hooks: Record<HookPhase, string[]>;
  hookTimeoutMs: number;
  monitor: MonitorSettings;
}

export interface MonitorSettings {
  healthchecks: string | undefined;
  webhook: string | undefined;
  uptimeKuma?: string | undefined;
  ntfy?: string | undefined;
}

export interface DuplicatiSettings {
  driver: 'exec' | 'api';
  /** REST API base, for the api driver. */
  url: string;
  /** Where the api driver reads the password; DUPLICATI_PASSWORD wins. */
  passwordFile: string | undefined;
  warningsFail: boolean;
  container: string;
  serverUtil: string;
  runTimeoutMs: number;
  waitTimeoutMs: number;
  pollIntervalMs: number;
  pausedTimeoutMs: number;
}

export interface GlobalConfig {
  root: string;
  file: string;
  duplicati: DuplicatiSettings;
  backupMount: string | undefined;
  hookTimeoutMs: number;
  logRetentionDays: number;
  monitor: MonitorSettings;
  metricsFile: string | undefined;
}
