/** The Podman Docker-compatible API, through dockerode on a unix socket. */
import Docker from 'dockerode';
import type { LabelSelector } from '../config/types.js';

export interface ContainerSummary {
  id: string;
  name: string;
  /** Podman's status word: running, exited, removing, stopping... */
  state: string;
  /** Whether any of the container's processes still runs, which the status word alone does not tell. */
  running: boolean;
}

export interface ContainerEngine {
  ping(signal?: AbortSignal): Promise<void>;
  /**
   * Every container carrying the label, whatever its state, each with whether its processes still
   * run (its process ID, since the status word does not settle it).
   */
  containers(selector: LabelSelector, signal?: AbortSignal): Promise<ContainerSummary[]>;
  /** The container's state (running, exited...), or "missing" when there is none of that name. */
  containerState(name: string, signal?: AbortSignal): Promise<string>;
  /**
   * Calls onChange whenever a container with the label changes state, until the returned
   * function is called. Lets a waiter react to an exit instead of sleeping.
   */
  watch(selector: LabelSelector, onChange: () => void): Promise<() => void>;
}

/** Status words whose meaning this code knows; any other is named in the log when it is met. */
export const knownStates = new Set(['exited', 'stopped', 'created', 'configured', 'dead', 'running', 'paused']);

/** One entry of Podman's own container list (`GET /libpod/containers/json`). */
export interface PodmanListEntry {
  Id: string;
  Names?: string[] | null;
  State?: string;
  Pid?: number;
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
const podmanListPath = '/v4.0.0/libpod/containers/json?';

const queryTimeoutMs = 15_000;

export function createContainerEngine(socketPath: string): ContainerEngine {
  // Requests get an idle timeout; the event stream must not, as it is quiet by design.
  const client = new Docker({ socketPath, timeout: queryTimeoutMs });
  const streamClient = new Docker({ socketPath });
  const labelFilter = (selector: LabelSelector) => ({ label: [`${selector.key}=${selector.value}`] });
  return {
    async ping(signal) {
      await (client.ping as (options: { abortSignal?: AbortSignal }) => Promise<unknown>)({ abortSignal: signal });
    },
    async containers(selector, signal) {
      const entries = await new Promise<PodmanListEntry[]>((resolve, reject) => {
        client.modem.dial(
          {
            path: podmanListPath,
            method: 'GET',
            options: { all: true, filters: labelFilter(selector) },
            abortSignal: signal,
            statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' },
          },
          (error: unknown, data: unknown) => (error ? reject(error) : resolve((data as PodmanListEntry[] | null) ?? [])),
        );
      });
      return entries.map(summarize);
    },
    async containerState(name, signal) {
      try {
        const details = await client.getContainer(name).inspect({ abortSignal: signal } as object);
        return String(details.State?.Status ?? (details.State?.Running ? 'running' : 'unknown')).toLowerCase();
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return 'missing';
        throw error;
      }
    },
    async watch(selector, onChange) {
      const controller = new AbortController();
      const stream = (await streamClient.getEvents({
        filters: { type: ['container'], ...labelFilter(selector) },
        abortSignal: controller.signal,
      })) as NodeJS.ReadableStream;
      stream.on('data', () => onChange());
      // An ended or broken stream is reported as a change: the waiter then lists again.
      stream.on('error', () => onChange());
      stream.on('end', () => onChange());
      return () => {
        controller.abort();
        (stream as unknown as { destroy?: () => void }).destroy?.();
      };
    },
  };
}
