/** Hook commands: each one a `/bin/sh -c` in its own process group, in the root folder. */
import type { CommandResult, CommandRunner } from './process.js';

export interface HookRun {
  command: string;
  environment: Record<string, string>;
  cwd: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export type HookRunner = (hook: HookRun) => Promise<CommandResult>;

export function createHookRunner(run: CommandRunner): HookRunner {
  return (hook) =>
    run(['/bin/sh', '-c', hook.command], {
      timeoutMs: hook.timeoutMs,
      signal: hook.signal,
      env: hook.environment,
      cwd: hook.cwd,
    });
}
