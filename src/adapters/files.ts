/** File system checks that can hang (an automount that does not answer), bounded in time. */
import { readdir } from 'node:fs/promises';
import { TimeoutError } from '../errors.js';

export async function checkFolder(folder: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  });
  try {
    // Reading the folder, not just stat-ing it, is what makes an automounter mount it.
    await Promise.race([readdir(folder), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
