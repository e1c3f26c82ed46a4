/** What a restore's steps share beyond a backup's: the versions chosen, the data paths, what was made and swapped. */
import type { PathIdentity } from '../adapters/made-paths.js';
import type { StackRun } from '../steps/context.js';
import type { RecordedUndo } from '../journal/undo.js';
import type { ChosenVersion } from './choose.js';
import type { DataPath } from './data-paths.js';

/** One data path as the preflight found it, and what the restore expects of it. */
export interface PlannedPath extends DataPath {
  /** What is at the live path now; undefined when nothing is (the data is gone: nothing to swap out). */
  liveIdentity: PathIdentity | undefined;
  /** The version's regular files and symlinks below the source: what the restore must write (RestoredFiles). */
  expectedFiles: number;
  expectedBytes: number;
  /** A few of those, relative to the source: where they must land in the staging folder. */
  probes: string[];
  /** The job's version restored here. */
  version: ChosenVersion;
}

export interface RestoreState {
  choices: ChosenVersion[];
  /** From the preflight on. */
  paths: PlannedPath[];
  /** Staging folders made, by live path: what was made and the undo that removes it. */
  staged: Map<string, { identity: PathIdentity; removal: RecordedUndo }>;
  /** Per live path, what Duplicati restored. */
  restored: Array<{ live: string; job: string; files: number; bytes: number | undefined }>;
  /** Live paths swapped: the restored copy is in place, the old data beside it. */
  swapped: string[];
  /** Remove the old data once the restored stack passed its verify hooks (restore.keep_old false). */
  keepOld: boolean;
  /** Whether the stack was started on the restored data, and whether it was rolled back to the old. */
  started?: boolean;
  rolledBack?: boolean;
  /** Every path was swapped, and the staging folders' removal taken off: restored copies are kept from here on. */
  stagingCommitted?: boolean;
}

export interface RestoreRun extends StackRun {
  restore: RestoreState;
}
