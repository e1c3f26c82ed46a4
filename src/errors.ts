/**
 * Named error classes. Only src/cli.ts turns them into exit codes (see exitCodeFor there);
 * everything else throws or collects them.
 */

/** Bad command line: unknown stack, rejected name, wrong flags. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A configuration file or environment variable that cannot be used. Names the file and key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    readonly detail: string,
  ) {
    super(key === undefined ? `${file}: ${detail}` : `${file}: ${key}: ${detail}`);
  }
}

/** Another stack-backup run holds the lock of this root. */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
}

/** A lock this run held was lost (removed or taken over): the run ends, restoring the stack under way. */
export class LockLostError extends Error {
  override name = 'LockLostError';
}

/** A bounded wait or command ran out of time. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** The run was asked to stop (SIGTERM, SIGINT, SIGHUP). */
export class AbortedError extends Error {
  override name = 'AbortedError';
  constructor(readonly signalName: string) {
    super(`aborted by ${signalName}`);
  }
}

/** An outside command or service answered with a failure. Carries its output for the log. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    readonly output: string = '',
  ) {
    super(message);
  }
}

/** A hook command failed or ran out of time. In an undo it fails the stack without leaving it down. */
export class HookFailure extends CommandError {
  override name = 'HookFailure';
}

/**
 * A snapshot left in place on purpose: a Duplicati task may still read it. It stays in the
 * journal; `recover` and the next run remove it once Duplicati no longer runs the job.
 */
export class SnapshotKept extends Error {
  override name = 'SnapshotKept';
}

/** Throws an AbortedError when the signal has fired; call between steps and polls. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new AbortedError(String(signal.reason));
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
