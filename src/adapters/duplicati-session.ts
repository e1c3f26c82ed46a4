/**
 * Exec sessions into the Duplicati container, opened before a stack is stopped, so that the
 * calls made while it is down cost no `podman exec` of their own (each one costs 0.1 to 1 s):
 *
 * - a request session: one `podman exec -i CONTAINER sh` that reads a request per line
 *   (`status`, `poll FORMAT ID`, `list FORMAT`), runs `duplicati-server-util` for it and ends
 *   its answer with a line `@stack-backup:end=EXIT`;
 * - an armed run: one `podman exec -i` per job that waits for the line `run`, then runs
 *   `duplicati-server-util run --wait` (RunBackup.cs): its `Waiting for backup to finish...`
 *   says the job is queued, and its last line, from 2.2.0.3, the job's result (`Backup status:`,
 *   read by Connection.GetBackupStatus from the job's log). The line `end` (or the end of its
 *   input: our process is gone) ends it inside the container.
 *
 * Either may die (the container restarted, podman killed): the caller then runs the command in
 * a fresh `podman exec`, as before sessions, with the same bounds.
 */
import { AbortedError } from '../errors.js';
import { shellLine } from '../shell-quote.js';
import type { Clock } from './clock.js';
import type { CommandResult, InteractiveProcess, InteractiveRunner } from './process.js';

const endLine = /\n@stack-backup:end=(\d+)\n/;
/** How long an ended exec may take to exit before its client is killed. */
const endGraceMs = 5000;

/** How a listing of the jobs is asked for: `--json` (2.2 and later) or `--detailed` lines. */
export type ListFormat = 'json' | 'detailed';

const listWords: Record<ListFormat, string[]> = { json: ['--json', 'list-backups'], detailed: ['list-backups', '--detailed'] };

/** The container's `sh` program of a request session; the dry run shows the same. */
export function sessionScript(serverUtil: string): string {
  const util = shellLine([serverUtil]);
  const list = (format: ListFormat) => `${util} ${listWords[format].join(' ')}`;
  // A poll reads the state and, only once backup B is neither queued nor active (its
  // `BackupId = B` ends no line of the state, ServerStatus.cs), every job's record: the look
  // that shows a job gone brings the record its verdict reads, in the same request.
  const poll = (format: ListFormat) =>
    `(b=\${r##* }; s=$(${util} status 2>&1); e=$?; printf '%s\\n' "$s"; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"; ` +
    `case "$s" in *"BackupId = $b"|*"BackupId = $b"[!0-9A-Za-z_-]*) exit 0 ;; esac; exec ${list(format)})`;
  // One line, so that the dry run can print it as it runs. Standard input from /dev/null: the
  // tool must never read our requests (nor prompt).
  return [
    'while IFS= read -r r; do case "$r" in',
    `status) ${util} status ;;`,
    `"list json") ${list('json')} ;;`,
    `"list detailed") ${list('detailed')} ;;`,
    `"poll json "*) ${poll('json')} ;;`,
    `"poll detailed "*) ${poll('detailed')} ;;`,
    '*) echo "stack-backup: unknown request $r"; false ;;',
    'esac 2>&1 </dev/null; e=$?; echo; echo "@stack-backup:end=$e"; done',
  ].join(' ');
}

export function sessionArgv(settings: { container: string; serverUtil: string }): string[] {
  return ['podman', 'exec', '-i', settings.container, 'sh', '-c', sessionScript(settings.serverUtil)];
}

/** What a request's answer is, when the session gave one: shaped as a one-shot command's result. */
export type SessionAnswer = CommandResult;

/**
 * One request session. Requests go one at a time, in order. A request that gets no answer in
 * time ends the session (and is reported timed out); one whose session died before it answered
 * gets `undefined`, and its caller runs the command in a fresh exec.
 */
export class RequestSession {
  private process: InteractiveProcess | undefined;
  private buffer = '';
  private onChange: (() => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** Sessions opened so far (the first, and one after each death). */
  opened = 0;

  constructor(
    private readonly open: InteractiveRunner,
    private readonly argv: readonly string[],
    private readonly clock: Clock,
  ) {}

  /** Opens the session now (it is opened on first use otherwise): before the stack is stopped. */
  start(): void {
    if (this.process?.running) return;
    this.buffer = '';
    const process = this.open(this.argv);
    this.opened += 1;
    this.process = process;
    process.onOutput((text) => {
      if (this.process !== process) return;
      this.buffer += text;
      this.onChange?.();
    });
    void process.exited.then(() => {
      if (this.process === process) this.onChange?.();
    });
  }

  get alive(): boolean {
    return this.process?.running === true;
  }

  /**
   * Sends one request line and waits for its answer, at most timeoutMs. `oneShot` is the
   * command line the same request would be as a `podman exec` of its own: errors name it.
   */
  request(line: string, oneShot: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<SessionAnswer | undefined> {
    const next = this.chain.then(() => this.exchange(line, oneShot, timeoutMs, signal));
    this.chain = next.catch(() => {});
    return next;
  }

  private async exchange(line: string, oneShot: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<SessionAnswer | undefined> {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError(String(signal.reason));
    this.start();
    const process = this.process!;
    this.buffer = '';
    const started = this.clock.now();
    if (!process.send(line)) return undefined;
    const deadline = this.clock.timeout(timeoutMs, () => new Error('no answer'));
    try {
      for (;;) {
        const match = endLine.exec(this.buffer);
        if (match) {
          // The answer, without the empty line the session puts before its end line.
          const output = this.buffer.slice(0, match.index);
          this.buffer = this.buffer.slice(match.index + match[0].length);
          return { argv: oneShot, exitCode: Number(match[1]), stdout: output, stderr: '', output, timedOut: false, durationMs: this.clock.now() - started };
        }
        if (!process.running) return undefined;
        if (signal?.aborted) {
          this.end();
          throw signal.reason instanceof Error ? signal.reason : new AbortedError(String(signal.reason));
        }
        if (deadline.signal.aborted) {
          // A request that hangs ends the session; the next request opens another.
          const output = this.buffer;
          this.end();
          return { argv: oneShot, exitCode: undefined, stdout: output, stderr: '', output, timedOut: true, durationMs: this.clock.now() - started };
        }
        await this.changed([signal, deadline.signal]);
      }
    } finally {
      deadline.clear();
    }
  }

  /** Resolves on new output, the end of the process, or one of the signals. */
  private changed(signals: ReadonlyArray<AbortSignal | undefined>): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.onChange = undefined;
        for (const signal of signals) signal?.removeEventListener('abort', done);
        resolve();
      };
      this.onChange = done;
      for (const signal of signals) signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Ends the session: its input closed (the shell in the container ends), its process group killed. */
  end(): void {
    const process = this.process;
    this.process = undefined;
    if (!process) return;
    process.closeInput();
    process.kill();
  }

  /** Closes the session politely: its input ends and it exits; killed if it has not after a moment. */
  async close(graceMs = 2000): Promise<void> {
    const process = this.process;
    this.process = undefined;
    if (!process?.running) return;
    process.closeInput();
    const deadline = this.clock.timeout(graceMs, () => new Error('not closed'));
    try {
      await Promise.race([process.exited, new Promise((resolve) => deadline.signal.addEventListener('abort', resolve, { once: true }))]);
    } finally {
      deadline.clear();
    }
    if (process.running) process.kill();
  }
}

/** The first line of an armed run: its shell runs in the container, waiting for `run`. */
const armedLine = '@stack-backup:armed';

/** `run --wait` polls the server this often (`--poll-interval`: whole seconds, at least 1, RunBackup.cs). */
export const runWaitPollSeconds = 1;

/**
 * The container's `sh` program of an armed run: nothing happens until the line `run`; then
 * `run --wait` runs in the background, and the line `end`, or the end of the input, kills it
 * (inside the container: killing the `podman exec` client would not). The outer `timeout`
 * bounds it even if nothing ever tells it to end. Its exit code ends the output:
 * `@stack-backup:exit=N`.
 */
export function armedRunScript(serverUtil: string, job: string, boundSeconds: number): string {
  const command = shellLine(['timeout', '-s', 'KILL', String(boundSeconds), serverUtil, 'run', '--wait', '--poll-interval', String(runWaitPollSeconds), '--', job]);
  // One line, as the dry run prints it. TERM first: GNU timeout passes it on to the tool
  // (busybox's timeout is the tool itself); KILL if it is still there.
  return [
    // Says it is up: it was started before the stop, and nothing waits for it later.
    `echo ${armedLine};`,
    'IFS= read -r go || exit 0; [ "$go" = run ] || exit 0; exec 3<&0;',
    `${command} </dev/null 2>&1 & p=$!;`,
    '{ while IFS= read -r c; do [ "$c" = end ] && break; done; kill -TERM "$p" 2>/dev/null; sleep 2; kill -KILL "$p" 2>/dev/null; } <&3 >/dev/null 2>&1 & w=$!;',
    'wait "$p"; e=$?; kill "$w" 2>/dev/null; echo; echo "@stack-backup:exit=$e"',
  ].join(' ');
}

export function armedRunArgv(settings: { container: string; serverUtil: string }, job: string, boundSeconds: number): string[] {
  return ['podman', 'exec', '-i', settings.container, 'sh', '-c', armedRunScript(settings.serverUtil, job, boundSeconds)];
}

/** What a line of `run --wait` says, as far as the driver cares. */
export const runWaitLines = {
  queued: /^Waiting for backup to finish\.\.\.$/m,
  /** From 2.2.0.3 (RunBackup.cs, Connection.GetBackupStatus): the ParsedResult of the job's newest log row. */
  status: /^Backup status: (.*)$/m,
  /** Before 2.2.0.3: the job ended, its result not said. */
  finished: /^Backup finished$/m,
  /** The job had ended before run --wait first looked: it re-connects and looks again, for ever (RunBackup.cs WaitForBackupWithRetries). */
  lost: /Re-authenticating\.\.\.$/m,
  exit: /\n@stack-backup:exit=(\d+)\n/,
} as const;

/**
 * One job's armed run: opened (a `podman exec` that waits) before the stack is stopped; `fire`
 * starts `run --wait` at once, with no new exec.
 */
export class ArmedRun {
  private readonly process: InteractiveProcess;
  private text = '';
  private readonly listeners = new Set<() => void>();
  fired = false;
  private up = false;

  constructor(
    open: InteractiveRunner,
    readonly argv: readonly string[],
    private readonly clock: Clock,
  ) {
    this.process = open(argv);
    this.process.onOutput((chunk) => {
      // run --wait prints a line per poll while the job runs: those are not kept.
      this.text += chunk.replace(/^\[[^\]\n]*\]: Backup is (running|queued) \.\.\.\n/gm, '');
      if (!this.up && this.text.includes(`${armedLine}\n`)) {
        this.up = true;
        this.text = this.text.replace(`${armedLine}\n`, '');
      }
      for (const listener of [...this.listeners]) listener();
    });
    void this.process.exited.then(() => {
      for (const listener of [...this.listeners]) listener();
    });
  }

  /**
   * Resolves once its shell runs in the container (true), or it ended first or took longer
   * than timeoutMs (false): a `podman exec` takes a moment to start, which must not fall on
   * the downtime path.
   */
  async started(timeoutMs: number): Promise<boolean> {
    await this.until(() => this.up, timeoutMs);
    return this.up;
  }

  /** Everything it printed so far (poll lines left out). */
  get output(): string {
    return this.text;
  }

  get alive(): boolean {
    return this.process.running;
  }

  /** Settles once the exec has ended. */
  get exited(): Promise<number | undefined> {
    return this.process.exited;
  }

  /** Starts `run --wait`; false when the exec is gone (the caller runs the job another way). */
  fire(): boolean {
    if (this.fired) return false;
    this.fired = this.process.send('run');
    return this.fired;
  }

  /** The exit code of the tool, once the exec printed it. */
  get exitCode(): number | undefined {
    const match = runWaitLines.exit.exec(this.text);
    return match ? Number(match[1]) : undefined;
  }

  /**
   * Waits until `done(output)` holds, the exec has ended, the time is up or the signal fires:
   * 'seen', 'exited' or 'timeout' (the signal throws its reason).
   */
  async until(done: (output: string) => boolean, timeoutMs: number, signal?: AbortSignal): Promise<'seen' | 'exited' | 'timeout'> {
    const deadline = this.clock.timeout(timeoutMs, () => new Error('no line'));
    try {
      for (;;) {
        if (done(this.text)) return 'seen';
        if (!this.process.running || this.exitCode !== undefined) return 'exited';
        if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError(String(signal.reason));
        if (deadline.signal.aborted) return 'timeout';
        await new Promise<void>((resolve) => {
          const wake = () => {
            this.listeners.delete(wake);
            signal?.removeEventListener('abort', wake);
            deadline.signal.removeEventListener('abort', wake);
            resolve();
          };
          this.listeners.add(wake);
          signal?.addEventListener('abort', wake, { once: true });
          deadline.signal.addEventListener('abort', wake, { once: true });
        });
      }
    } finally {
      deadline.clear();
    }
  }

  /**
   * Ends it: `run --wait` is killed inside the container (which leaves Duplicati's task alone:
   * it only waits for it), and the exec ends. Unfired, it ends without running anything.
   */
  end(): void {
    if (!this.process.running) return;
    this.process.send('end');
    this.process.closeInput();
    // The exec client itself, a moment later, if it has not gone by then.
    const deadline = this.clock.timeout(endGraceMs, () => new Error('not ended'));
    deadline.signal.addEventListener('abort', () => this.process.kill(), { once: true });
    void this.process.exited.then(() => deadline.clear());
  }
}
