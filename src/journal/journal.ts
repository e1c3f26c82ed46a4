/**
 * The crash journal: every undo, written down (durably) before the change it reverses, and
 * crossed out once done. What is left after a run died (SIGKILL, power cut, OOM) is what
 * `stack-backup recover`, and the next run before anything else, puts back.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { readJsonFile, writeJsonFileDurably } from '../state-files.js';
import type { HookPhase } from '../config/schema.js';
import type { PathIdentity, RemovalMethod } from '../adapters/made-paths.js';
import type { MadeSnapshot } from '../adapters/snapshots.js';
import type { SnapshotDriverName } from '../config/types.js';

/** Hook commands with all they need to run again without the stack file. */
export interface HookCommands {
  phase: HookPhase;
  commands: string[];
  environment: Record<string, string>;
  cwd: string;
  timeoutMs: number;
}

/** Start the stack's unit again (when `start`), after the pre_start hooks. */
export interface RestoreUnitUndo {
  kind: 'restore-unit';
  unit: string;
  /** ActiveState before the stop, for the log. */
  stateBefore: string;
  start: boolean;
  startTimeoutMs: number;
  preStart: HookCommands;
  /**
   * Units that stop with the stack's unit and were up before the stop (a Quadlet pod's members, a
   * target's parts): started in the same systemctl call, which then waits for each of them too.
   * Absent in journals of earlier versions.
   */
  members?: string[];
}

/** Start the on-demand socket and service that were active before the freeze. */
export interface UnfreezeUndo {
  kind: 'unfreeze';
  socket: string | undefined;
  service: string | undefined;
}

/** Run hooks that undo an earlier hook (post_start undoes pre_stop). */
export interface HooksUndo {
  kind: 'hooks';
  hooks: HookCommands;
}

/**
 * Remove a snapshot that this run made. While a Duplicati task may still read it (the run ended
 * mid-job), it is kept: `recover` and the next run remove it once Duplicati no longer runs
 * the stack's jobs.
 */
export interface RemoveSnapshotUndo {
  kind: 'remove-snapshot';
  driver: SnapshotDriverName;
  source: string;
  target: string;
  /** The stack's Duplicati jobs: the ones that may read the snapshot. */
  jobs: string[];
  /**
   * What was made, recorded as soon as it was known: only a folder that is still exactly that is
   * removed. Absent while the snapshot is being made, and in entries of earlier versions.
   */
  made?: MadeSnapshot | undefined;
}

/**
 * Remove a folder this run made (a restore's staging folder), only while it is still what was
 * made. Like a snapshot, it is kept while a Duplicati task of `jobs` may still write into it.
 */
export interface RemoveMadeUndo {
  kind: 'remove-made';
  /** What it is, for the log: "restore staging folder". */
  what: string;
  path: string;
  method: RemovalMethod;
  /** What was made; absent until known (then nothing that exists is removed). */
  made?: PathIdentity | undefined;
  /** Jobs whose Duplicati task may write into it. */
  jobs: string[];
}

/**
 * Rename a folder back to where it was: `from` is where a rename put it, `to` where it was, `made`
 * what it is (read before the rename). A restore's swap is two of these per data path, each
 * journaled before its rename, so a run that dies between them leaves each path wholly old once
 * they are replayed.
 */
export interface RenameBackUndo {
  kind: 'rename-back';
  /** What it is, for the log: "live data of /srv/app", "restored copy of /srv/app". */
  what: string;
  from: string;
  to: string;
  made: PathIdentity;
}

/** Resume the Duplicati server this run paused (exec driver: a restore reads the job's database outside the server). */
export interface ResumeDuplicatiUndo {
  kind: 'resume-duplicati';
  container: string;
  serverUtil: string;
}

export type UndoRecord = RestoreUnitUndo | UnfreezeUndo | HooksUndo | RemoveSnapshotUndo | RemoveMadeUndo | RenameBackUndo | ResumeDuplicatiUndo;

export interface JournalEntry {
  id: string;
  stack: string;
  run: string;
  pid: number;
  recordedAt: string;
  undo: UndoRecord;
}

export interface Journal {
  /** Writes the entry down durably and returns its id. */
  add(stack: string, undo: UndoRecord): string;
  /** Replaces an entry's undo, durably (what a change made, once it is known). */
  update(id: string, undo: UndoRecord): void;
  remove(id: string): void;
  pending(): JournalEntry[];
}

export function journalFile(root: string): string {
  return path.join(root, 'logs', 'journal.json');
}

interface JournalFile {
  version: 1;
  entries: JournalEntry[];
}

export function createJournal(root: string, run: string): Journal {
  const file = journalFile(root);
  const load = () => readJsonFile<JournalFile>(file, { version: 1, entries: [] });
  return {
    add(stack, undo) {
      const contents = load();
      const id = randomUUID();
      contents.entries.push({ id, stack, run, pid: process.pid, recordedAt: new Date().toISOString(), undo });
      writeJsonFileDurably(file, contents);
      return id;
    },
    update(id, undo) {
      const contents = load();
      const entry = contents.entries.find((candidate) => candidate.id === id);
      if (!entry) throw new Error(`the crash journal has no entry ${id} to update`);
      entry.undo = undo;
      writeJsonFileDurably(file, contents);
    },
    remove(id) {
      const contents = load();
      contents.entries = contents.entries.filter((entry) => entry.id !== id);
      writeJsonFileDurably(file, contents);
    },
    pending() {
      return load().entries;
    },
  };
}
