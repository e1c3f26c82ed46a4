/**
 * Snapshot paths that overlap are refused before anything is touched, across every stack of the
 * root: a target that is, holds or lies inside a source or another target would let one
 * snapshot be taken into the data, or one stack's removal hit what another stack backs up. The
 * comparison is by real path (links resolved, so a target reached through a link into a source
 * is seen there) and, where the folders exist, by device and inode (a bind mount shows one
 * folder under two real paths).
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { within } from '../paths.js';
import type { StackConfig } from './types.js';

/** One path of one stack's snapshot settings, with where it is configured. */
export interface ConfiguredPath {
  /** As messages name it: stacks/app.yaml. */
  file: string;
  /** snapshot.paths[0].target */
  key: string;
  role: 'source' | 'target';
  path: string;
}

interface Resolved extends ConfiguredPath {
  real: string;
  /** device:inode of the folder itself, where it exists. */
  identity: string | undefined;
  /** device:inode of every existing folder from the root down to it (itself included). */
  chain: string[];
}

function identityOf(folder: string): string | undefined {
  try {
    const stats = statSync(folder);
    return `${stats.dev}:${stats.ino}`;
  } catch {
    return undefined;
  }
}

/** The real path of a path that may not exist yet: its longest existing part resolved, the rest appended. */
export function realPathOf(target: string): string {
  const missing: string[] = [];
  let current = path.resolve(target);
  for (;;) {
    try {
      lstatSync(current);
      return path.join(realpathSync(current), ...missing.reverse());
    } catch {
      const parent = path.dirname(current);
      if (parent === current) return path.resolve(target);
      missing.push(path.basename(current));
      current = parent;
    }
  }
}

function resolve(entry: ConfiguredPath): Resolved {
  const real = realPathOf(entry.path);
  const chain: string[] = [];
  for (let current = real; ; current = path.dirname(current)) {
    const identity = identityOf(current);
    if (identity !== undefined) chain.push(identity);
    if (path.dirname(current) === current) break;
  }
  return { ...entry, real, identity: identityOf(real), chain };
}

/** How `a` lies to `b`: the same folder, inside it, containing it, or apart. */
function relation(a: Resolved, b: Resolved): 'same' | 'inside' | 'contains' | undefined {
  if (a.real === b.real || (a.identity !== undefined && a.identity === b.identity)) return 'same';
  if (within(b.real, a.real) || (b.identity !== undefined && a.chain.includes(b.identity))) return 'inside';
  if (within(a.real, b.real) || (a.identity !== undefined && b.chain.includes(a.identity))) return 'contains';
  return undefined;
}

const words = { same: 'is the same folder as', inside: 'lies inside', contains: 'contains' } as const;

/** Every configured snapshot path of these stacks. */
export function snapshotPathsOf(stacks: readonly StackConfig[], shownFile: (stack: StackConfig) => string): ConfiguredPath[] {
  return stacks.flatMap((stack) =>
    (stack.snapshot?.paths ?? []).flatMap((entry, index) => [
      { file: shownFile(stack), key: `snapshot.paths[${index}].source`, role: 'source' as const, path: entry.source },
      { file: shownFile(stack), key: `snapshot.paths[${index}].target`, role: 'target' as const, path: entry.target },
    ]),
  );
}

/**
 * Throws a ConfigError naming both files and keys when a target is, holds or lies inside any
 * source or any other target. Sources may share folders with each other (two stacks may back
 * up one folder); only targets are made and removed.
 */
export function assertNoOverlaps(entries: readonly ConfiguredPath[]): void {
  const resolved = entries.map(resolve);
  for (const target of resolved.filter((entry) => entry.role === 'target')) {
    for (const other of resolved) {
      if (other === target) continue;
      const found = relation(target, other);
      if (found === undefined) continue;
      const shownReal = (entry: Resolved) => (entry.real !== path.resolve(entry.path) ? ` (really ${entry.real})` : '');
      throw new ConfigError(
        target.file,
        target.key,
        `${target.path}${shownReal(target)} ${words[found]} ${other.role} ${other.path}${shownReal(other)} (${other.file} ${other.key}): a snapshot target must be apart from every source and every other target`,
      );
    }
  }
}
