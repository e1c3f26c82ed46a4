/** What a run is given of the outside world, one adapter each; tests pass in-memory fakes. */
import type { Clock } from './clock.js';
import type { Duplicati } from './duplicati.js';
import type { HookRunner } from './hooks.js';
import type { MadePaths } from './made-paths.js';
import type { ContainerEngine } from './podman.js';
import type { Snapshots } from './snapshots.js';
import type { SourceFiles } from './source-files.js';
import type { Systemd } from './systemd.js';

/** The adapters to the outside world; tests pass in-memory fakes. */
export interface Adapters {
  systemd: Systemd;
  engine: ContainerEngine;
  duplicati: Duplicati;
  runHook: HookRunner;
  clock: Clock;
  /** Reads a folder (which triggers an automount) and throws when it cannot be read in time. */
  checkFolder(folder: string, timeoutMs: number): Promise<void>;
  /** Snapshot mode's drivers. */
  snapshots: Snapshots;
  /** Folders stack-backup makes, renames and removes, known by their identity (a restore's staging and swap). */
  madePaths: MadePaths;
  /** A frozen source's files, read for a restore test. */
  sourceFiles: SourceFiles;
  /**
   * Takes the unit's lock for this root, so that no other root's run stops or starts it
   * meanwhile; another run holding it: LockHeldError naming that run's root.
   */
  lockUnit(unit: string, onLost: (error: Error) => void): Promise<() => Promise<void>>;
}
