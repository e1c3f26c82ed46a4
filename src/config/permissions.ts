/**
 * Refuses configuration and hook files that other users can change, as ssh refuses a loose
 * authorized_keys: hooks run as the user, so whoever can write them can run commands as the user.
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';

export interface Identity {
  uid: number;
  gid: number;
}

export function currentIdentity(): Identity {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** Why others can write it, or undefined when only the user (or root) can. */
export function looseness(stats: Stats, identity: Identity): string | undefined {
  const mode = `mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')}`;
  if (stats.uid !== identity.uid && stats.uid !== 0) return `it belongs to user ${stats.uid}, not to you`;
  if (stats.mode & 0o002) return `every user can write it (${mode})`;
  // A group-writable file is fine in the user's own private group (Debian's default), not in another.
  if (stats.mode & 0o020 && stats.gid !== identity.gid) return `group ${stats.gid} can write it (${mode})`;
  return undefined;
}

function check(root: string, target: string, identity: Identity): Stats | undefined {
  let stats: Stats;
  try {
    stats = statSync(target);
  } catch {
    return undefined;
  }
  const reason = looseness(stats, identity);
  if (reason) {
    const shown = path.relative(root, target) || '.';
    const fix = stats.uid !== identity.uid && stats.uid !== 0 ? `chown ${identity.uid} ${target}` : `chmod go-w ${target}`;
    throw new ConfigError(shown, undefined, `refused: ${reason}, and stack-backup runs hooks as you. Fix: ${fix}`);
  }
  return stats;
}

/**
 * Checks the root, stacks/, logs/ (the crash journal holds hook commands) and hooks/ folders,
 * stack-backup.yaml, the journal, the given stack files and every file in hooks/.
 */
export function assertOnlyUserCanWrite(root: string, stackFiles: readonly string[], identity = currentIdentity()): void {
  check(root, root, identity);
  check(root, path.join(root, 'stacks'), identity);
  check(root, path.join(root, 'logs'), identity);
  check(root, path.join(root, 'logs', 'journal.json'), identity);
  check(root, path.join(root, 'stack-backup.yaml'), identity);
  for (const file of stackFiles) check(root, file, identity);
  const walk = (folder: string, depth: number) => {
    const stats = check(root, folder, identity);
    // Deep enough for any hooks layout, bounded against a symlink loop.
    if (!stats?.isDirectory() || depth > 16) return;
    for (const entry of readdirSync(folder)) walk(path.join(folder, entry), depth + 1);
  };
  walk(path.join(root, 'hooks'), 0);
}
