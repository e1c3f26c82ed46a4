/**
 * `stack-backup doctor`: checks everything a run needs, touching nothing, and says for each
 * check OK or what is wrong and how to fix it.
 */
import { checkVersion, findJob, type BackupJob, type Duplicati } from '../adapters/duplicati.js';
import type { ContainerEngine, ContainerMount } from '../adapters/podman.js';
import { btrfsSubvolumeRootInode, chooseDriver, snapshotProblem, type Snapshots } from '../adapters/snapshots.js';
import { isUp, type Systemd } from '../adapters/systemd.js';
import { describeSelection } from '../adapters/podman-list.js';
import { selectionOf } from '../steps/stack-containers.js';
import { assertNoPathOverlaps, loadGlobalConfig, listStackNames, loadStack, podmanSocketPath, selectStacks } from '../config/load.js';
import { assertOnlyUserCanWrite } from '../config/permissions.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { UsageError, errorMessage } from '../errors.js';
import { installedStopTimeout, legacyUnits, stopTimeoutSeconds, unitNames } from './install.js';
import { within } from '../paths.js';
import { dataPathsOf, type JobSources } from '../restore/data-paths.js';
import path from 'node:path';

export interface CheckResult {
  ok: boolean;
  /** Passed, but something should be looked at (printed WARN; does not change the exit code). */
  warning?: boolean;
  what: string;
  /** What is wrong and how to fix it, when not ok. */
  problem?: string;
}

export interface DoctorDependencies {
  environment: Record<string, string | undefined>;
  systemd: Systemd;
  createEngine(socketPath: string): ContainerEngine;
  createDuplicati(global: GlobalConfig): Duplicati;
  checkFolder(folder: string, timeoutMs: number): Promise<void>;
  /** The text of a file in ~/.config/systemd/user, or undefined when there is none. */
  readUnitFile?(name: string): string | undefined;
  /** Snapshot mode's drivers, to check each path (reads only, and a probe file for reflink). */
  snapshots?: Snapshots;
}

/**
 * Where a container sees `target`: through a volume that covers the target's parent folder. A
 * volume of the target itself (or of a folder inside it) is refused: it would keep showing the
 * snapshot it was made with, removed since, and never the next one.
 */
export function pathInContainer(target: string, mounts: readonly ContainerMount[]): { path: string } | { problem: string } {
  const parent = path.dirname(target);
  const covering = mounts.filter((mount) => within(mount.source, parent)).sort((a, b) => b.source.length - a.source.length)[0];
  if (covering) return { path: path.posix.join(covering.destination, path.relative(covering.source, target)) };
  const ofTarget = mounts.find((mount) => within(target, mount.source));
  if (ofTarget) {
    return {
      problem: `its volume ${ofTarget.source}:${ofTarget.destination} is the target itself (or inside it): it would keep showing the removed snapshot and never the next one; mount the parent folder ${parent} instead`,
    };
  }
  return { problem: `none of its volumes covers ${parent}; add one, e.g. -v ${parent}:/snapshots:ro, and back up the target there` };
}

const pass = (what: string): CheckResult => ({ ok: true, what });
const fail = (what: string, problem: string): CheckResult => ({ ok: false, what, problem });

/** Runs one check: the test returns a problem or nothing; a throw is a problem too. Returns whether it passed. */
async function check(checks: CheckResult[], what: string, test: () => Promise<string | undefined>, fixWhenThrown?: string): Promise<boolean> {
  let problem: string | undefined;
  try {
    problem = await test();
  } catch (error) {
    problem = fixWhenThrown ? `${errorMessage(error)}; ${fixWhenThrown}` : errorMessage(error);
  }
  checks.push(problem === undefined ? pass(what) : fail(what, problem));
  return problem === undefined;
}

export async function runDoctor(root: string, targets: readonly string[], dependencies: DoctorDependencies): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  let global: GlobalConfig;
  try {
    global = loadGlobalConfig(root, dependencies.environment);
    checks.push(pass('stack-backup.yaml and the environment are valid'));
  } catch (error) {
    checks.push(fail('stack-backup.yaml and the environment are valid', `${errorMessage(error)}; fix the key named`));
    return checks;
  }
  const stacks: StackConfig[] = [];
  try {
    const names = targets.length > 0 ? selectStacks(root, global, targets).map((stack) => stack.name) : listStackNames(root);
    for (const name of names) {
      try {
        stacks.push(loadStack(root, name, global));
        checks.push(pass(`stacks/${name}.yaml is valid`));
      } catch (error) {
        checks.push(fail(`stacks/${name}.yaml is valid`, `${errorMessage(error)}; fix the key named (see stacks/_template.yaml)`));
      }
    }
  } catch (error) {
    // A stack named on the command line that does not exist is a usage error (exit 2), as for
    // every command, not a failed check.
    if (error instanceof UsageError) throw error;
    checks.push(fail('the stacks can be listed', errorMessage(error)));
  }
  if (stacks.some((stack) => stack.snapshot)) {
    try {
      assertNoPathOverlaps(root, global, stacks);
      checks.push(pass('no snapshot target is, holds or lies inside a source or another target (by real path, across all stacks)'));
    } catch (error) {
      checks.push(fail('no snapshot target is, holds or lies inside a source or another target (by real path, across all stacks)', `${errorMessage(error)}; choose another target`));
    }
  }
  try {
    assertOnlyUserCanWrite(root, stacks.map((stack) => stack.file));
    checks.push(pass('only you can write the configuration, hooks and logs'));
  } catch (error) {
    checks.push(fail('only you can write the configuration, hooks and logs', errorMessage(error)));
  }

  let socket: string | undefined;
  try {
    socket = podmanSocketPath(dependencies.environment);
  } catch (error) {
    checks.push(fail('the Podman API can be found', errorMessage(error)));
  }
  const engine = socket ? dependencies.createEngine(socket) : undefined;
  let engineAnswers = false;
  if (engine) {
    const { container } = global.duplicati;
    const answers = await check(checks, `the Podman API answers at ${socket}`, async () => {
      await engine.ping();
      return undefined;
    }, 'start it: systemctl --user enable --now podman.socket');
    engineAnswers = answers;
    if (answers) {
      await check(checks, `the Duplicati container "${container}" runs`, async () => {
        const state = await engine.containerState(container);
        return state === 'running' ? undefined : `it is ${state}; start it, or set duplicati.container`;
      });
    }
  }

  const duplicati = dependencies.createDuplicati(global);
  const snapshotStacks = stacks.filter((stack) => stack.snapshot !== undefined);
  /** Where the Duplicati container sees each snapshot target, once known. */
  const containerPaths = new Map<string, string>();
  if (snapshotStacks.length > 0) {
    await checkSnapshots(checks, snapshotStacks, global, dependencies, engine, containerPaths);
  }
  const driver = `driver ${global.duplicati.driver}`;
  let answers = false;
  await check(checks, `Duplicati answers (${driver})`, async () => {
    const status = await duplicati.status();
    answers = true;
    return status.paused ? 'the server is paused: resume it, or every backup will wait and fail' : undefined;
  });
  if (answers) {
    // The version decides what the driver can do (README, "Duplicati versions").
    let version = '';
    await check(checks, `Duplicati's version is supported (${driver})`, async () => {
      version = await duplicati.version();
      return checkVersion(version, global.duplicati.driver);
    });
  }
  // A paused server still lists its jobs.
  if (answers) {
    let jobs: BackupJob[] = [];
    const listed = await check(checks, `Duplicati lists its backup jobs (${driver})`, async () => {
      jobs = await duplicati.listJobs();
      return undefined;
    });
    for (const stack of listed ? stacks : []) {
      for (const job of stack.jobs) {
        const found = findJob(jobs, job);
        checks.push(
          found
            ? pass(`Duplicati has job "${job}" of ${stack.name} (ID ${found.id})`)
            : fail(`Duplicati has job "${job}" of ${stack.name}`, `no such job; Duplicati has: ${jobs.map((entry) => entry.name).join(', ') || 'none'}`),
        );
        if (found && stack.snapshot && duplicati.jobSources) {
          await checkJobSources(checks, stack, job, found.id, duplicati, containerPaths);
        }
      }
      await checkRestorable(checks, stack, jobs, duplicati, global, engine);
    }
  }

  for (const stack of stacks) {
    for (const unit of [stack.unit, stack.freeze?.socket, stack.freeze?.service].filter((name): name is string => name !== undefined)) {
      try {
        const state = await dependencies.systemd.state(unit);
        checks.push(
          state.load === 'loaded'
            ? pass(`unit ${unit} exists (${state.active})`)
            : fail(`unit ${unit} exists`, `it is ${state.load}; create it, or set unit/ondemand_socket/ondemand_service in stacks/${stack.name}.yaml`),
        );
      } catch (error) {
        checks.push(fail(`unit ${unit} exists`, errorMessage(error)));
      }
    }
    if (engine && engineAnswers) await checkStackContainers(checks, stack, dependencies.systemd, engine);
  }

  if (global.backupMount) {
    try {
      await dependencies.checkFolder(global.backupMount, 30_000);
      checks.push(pass(`backup_mount ${global.backupMount} can be read`));
    } catch (error) {
      checks.push(fail(`backup_mount ${global.backupMount} can be read`, `${errorMessage(error)}; mount it or fix backup_mount`));
    }
  }

  const { timer: timerUnit, service: serviceUnit } = unitNames(root);
  let timerOk = false;
  try {
    const timer = await dependencies.systemd.state(timerUnit);
    timerOk = timer.load === 'loaded' && timer.file === 'enabled';
    checks.push(
      timerOk
        ? pass(`${timerUnit} is installed and enabled`)
        : fail(`${timerUnit} is installed and enabled`, `it is ${timer.load}${timer.file ? `, ${timer.file}` : ''}; run: stack-backup install`),
    );
  } catch (error) {
    checks.push(fail(`${timerUnit} is installed and enabled`, errorMessage(error)));
  }
  // An earlier version's timer beside this one would run the backup twice a night.
  try {
    const legacy = await dependencies.systemd.state(legacyUnits.timer);
    if (legacy.load === 'loaded') {
      checks.push(
        fail(
          `no ${legacyUnits.timer} of an earlier version is installed`,
          `it is ${legacy.file ?? legacy.load}; run: stack-backup install (it replaces it), or: systemctl --user disable --now ${legacyUnits.timer}`,
        ),
      );
    }
  } catch {
    // Not there, or systemd cannot say: the check above already reports systemd problems.
  }
  // The installed TimeoutStopSec= must cover the longest undo the configuration now allows.
  const serviceText = timerOk ? dependencies.readUnitFile?.(serviceUnit) : undefined;
  if (serviceText !== undefined && stacks.length > 0 && targets.length === 0) {
    const installed = installedStopTimeout(serviceText);
    const needed = stopTimeoutSeconds(stacks);
    const what = `${serviceUnit} gives the undos enough time to stop (TimeoutStopSec=)`;
    if (installed === undefined || installed < needed) {
      checks.push({
        ok: true,
        warning: true,
        what,
        problem: `it allows ${installed === undefined ? 'an unknown time' : `${installed} s`}, the configuration now needs ${needed} s: run stack-backup install again`,
      });
    } else checks.push(pass(what));
  }
  return checks;
}

/**
 * A stack's units, containers and the host folders they keep data in (what its Duplicati job
 * must back up): the selection a run would use, and, when it matches nothing while the unit
 * runs, the containers that do run under the unit's graph (by Quadlet's label), to set instead.
 */
async function checkStackContainers(checks: CheckResult[], stack: StackConfig, systemd: Systemd, engine: ContainerEngine): Promise<void> {
  const what = `the containers of ${stack.name} are found`;
  try {
    const graph = await systemd.unitGraph(stack.unit);
    if (graph.length > 1 || graph.some((entry) => entry.quadlet)) {
      const units = graph.map((entry) => `${entry.unit} (${entry.activeState}${entry.sourcePath ? `, from ${path.basename(entry.sourcePath)}` : ''})`);
      checks.push(pass(`units of ${stack.name}: ${units.join(', ')}`));
    }
    const selection = selectionOf(stack, graph);
    const containers = await engine.containers(selection);
    const rootState = graph.find((entry) => entry.unit === stack.unit)?.activeState ?? 'unknown';
    if (containers.length === 0) {
      if (!isUp({ load: 'loaded', active: rootState })) {
        checks.push({ ok: true, warning: true, what, problem: `none matches ${describeSelection(selection)} while ${stack.unit} is ${rootState}: check again while it runs` });
        return;
      }
      const underUnit = stack.selectorSet ? await engine.containers(selectionOf({ ...stack, selectorSet: false }, graph)) : [];
      checks.push(
        fail(
          what,
          `${stack.unit} is ${rootState} but no container matches ${describeSelection(selection)}, so a run is refused before the stop; ` +
            (underUnit.length > 0
              ? `under the unit run ${underUnit.map((container) => container.name).join(', ')}: remove project_label/container_label from stacks/${stack.name}.yaml (its units find them), or set it to a label they carry`
              : `set project_label or container_label in stacks/${stack.name}.yaml to a label its containers carry (podman ps --format '{{.Names}} {{.Labels}}')`),
        ),
      );
      return;
    }
    checks.push(pass(`${what}: ${containers.map((container) => `${container.name} (${container.state})`).join(', ')}, by ${describeSelection(selection)}`));
    if (engine.containerMounts) {
      const folders = new Set<string>();
      for (const container of containers) {
        for (const mount of await engine.containerMounts(container.name).catch(() => [])) if (mount.writable !== false) folders.add(mount.source);
      }
      if (folders.size > 0) checks.push(pass(`${stack.name} keeps its data in (its Duplicati job must back up): ${[...folders].sort().join(', ')}`));
    }
  } catch (error) {
    checks.push(fail(what, errorMessage(error)));
  }
}

/** Each path of each snapshot stack: the driver can snapshot it, and Duplicati's container can see the target. */
async function checkSnapshots(
  checks: CheckResult[],
  stacks: readonly StackConfig[],
  global: GlobalConfig,
  dependencies: DoctorDependencies,
  engine: ContainerEngine | undefined,
  containerPaths: Map<string, string>,
): Promise<void> {
  const { container } = global.duplicati;
  let mounts: ContainerMount[] | undefined;
  let mountsProblem = 'the Podman API cannot be found';
  if (engine?.containerMounts) {
    try {
      mounts = await engine.containerMounts(container);
    } catch (error) {
      mountsProblem = `cannot read its volumes: ${errorMessage(error)}`;
    }
  }
  for (const stack of stacks) {
    const snapshot = stack.snapshot!;
    for (const [index, snapshotPath] of snapshot.paths.entries()) {
      const key = `stacks/${stack.name}.yaml snapshot.paths[${index}]`;
      const snapshots = dependencies.snapshots;
      if (snapshots) {
        await check(checks, `${key}: ${snapshotPath.source} can be snapshotted to ${snapshotPath.target} (driver ${snapshot.driver})`, async () => {
          const facts = await snapshots.facts(snapshotPath, { reflink: snapshot.driver !== 'btrfs' });
          const driver = chooseDriver(snapshot.driver, facts.source);
          if (driver === 'btrfs' && facts.source.exists && facts.source.inode === btrfsSubvolumeRootInode) {
            facts.nestedSubvolumes = await snapshots.nestedSubvolumes(snapshotPath.source);
          }
          const problem = snapshotProblem(driver, snapshotPath, facts);
          return problem === undefined ? undefined : `${problem}${snapshot.driver === 'auto' ? ` (auto chose ${driver})` : ''}`;
        });
      }
      const what = `the Duplicati container "${container}" can see ${snapshotPath.target}`;
      if (!mounts) {
        checks.push(fail(what, mountsProblem));
        continue;
      }
      const seen = pathInContainer(snapshotPath.target, mounts);
      if ('problem' in seen) checks.push(fail(what, seen.problem));
      else {
        containerPaths.set(snapshotPath.target, seen.path);
        checks.push(pass(`${what}, at ${seen.path}: the job of ${stack.name} must back up that path`));
      }
    }
  }
}

/**
 * Whether `stack-backup restore` could stage a restore of the stack: each job source maps to a
 * data path on the host, and the Duplicati container can write beside it (the same check as the
 * restore's preflight, so doctor names the volume to add before a restore is needed).
 */
async function checkRestorable(
  checks: CheckResult[],
  stack: StackConfig,
  known: readonly BackupJob[],
  duplicati: Duplicati,
  global: GlobalConfig,
  engine: ContainerEngine | undefined,
): Promise<void> {
  const what = `a restore of ${stack.name} can be staged beside its data (stack-backup restore)`;
  if (!duplicati.jobSources || !engine?.containerMounts) return;
  await check(checks, what, async () => {
    const jobs: JobSources[] = [];
    for (const job of stack.jobs) {
      const found = findJob(known, job);
      if (!found) return `Duplicati has no job "${job}"`;
      jobs.push({ job, backupId: found.id, sources: await duplicati.jobSources!(found.id) });
    }
    const { paths, problems, warnings } = dataPathsOf({ stack, jobs, mounts: await engine.containerMounts!(global.duplicati.container), run: 'RUN', container: global.duplicati.container });
    if (problems.length > 0) return problems.join('; ');
    for (const warning of warnings) checks.push({ ok: true, warning: true, what: `after a restore of ${stack.name}, the Duplicati container sees the restored data`, problem: warning });
    checks.push(pass(`${stack.name}'s data paths: ${paths.map((entry) => `${entry.live} (job ${entry.job}, ${entry.source} in the container; staged as ${entry.stagingInContainer})`).join(', ')}`));
    return undefined;
  });
}

/** API driver: the job backs up the snapshots, not the live data (which snapshot mode would then back up quietly). */
async function checkJobSources(
  checks: CheckResult[],
  stack: StackConfig,
  job: string,
  backupId: string,
  duplicati: Duplicati,
  containerPaths: ReadonlyMap<string, string>,
): Promise<void> {
  let sources: string[] = [];
  const listed = await check(checks, `Duplicati lists the sources of job "${job}"`, async () => {
    sources = await duplicati.jobSources!(backupId);
    return undefined;
  });
  if (!listed) return;
  const trimmed = sources.map((source) => source.replace(/(.)\/+$/, '$1'));
  for (const snapshotPath of stack.snapshot!.paths) {
    const inContainer = containerPaths.get(snapshotPath.target);
    if (inContainer === undefined) continue;
    checks.push(
      trimmed.some((source) => within(source, inContainer))
        ? pass(`job "${job}" of ${stack.name} backs up the snapshot at ${inContainer}`)
        : fail(
            `job "${job}" of ${stack.name} backs up the snapshot at ${inContainer}`,
            `its sources are ${sources.join(', ') || 'none'}: in snapshot mode it would back up something else than the snapshot (the live data?); set its source to ${inContainer}/`,
          ),
    );
  }
}

export function formatChecks(checks: readonly CheckResult[]): string {
  const line = (check: CheckResult) =>
    !check.ok ? `FAIL  ${check.what}: ${check.problem}` : check.warning ? `WARN  ${check.what}: ${check.problem}` : `OK    ${check.what}`;
  return `${checks.map(line).join('\n')}\n`;
}
