import type { HookPhase } from './schema.js';

/** Selects a stack's containers through the Podman API: label KEY=VALUE. */
export interface LabelSelector {
  key: string;
  value: string;
}

/**
 * All the containers of a stack: those matching any of these labels (and the other containers of
 * a pod one of them is in). Resolved at run time (stack-containers.ts): a stack that sets no label
 * is found by its compose project's label and by its Quadlet units' own PODMAN_SYSTEMD_UNIT.
 */
export type ContainerSelection = readonly LabelSelector[];

export interface FreezeSettings {
  socket: string;
  service: string | undefined;
}

export type SnapshotDriverName = 'btrfs' | 'reflink';

/** One folder of a stack to snapshot: the live data and where its snapshot goes. */
export interface SnapshotPath {
  source: string;
  target: string;
}

/** Snapshot mode: what to snapshot and how; `auto` is decided per path at run time. */
export interface SnapshotSettings {
  driver: SnapshotDriverName | 'auto';
  paths: SnapshotPath[];
}

/** One stack, normalised: defaults applied, seconds turned into milliseconds. */
export interface StackConfig {
  name: string;
  file: string;
  unit: string;
  /** project_label or container_label, or the compose project's label (the stack's name) when neither is set. */
  selector: LabelSelector;
  /** Whether the file set the label (project_label or container_label): then it alone selects. */
  selectorSet: boolean;
  jobs: string[];
  stopTimeoutMs: number;
  startTimeoutMs: number;
  restorePolicy: 'previous' | 'always';
  freeze: FreezeSettings | undefined;
  hooks: Record<HookPhase, string[]>;
  hookTimeoutMs: number;
  monitor: MonitorSettings;
  /** Absent: stop mode (the stack is down while its jobs run). */
  snapshot?: SnapshotSettings | undefined;
  restore: RestoreSettings;
  /** Absent: no restore test after its backups. */
  restoreTest?: RestoreTestSettings | undefined;
}

/** How many files a restore test takes: a number, a share of the files, or all of them. */
export type SampleSize = { count: number } | { percent: number } | 'all';

/** The restore test after each backup: a random sample of the frozen source, restored and compared. */
export interface RestoreTestSettings {
  sample: SampleSize;
  /** A test is due once this long has passed since the last passing one (0: every run). */
  intervalMs: number;
  /** How far, in percent, the version's file count may differ from the frozen source's. */
  countTolerancePercent: number;
}

/** How `stack-backup restore` treats a stack. */
export interface RestoreSettings {
  /** Keep the replaced data beside the restored until `restore --prune` (else remove it after a verified restore). */
  keepOld: boolean;
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
  restore: RestoreSettings;
  /** The restore test's settings in stack-backup.yaml, a stack's default (absent: none). */
  restoreTest?: RestoreTestFile | false | undefined;
}

/** restore_test as written: each key may be missing (a stack's keys replace the global ones). */
export interface RestoreTestFile {
  sample?: number | string | undefined;
  interval?: number | undefined;
  count_tolerance?: number | undefined;
}
