/**
 * Checks made before a stack is touched: the Podman API answers, the Duplicati container runs,
 * Duplicati has the stack's jobs, the stack's units exist and its containers are found, and
 * backup_mount can be read. A failure fails the stack, nothing changed: a run that cannot work
 * must not cost the stack a stop.
 */
import { checkVersion, findJob } from '../adapters/duplicati.js';
import { didYouMean } from '../config/names.js';
import { AbortedError, CommandError, errorMessage } from '../errors.js';
import { describeSelection } from '../adapters/podman-list.js';
import { isUp } from '../adapters/systemd.js';
import type { StackRun } from './context.js';
import { stackContainers } from './stack-containers.js';

export const mountTimeoutMs = 30_000;

export class PreflightError extends CommandError {
  override name = 'PreflightError';
}

/** One check of the preflight, logged as its own step; a problem fails the stack, nothing touched. */
export async function checkStep(run: StackRun, what: string, fields: Record<string, unknown>, test: () => Promise<string | undefined>): Promise<void> {
  const step = run.log.step(what, fields);
  let problem: string | undefined;
  try {
    problem = await test();
  } catch (error) {
    if (error instanceof AbortedError) {
      step.failed(error);
      throw error;
    }
    problem = errorMessage(error);
  }
  if (problem !== undefined) {
    const failure = new PreflightError(`preflight: ${problem}; nothing was touched`);
    step.failed(failure);
    throw failure;
  }
  step.done();
}

export async function preflight(run: StackRun): Promise<void> {
  const { engine, systemd, checkFolder } = run.adapters;
  const { container } = run.global.duplicati;
  await checkStep(run, 'check the Podman API and the Duplicati container', { container }, async () => {
    try {
      await engine.ping(run.signal);
    } catch (error) {
      return `the Podman API does not answer (${errorMessage(error)}); is podman.socket running? (systemctl --user start podman.socket)`;
    }
    const state = await engine.containerState(container, run.signal);
    return state === 'running' ? undefined : `the Duplicati container "${container}" is not running (${state})`;
  });
  if (run.global.duplicati.driver === 'api') {
    // The REST API answers at once: its version is read here (the exec driver's costs a
    // `podman exec`, so `doctor` reads it). 2.1.0.x names the task stop calls differently.
    await checkStep(run, "check Duplicati's version", { driver: 'api' }, async () => checkVersion(await run.adapters.duplicati.version(run.signal), 'api'));
  }
  // One list of Duplicati's jobs (one `podman exec` or API call): a job the stack names that
  // Duplicati does not have would otherwise fail only once the stack is down.
  await checkStep(run, "check the stack's Duplicati jobs", { jobs: run.stack.jobs }, async () => {
    const jobs = await run.adapters.duplicati.listJobs(run.signal);
    const missing = run.stack.jobs.filter((job) => findJob(jobs, job) === undefined);
    if (missing.length === 0) return undefined;
    const names = jobs.map((job) => job.name);
    return `${missing.map((job) => `Duplicati has no backup job with the name or ID "${job}"${didYouMean(job, names)}`).join('; ')} (stacks/${run.stack.name}: duplicati_jobs; Duplicati has: ${names.join(', ') || 'none'})`;
  });
  const units = [run.stack.unit, run.stack.freeze?.socket, run.stack.freeze?.service].filter((unit): unit is string => unit !== undefined);
  await checkStep(run, 'check the units exist', { units }, async () => {
    for (const unit of units) {
      const state = await systemd.state(unit, run.signal);
      if (state.load !== 'loaded') return `unit ${unit} is ${state.load} (LoadState), so it cannot be stopped and started again`;
    }
    return undefined;
  });
  await checkStep(run, "check the stack's containers", { unit: run.stack.unit }, () => selectorMatches(run));
  const { backupMount } = run.global;
  if (backupMount !== undefined) {
    await checkStep(run, 'check backup_mount', { folder: backupMount }, async () => {
      try {
        await checkFolder(backupMount, mountTimeoutMs);
        return undefined;
      } catch (error) {
        return `backup_mount ${backupMount} is not reachable: ${errorMessage(error)}`;
      }
    });
  }
}

/**
 * A selector that matches nothing while the unit runs would end the container wait at once, and
 * the job would read data the stack may still write (a typo in a label, a Quadlet stack whose
 * containers carry another unit's name): refused before anything is touched. A unit that is
 * down (an on-demand stack asleep) has no containers to find.
 */
export async function selectorMatches(run: StackRun): Promise<string | undefined> {
  const { systemd, engine } = run.adapters;
  const state = await systemd.state(run.stack.unit, run.signal);
  if (!isUp(state)) return undefined;
  const { selection } = await stackContainers(run);
  const containers = await engine.containers(selection, run.signal);
  if (containers.length > 0) return undefined;
  return (
    `unit ${run.stack.unit} is ${state.active} but no container matches ${describeSelection(selection)}, so stack-backup could not tell when its containers ` +
    `have stopped; set project_label or container_label to a label its containers carry (stack-backup doctor ${run.stack.name} lists the containers it sees)`
  );
}
