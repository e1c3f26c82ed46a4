/**
 * A restore test's verdict, pure: which files to test, where Duplicati lands each of them, and
 * whether each restored file is exactly its frozen source (contents, size, mode, owner, group,
 * mtime, symlink target), said file by file as a person reads it.
 */
import { formatBytes } from '../format.js';
import { randomInt } from 'node:crypto';
import type { FileFacts } from '../adapters/source-files.js';
import type { SampleSize } from '../config/types.js';

/** How many of `total` files the size asks for (at least one where there is one). */
export function sampleCount(size: SampleSize, total: number): number {
  if (size === 'all') return total;
  if ('count' in size) return Math.min(size.count, total);
  return Math.min(total, Math.max(1, Math.ceil((total * size.percent) / 100)));
}

/**
 * Picks `count` of the paths, each as likely as any other, with a cryptographic random
 * generator (a partial Fisher-Yates shuffle), so nobody can tell beforehand which files a night's
 * test reads. The result is sorted, as a person reads a list.
 */
export function pickSample(paths: readonly string[], count: number, random: (below: number) => number = randomInt): string[] {
  const pool = [...paths];
  const picked: string[] = [];
  for (let index = 0; index < Math.min(count, pool.length); index += 1) {
    const chosen = index + random(pool.length - index);
    [pool[index], pool[chosen]] = [pool[chosen]!, pool[index]!];
    picked.push(pool[index]!);
  }
  return picked.sort();
}

/**
 * Where Duplicati puts each selected file below its restore path: the longest common folder of
 * the selected entries is replaced by the restore path (LocalRestoreDatabase.GetLargestPrefixAsync),
 * so a sample lands relative to *its* common folder, which changes with the sample.
 */
export function landingOf(paths: readonly string[]): { prefix: string; relative: (path: string) => string } {
  const folders = paths.map((entry) => entry.split('/').slice(0, -1));
  let common = folders[0] ?? [];
  for (const folder of folders.slice(1)) {
    let length = 0;
    while (length < common.length && length < folder.length && common[length] === folder[length]) length += 1;
    common = common.slice(0, length);
  }
  const prefix = common.length === 0 ? '' : `${common.join('/')}/`;
  return { prefix, relative: (entry) => entry.slice(prefix.length) };
}

/** mtime as Duplicati keeps and restores it: 100 ns (.NET ticks), so compared at that precision. */
export function ticks(mtime: string): string {
  const [whole, fraction = ''] = mtime.split('.');
  return `${whole}.${fraction.padEnd(9, '0').slice(0, 7)}`;
}

/** What differs between a frozen source file and its restored copy, in words; empty when identical. */
export function differences(source: FileFacts, restored: FileFacts | undefined): string[] {
  if (!restored) return ['not restored'];
  if (source.type !== restored.type) return [`a ${restored.type}, not a ${source.type}`];
  if (source.type === 'symlink') {
    // Duplicati restores a link's target only: its owner and time are the restoring process's.
    return source.target === restored.target ? [] : [`points to ${restored.target}, not ${source.target}`];
  }
  const found: string[] = [];
  if (source.size !== restored.size) found.push(`size ${restored.size}, not ${source.size}`);
  else if (source.hash !== restored.hash) found.push('contents differ');
  if (source.mode !== restored.mode) found.push(`mode ${restored.mode}, not ${source.mode}`);
  if (source.uid !== restored.uid || source.gid !== restored.gid) found.push(`owner ${restored.uid}:${restored.gid}, not ${source.uid}:${source.gid}`);
  if (ticks(source.mtime) !== ticks(restored.mtime)) found.push(`mtime ${ticks(restored.mtime)}, not ${ticks(source.mtime)}`);
  return found;
}

export interface Comparison {
  tested: number;
  identical: number;
  bytes: number;
  /** Each differing file and what differs, at most `shown` of them. */
  mismatches: Array<{ path: string; differences: string[] }>;
  /** How many differ in all (mismatches may name fewer). */
  mismatchCount: number;
}

/** Compares each sampled source file with the file restored for it (by the source's relative path). */
export function compare(sources: readonly FileFacts[], restored: ReadonlyMap<string, FileFacts>, shown = 20): Comparison {
  const mismatches: Comparison['mismatches'] = [];
  let identical = 0;
  let bytes = 0;
  let mismatchCount = 0;
  for (const source of sources) {
    const found = differences(source, restored.get(source.path));
    if (found.length === 0) {
      identical += 1;
      bytes += source.type === 'file' ? source.size : 0;
    } else {
      mismatchCount += 1;
      if (mismatches.length < shown) mismatches.push({ path: source.path, differences: found });
    }
  }
  return { tested: sources.length, identical, bytes, mismatches, mismatchCount };
}


/** `restore test: 20 of 20 files identical (1.2 MB) in 3.4 s`, then each differing file. */
export function describeComparison(comparison: Comparison, ms: number): string[] {
  const head = `restore test: ${comparison.identical} of ${comparison.tested} files identical (${formatBytes(comparison.bytes)}) in ${(ms / 1000).toFixed(1)} s`;
  const more = comparison.mismatchCount - comparison.mismatches.length;
  return [
    head,
    ...comparison.mismatches.map((mismatch) => `  ${mismatch.path}: ${mismatch.differences.join(', ')}`),
    ...(more > 0 ? [`  and ${more} more`] : []),
  ];
}
