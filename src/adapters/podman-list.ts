/**
 * Podman's own container list and what it says of each container: kept apart from the API
 * client (dockerode) so a dry run can describe the request without loading it.
 */
import type { ContainerSelection } from '../config/types.js';

export interface ContainerSummary {
  id: string;
  name: string;
  /** Podman's status word: running, exited, removing, stopping... */
  state: string;
  /** Whether any of the container's processes still runs, which the status word alone does not tell. */
  running: boolean;
}

/** Status words whose meaning this code knows; any other is named in the log when it is met. */
export const knownStates = new Set(['exited', 'stopped', 'created', 'configured', 'dead', 'running', 'paused']);

/** One entry of Podman's own container list (`GET /libpod/containers/json`). */
export interface PodmanListEntry {
  Id: string;
  Names?: string[] | null;
  State?: string;
  Pid?: number;
  Labels?: Record<string, string> | null;
  /** The pod's ID, for a container in a pod. */
  Pod?: string;
}

/**
 * A container still runs while it has a main process: Podman's list gives its `Pid`, non-zero
 * while conmon reports the process alive (paused and "stopping" ones included), zero once it
 * exited. The status word is not enough: a container whose removal was cut short stays listed
 * as "removing" with no process (Podman 4.3 libpod/runtime_ctr.go removeContainer saves that
 * state before it tears down the storage and deletes the row; a remover killed in between, as
 * systemd does to conmon's `podman container cleanup --rm` when a unit is stopped while still
 * activating, leaves it so until the next `podman rm` or `run --replace`).
 */
export function summarize(entry: PodmanListEntry): ContainerSummary {
  const state = String(entry.State ?? '').toLowerCase();
  return {
    id: entry.Id,
    name: (entry.Names?.[0] ?? entry.Id.slice(0, 12)).replace(/^\//, ''),
    state,
    running: state === 'running' || (typeof entry.Pid === 'number' && entry.Pid > 0),
  };
}

/**
 * Podman's own API, not the Docker-compatible one: for a container whose storage is already gone
 * (the "removing" leftover above) the compatible list and inspect answer HTTP 500 for the whole
 * stack, while this list still returns it with its state and process ID. Versioned, since Podman
 * 4.3 answers 404 to an unversioned /libpod path.
 */
export const podmanListPath = '/v4.0.0/libpod/containers/json?';

/**
 * The list requests for a selection: Podman ANDs label filters, so each label key is one request;
 * a key asked for one value is filtered by Podman, one asked for several is listed by key and its
 * values matched here.
 */
export function containerListFilters(selection: ContainerSelection): Array<{ key: string; values: string[]; filter: string }> {
  const byKey = new Map<string, string[]>();
  for (const { key, value } of selection) {
    const values = byKey.get(key) ?? [];
    if (!values.includes(value)) values.push(value);
    byKey.set(key, values);
  }
  return [...byKey].map(([key, values]) => ({ key, values, filter: values.length === 1 ? `${key}=${values[0]}` : key }));
}

/** The list requests for a selection, as a dry run prints them. */
export function describeContainerList(selection: ContainerSelection): string {
  return containerListFilters(selection)
    .map(({ key, values, filter }) => `GET ${podmanListPath}all=true&filters=${JSON.stringify({ label: [filter] })}${values.length > 1 ? ` (${key} one of ${values.join(', ')})` : ''}`)
    .join(', ');
}

/** A selection as a person reads it: "label KEY=VALUE or KEY=VALUE". */
export function describeSelection(selection: ContainerSelection): string {
  return selection.map(({ key, value }) => `${key}=${value}`).join(' or ');
}


