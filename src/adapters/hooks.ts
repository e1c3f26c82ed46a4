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

/** The command line of one hook command; the dry run shows the same. */
export function hookArgv(command: string): string[] {
  return ['/bin/sh', '-c', command];
}

export function createHookRunner(run: CommandRunner): HookRunner {
  return (hook) =>
    run(hookArgv(hook.command), {
      timeoutMs: hook.timeoutMs,
      signal: hook.signal,
      env: hook.environment,
      cwd: hook.cwd,
    });
}
