/**
 * What every sequence is made of: the step type (name, exact commands, the undo it registers,
 * declared once as values), the walker that runs a list, the printer that shows it for
 * `--dry-run`, and the steps a backup and a restore share (idle, hooks, freeze, stop, wait).
 * Each run's own list lives with it: src/backup/sequence.ts, src/restore/sequence.ts.
 */
import { armedBoundSeconds, jsonListArgs } from '../adapters/duplicati.js';
import { armedRunArgv, sessionArgv } from '../adapters/duplicati-session.js';
import { describePlannedList } from './stack-containers.js';
import { systemctlArgv } from '../adapters/systemd.js';
import { errorMessage } from '../errors.js';
import type { HookPhase } from '../config/schema.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import type { UndoRecord } from '../journal/journal.js';
import { formatSeconds } from '../format.js';
import { shellLine } from '../shell-quote.js';
import { firstPollDelayMs, waitForDuplicatiIdle } from './backup.js';
import type { StackRun } from './context.js';
import { freezeOnDemand } from './freeze.js';
import { hookCommandsOf, preStopHooks, runHookPhase } from './hooks.js';
import { stopUnit } from './stop-unit.js';
import { describeHooks, describeUndo, undoName } from '../journal/undo-records.js';
import { waitForContainers } from './wait-containers.js';

export interface PlannedUndo {
  name: string;
  /** What it will do; conditions known only at run time are said in words. */
  actions: string[];
}

/**
 * One step of a run of type R (a backup's or a restore's StackRun, a prune's list): its name,
 * what it does and its undo are declared once, as values the plan prints and the walker runs.
 */
export interface Step<R = StackRun> {
  /** As the dry run and the run's result name it. */
  name: string;
  /** What it will do, in order: shell-quoted command lines, API calls, waits. */
  actions: string[];
  /** The undo it registers before it changes anything; none when it changes nothing. */
  undo?: PlannedUndo;
  run(run: R): Promise<void>;
}

/**
 * The one walker of every list: a backup's (stop and snapshot mode), a restore's and its way
 * back, `restore --to` and `--prune`. Walks the steps forward until one fails: which were
 * started (the names the result carries) and the failure, if any. The undos are the caller's:
 * a backup's and a restore's differ.
 */
export async function runSequence<R>(steps: readonly Step<R>[], run: R): Promise<{ failure: Error | undefined; startedSteps: string[] }> {
  const startedSteps: string[] = [];
  for (const step of steps) {
    startedSteps.push(step.name);
    try {
      await step.run(run);
    } catch (error) {
      return { failure: error instanceof Error ? error : new Error(errorMessage(error)), startedSteps };
    }
  }
  return { failure: undefined, startedSteps };
}

/** The dry run's lines of a list of steps: each numbered, the undo it registers first named, its actions below. */
export function describeSteps<R>(steps: readonly Step<R>[]): string[] {
  return steps.flatMap((step, index) => [`  ${index + 1}. ${step.name}${step.undo ? ` (first registers its undo: ${step.undo.name})` : ''}`, ...step.actions.map((action) => `       ${action}`)]);
}

/** The same steps for every mode; a mode is the list `stackSteps` makes of them. */
export interface Context {
  stack: StackConfig;
  global: GlobalConfig;
}

export function planUndo(record: UndoRecord, startCondition?: string): PlannedUndo {
  return { name: undoName(record), actions: describeUndo(record, startCondition) };
}

/** The exec driver's request session, as its `podman exec` runs it (duplicati-session.ts). */
export function sessionWords(global: GlobalConfig): string {
  return `the exec session ${shellLine(sessionArgv(global.duplicati))} (opened at the first call, kept for the run; one request per line; were it to end, each call is a podman exec of its own)`;
}

/**
 * How a Duplicati status is read: through the session (exec, following a job: `poll ID`, with
 * every record once it is gone) or the API call, by driver; `continuous` while the stack is down.
 */
export function statusCall(global: GlobalConfig, options: { jobsOnceGone?: string; continuous?: boolean } = {}): string {
  const settings = global.duplicati;
  if (settings.driver === 'exec') {
    const request = options.jobsOnceGone !== undefined ? `poll json ${options.jobsOnceGone} (${shellLine([settings.serverUtil, 'status'])}, then, once backup ${options.jobsOnceGone} is neither queued nor active, ${shellLine([settings.serverUtil, ...jsonListArgs])})` : shellLine([settings.serverUtil, 'status']);
    const pace = options.continuous
      ? 'one call after the other while the stack is down'
      : `every ${formatSeconds(firstPollDelayMs)}, slowing to every ${formatSeconds(settings.pollIntervalMs)} (poll_interval)`;
    return `${request} in the exec session, ${pace}`;
  }
  return `GET ${settings.url}/api/v1/serverstate (then long-polls ?longpoll=true&lastEventId=N; its answer is the new state)`;
}

export function idleWait(global: GlobalConfig, what: string, options: { jobsOnceGone?: string; continuous?: boolean } = {}): string {
  const settings = global.duplicati;
  return `${statusCall(global, options)}, until ${what} (wait_timeout ${formatSeconds(settings.waitTimeoutMs)}, paused_timeout ${formatSeconds(settings.pausedTimeoutMs)})`;
}

/** The exec driver's armed run of a job, as its `podman exec` runs it. */
export function armedRunWords(global: GlobalConfig, job: string): string {
  const settings = global.duplicati;
  return shellLine(armedRunArgv(settings, job, armedBoundSeconds(settings)));
}

/**
 * `backup`: the backup sequences' idle step, which also readies the first job's run (exec: its
 * podman exec) before the stop; a restore's does not.
 */
export function idleStep({ stack, global }: Context, options: { backup?: boolean } = {}): Step {
  const first = stack.jobs[0]!;
  const readies = options.backup === true && global.duplicati.driver === 'exec';
  return {
    name: 'wait for Duplicati to be idle',
    actions: [
      ...(readies ? [`open ${sessionWords(global)}`] : []),
      idleWait(global, 'nothing runs, nothing is queued, and the server is not paused'),
      ...(readies ? [`open the podman exec that will run job ${first} (it runs nothing until told), and wait until it is up: ${armedRunWords(global, first)}`] : []),
    ],
    run: options.backup ? (run) => waitForDuplicatiIdle(run, { readyFirstJob: true }) : (run) => waitForDuplicatiIdle(run),
  };
}

export function preStopStep(context: Context): Step | undefined {
  const { stack } = context;
  if (stack.hooks.pre_stop.length === 0 && stack.hooks.post_start.length === 0) return undefined;
  return {
    name: 'pre_stop hooks',
    actions: describeHooks({ phase: 'pre_stop', commands: stack.hooks.pre_stop }),
    undo: planUndo({ kind: 'hooks', hooks: hookCommandsOf(stack, context.global, 'post_start') }),
    run: preStopHooks,
  };
}

export function freezeStep({ stack }: Context): Step | undefined {
  const freeze = stack.freeze;
  if (!freeze) return undefined;
  const units = [freeze.socket, ...(freeze.service ? [freeze.service] : [])];
  return {
    name: 'freeze on-demand socket',
    actions: [
      `record whether ${units.join(' and ')} ${units.length === 1 ? 'is' : 'are'} active (systemctl --user show)`,
      ...units.map((unit) => shellLine(systemctlArgv('stop', unit))),
    ],
    undo: planUndo({ kind: 'unfreeze', socket: freeze.socket, service: freeze.service }, 'if it was active before'),
    run: freezeOnDemand,
  };
}

/** `watchDuplicati`: stop mode's backup, which looks at Duplicati while the stack stops (stop-watch.ts). */
export function stopStep({ stack, global }: Context, options: { watchDuplicati?: boolean } = {}): Step {
  const watch = options.watchDuplicati === true;
  const restore: UndoRecord = {
    kind: 'restore-unit',
    unit: stack.unit,
    stateBefore: 'unknown',
    start: true,
    startTimeoutMs: stack.startTimeoutMs,
    preStart: hookCommandsOf(stack, global, 'pre_start'),
  };
  return {
    name: 'stop unit',
    actions: [
      `record whether ${stack.unit} is active (systemctl --user show)`,
      `${shellLine(systemctlArgv('stop', stack.unit))} (stop_timeout ${formatSeconds(stack.stopTimeoutMs)})`,
      ...(watch
        ? [
            `meanwhile, from the stop on: ${statusCall(global, { continuous: true })}; once a look begun after the stop shows Duplicati idle, job ${stack.jobs[0]!}'s ID and record (${recordRead(global)})`,
          ]
        : []),
    ],
    undo: planUndo(restore, stack.restorePolicy === 'always' ? 'always (restore_policy always)' : 'if it was active before (restore_policy previous)'),
    run: (run) => stopUnit(run, { watchDuplicati: watch }),
  };
}

/** Snapshot mode: only the containers are waited for; Duplicati is checked once the stack is back. */
export function containersDownStep({ stack }: Context): Step {
  return {
    name: 'wait for the stack to be down',
    actions: [`Podman API: ${describePlannedList(stack)}, again on each container event, until none runs (stop_timeout ${formatSeconds(stack.stopTimeoutMs)})`],
    run: waitForContainers,
  };
}

export function hookStep({ stack }: Context, phase: HookPhase): Step | undefined {
  const commands = stack.hooks[phase];
  if (commands.length === 0) return undefined;
  return { name: `${phase} hooks`, actions: describeHooks({ phase, commands }), run: (run) => runHookPhase(run, phase) };
}

/** How the exec or api driver reads a job's ID and record. */
export function recordRead(global: GlobalConfig): string {
  const settings = global.duplicati;
  return settings.driver === 'exec' ? `${shellLine([settings.serverUtil, ...jsonListArgs])} in the exec session` : `GET ${settings.url}/api/v1/backups`;
}
