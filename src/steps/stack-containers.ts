/**
 * Which containers are a stack's. A stack file that sets project_label or container_label names
 * them by that label alone. One that sets neither is found without any label to set: by its
 * compose project's label (podman-compose's io.podman.compose.project=<name>) and by Quadlet's
 * PODMAN_SYSTEMD_UNIT label of its unit and of every unit that stops with it (a pod's member
 * `.container` units, a target's parts; read from systemd, unit-graph.ts); the other containers
 * of a pod one of them is in count too (podman.ts).
 */
import { describeContainerList } from '../adapters/podman-list.js';
import type { GraphUnit } from '../adapters/unit-graph.js';
import type { ContainerSelection, StackConfig } from '../config/types.js';
import type { StackRun } from './context.js';

/** The label Quadlet gives each container: its unit's name (Environment=PODMAN_SYSTEMD_UNIT=%n). */
export const quadletUnitLabel = 'PODMAN_SYSTEMD_UNIT';

/** The selection for a stack whose unit graph is known. */
export function selectionOf(stack: StackConfig, graph: readonly GraphUnit[]): ContainerSelection {
  if (stack.selectorSet) return [stack.selector];
  const units = graph.length > 0 ? graph.map((entry) => entry.unit) : [stack.unit];
  return [stack.selector, ...units.map((unit) => ({ key: quadletUnitLabel, value: unit }))];
}

/** What a plan says of the container list before systemd is asked for the unit graph. */
export function describePlannedList(stack: StackConfig): string {
  const list = describeContainerList(selectionOf(stack, []));
  return stack.selectorSet ? list : `${list} (and ${quadletUnitLabel} of each unit that stops with ${stack.unit}, read from systemd)`;
}

/** The stack's unit graph and selection, read once per run (the preflight, or the wait when it comes first). */
export async function stackContainers(run: StackRun): Promise<{ graph: GraphUnit[]; selection: ContainerSelection }> {
  if (run.containers === undefined) {
    const graph = run.stack.selectorSet ? [] : await run.adapters.systemd.unitGraph(run.stack.unit, run.signal);
    run.containers = { graph, selection: selectionOf(run.stack, graph) };
  }
  return run.containers;
}
