/**
 * What restores left beside a stack's data on purpose: the old data a verified restore replaced
 * (restore.keep_old), and a restored copy put aside when the stack was rolled back to its old
 * data. Each is written down with its identity in logs/restores.json, so that `stack-backup
 * restore --prune STACK` removes exactly those folders, and nothing that took their names.
 */
import path from 'node:path';
import type { PathIdentity, RemovalMethod } from '../adapters/made-paths.js';
import { readJsonFile, writeJsonFileDurably } from '../state-files.js';

export interface KeptCopy {
  stack: string;
  run: string;
  /** When the restore ended, ISO 8601 UTC. */
  at: string;
  what: 'old data' | 'restored copy';
  /** The data path it stands beside. */
  live: string;
  path: string;
  identity: PathIdentity;
  method: RemovalMethod;
}

interface KeptFile {
  version: 1;
  copies: KeptCopy[];
}

export function keptCopiesFile(root: string): string {
  return path.join(root, 'logs', 'restores.json');
}

export function readKeptCopies(root: string): KeptCopy[] {
  return readJsonFile<KeptFile>(keptCopiesFile(root), { version: 1, copies: [] }).copies;
}

export function addKeptCopies(root: string, copies: readonly KeptCopy[]): void {
  if (copies.length === 0) return;
  writeJsonFileDurably(keptCopiesFile(root), { version: 1, copies: [...readKeptCopies(root), ...copies] } satisfies KeptFile);
}

/** Takes these copies off the list (removed, or found not to be stack-backup's). */
export function dropKeptCopies(root: string, gone: readonly KeptCopy[]): void {
  const left = readKeptCopies(root).filter((copy) => !gone.some((entry) => entry.path === copy.path && entry.run === copy.run));
  writeJsonFileDurably(keptCopiesFile(root), { version: 1, copies: left } satisfies KeptFile);
}
