/**
 * The one way this program runs another program. Every call is bounded by a timeout, can be
 * aborted by a signal, and kills the whole process group it started, so a hook's children or a
 * stuck `podman exec` never outlive the run.
 */
import { execa } from 'execa';
import { AbortedError, TimeoutError } from '../errors.js';
import { systemClock } from './clock.js';

export interface CommandOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  /** Kill grace: after SIGTERM to the group, SIGKILL follows after this long. */
  killGraceMs?: number;
  /** Written to the command's standard input (for secrets, which must never be in a command line); else it reads nothing. */
  input?: string | undefined;
}

export interface CommandResult {
  argv: readonly string[];
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** Both streams, interleaved as they came, for logs. */
  output: string;
  timedOut: boolean;
  durationMs: number;
}

export type CommandRunner = (argv: readonly string[], options: CommandOptions) => Promise<CommandResult>;

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone: nothing to end.
  }
}

/**
 * Runs argv without a shell. Never rejects for a non-zero exit or a timeout (the result says
 * so); rejects with AbortedError when the signal fired, after the process group is gone.
 */
export const runCommand: CommandRunner = async (argv, options) => {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runCommand: empty argv');
  const started = Date.now();
  const grace = options.killGraceMs ?? 2000;
  const child = execa(file, args, {
    reject: false,
    all: true,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
    // Its own process group, so a timeout or abort ends everything it started.
    detached: true,
    env: options.env,
    extendEnv: true,
    cwd: options.cwd,
    stripFinalNewline: false,
  });
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const terminate = () => {
    killGroup(child.pid, 'SIGTERM');
    // A raw timer, not the clock's: it escalates signals to a real process group, which only
    // real time can let exit. It is the real runner's own; tests fake the runner as a whole.
    killTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), grace);
  };
  // The real runner runs real processes, so its deadline is the real clock's (clamped as every timer is).
  const deadline = systemClock.timeout(options.timeoutMs, () => new TimeoutError(`${argv.join(' ')}: no answer within ${Math.round(options.timeoutMs / 1000)} s`));
  deadline.signal.addEventListener(
    'abort',
    () => {
      timedOut = true;
      terminate();
    },
    { once: true },
  );
  const onAbort = () => terminate();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) terminate();
  try {
    const result = await child;
    const output = typeof result.all === 'string' ? result.all : '';
    if (options.signal?.aborted && !timedOut) {
      const reason = options.signal.reason;
      throw reason instanceof Error ? reason : new AbortedError(String(reason));
    }
    return {
      argv,
      exitCode: result.exitCode,
      stdout: typeof result.stdout === 'string' ? result.stdout : '',
      stderr: typeof result.stderr === 'string' ? result.stderr : '',
      output,
      timedOut,
      durationMs: Date.now() - started,
    };
  } finally {
    deadline.clear();
    if (killTimer) clearTimeout(killTimer);
    // A group member may still hold on after the leader exited; it must not outlive us.
    if (timedOut || options.signal?.aborted) killGroup(child.pid, 'SIGKILL');
    options.signal?.removeEventListener('abort', onAbort);
  }
};

/** Describes a failed result in one line, for errors and logs. */
export function describeFailure(result: CommandResult, timeoutMs: number): string {
  const command = result.argv.join(' ');
  if (result.timedOut) return `${command}: no answer within ${Math.round(timeoutMs / 1000)} s`;
  const lastLine = result.output.trim().split('\n').pop() ?? '';
  return `${command}: exit ${result.exitCode ?? 'signal'}${lastLine ? `: ${lastLine}` : ''}`;
}

export function timeoutError(result: CommandResult, timeoutMs: number): TimeoutError {
  return new TimeoutError(describeFailure(result, timeoutMs));
}
