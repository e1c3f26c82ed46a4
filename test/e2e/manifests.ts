/**
 * What a folder of a stack's data holds, entry by entry, read as the stack's containers see it
 * (inside the world user's namespace, where subordinate UIDs are the container's users): compared
 * exactly (type, size, owner, group, mode, mtime at Duplicati's 100 ns, contents, link target).
 */
import { asUser } from './world.js';

/** One line per entry, relative to its folder, sorted: what a person would diff. */
export type Manifest = string[];

/**
 * A manifest line: `PATH TYPE SIZE UID:GID MODE MTIME MD5 TARGET`. A symlink's owner, mode and
 * mtime are left out: Duplicati restores a link with the restoring process's owner and the time it
 * was made (`restore-symlink-metadata` off), so only its target is the version's.
 */
function line(entry: { path: string; type: string; size: string; uid: string; gid: string; mode: string; mtime: string; md5: string; target: string }): string {
  if (entry.type === 'l') return `${entry.path} l -> ${entry.target}`;
  return `${entry.path} ${entry.type} ${entry.type === 'f' ? entry.size : '-'} ${entry.uid}:${entry.gid} ${entry.mode} ${entry.mtime} ${entry.type === 'f' ? entry.md5 : '-'}`;
}

/** mtime as Duplicati keeps it: 100 ns (.NET ticks), written with 7 decimals. */
function ticks(seconds: string): string {
  const [whole, fraction = ''] = seconds.split('.');
  return `${whole}.${fraction.padEnd(9, '0').slice(0, 7)}`;
}

/** The script a hook or a test runs (inside `podman unshare`, the folder as its $1) to print a folder's entries. */
export const manifestScript = `cd "$1" && find . -mindepth 1 -printf '%P\\t%y\\t%s\\t%U\\t%G\\t%m\\t%T@\\t%l\\n' | sort | while IFS="$(printf '\\t')" read -r p t s u g m time l; do if [ "$t" = f ]; then h=$(md5sum < "$p" | cut -d' ' -f1); else h=-; fi; printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$p" "$t" "$s" "$u" "$g" "$m" "$time" "$h" "$l"; done`;

export function parseFolderManifest(output: string): Manifest {
  return output
    .split('\n')
    .filter(Boolean)
    .map((raw) => {
      const [entryPath, type, size, uid, gid, mode, mtime, md5, target] = raw.split('\t');
      return line({ path: entryPath!, type: type!, size: size!, uid: uid!, gid: gid!, mode: mode!, mtime: ticks(mtime!), md5: md5!, target: target ?? '' });
    })
    .sort();
}

/** A folder's manifest now, read as the world's user inside its namespace. */
export async function folderManifest(folder: string): Promise<Manifest> {
  const result = await asUser(['env', '-u', 'CONTAINER_HOST', 'podman', 'unshare', 'sh', '-c', manifestScript, 'sh', folder]);
  if (result.code !== 0) throw new Error(`manifest of ${folder}: ${result.stderr}`);
  return parseFolderManifest(result.stdout);
}
