/** The Podman API (its Docker-compatible part and its own container list), through dockerode on a unix socket. */
import Docker from 'dockerode';
import type { ContainerSelection } from '../config/types.js';
import { containerListFilters, podmanListPath, summarize, type ContainerSummary, type PodmanListEntry } from './podman-list.js';

export type { ContainerSummary };

export interface ContainerEngine {
  ping(signal?: AbortSignal): Promise<void>;
  /**
   * Every container matching any label of the selection, and every other container of a pod one
   * of them is in, whatever its state, each with whether its processes still run (its process
   * ID, since the status word does not settle it).
   */
  containers(selection: ContainerSelection, signal?: AbortSignal): Promise<ContainerSummary[]>;
  /** The container's state (running, exited...), or "missing" when there is none of that name. */
  containerState(name: string, signal?: AbortSignal): Promise<string>;
  /** The container's volumes and bind mounts: the host folder and where the container sees it. */
  containerMounts?(name: string, signal?: AbortSignal): Promise<ContainerMount[]>;
  /**
   * Calls onChange whenever a container with the label changes state, until the returned
   * function is called, with what happened where the event says (a broken stream calls it
   * without). Lets a waiter react to an exit instead of sleeping.
   */
  watch(selection: ContainerSelection, onChange: (event?: ContainerEvent) => void): Promise<() => void>;
}

/** One container event: the container's full ID and Podman's action (`start`, `died`...). */
export interface ContainerEvent {
  id: string;
  action: string;
}

/** The events of one chunk of the event stream (one JSON object per line); what cannot be read is left out. */
export function parseContainerEvents(chunk: string): ContainerEvent[] {
  const events: ContainerEvent[] = [];
  for (const line of chunk.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const event = JSON.parse(line) as { id?: unknown; status?: unknown; Action?: unknown; Actor?: { ID?: unknown } };
      const id = String(event.Actor?.ID ?? event.id ?? '');
      const action = String(event.Action ?? event.status ?? '');
      if (id !== '' && action !== '') events.push({ id, action });
    } catch {
      // A line cut between two chunks: the waiter lists again on the call without an event.
    }
  }
  return events;
}

export interface ContainerMount {
  /** On the host. */
  source: string;
  /** In the container. */
  destination: string;
  /** Whether the container may write through it (Podman's inspect `RW`); absent: unknown. */
  writable?: boolean | undefined;
}

const queryTimeoutMs = 15_000;

export function createContainerEngine(socketPath: string): ContainerEngine {
  // Requests get an idle timeout; the event stream must not, as it is quiet by design.
  const client = new Docker({ socketPath, timeout: queryTimeoutMs });
  const streamClient = new Docker({ socketPath });
  const list = (filters: Record<string, string[]>, signal?: AbortSignal) =>
    new Promise<PodmanListEntry[]>((resolve, reject) => {
      client.modem.dial(
        {
          path: podmanListPath,
          method: 'GET',
          options: { all: true, filters },
          abortSignal: signal,
          statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' },
        },
        (error: unknown, data: unknown) => (error ? reject(error) : resolve((data as PodmanListEntry[] | null) ?? [])),
      );
    });
  return {
    async ping(signal) {
      await (client.ping as (options: { abortSignal?: AbortSignal }) => Promise<unknown>)({ abortSignal: signal });
    },
    async containers(selection, signal) {
      const found = new Map<string, PodmanListEntry>();
      for (const { key, values, filter } of containerListFilters(selection)) {
        for (const entry of await list({ label: [filter] }, signal)) {
          if (values.length === 1 || values.includes(entry.Labels?.[key] ?? '')) found.set(entry.Id, entry);
        }
      }
      // A pod's containers are the stack's, whatever their labels (one added by `podman run --pod`).
      const pods = new Set([...found.values()].map((entry) => entry.Pod).filter((pod): pod is string => typeof pod === 'string' && pod !== ''));
      for (const pod of pods) for (const entry of await list({ pod: [pod] }, signal)) found.set(entry.Id, entry);
      return [...found.values()].map(summarize);
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
    async containerMounts(name, signal) {
      const details = await client.getContainer(name).inspect({ abortSignal: signal } as object);
      return (details.Mounts ?? []).map((mount) => ({ source: String(mount.Source), destination: String(mount.Destination), writable: mount.RW === true }));
    },
    async watch(selection, onChange) {
      // One stream per label key, filtered as the list is (events of other values wake a relist).
      const controller = new AbortController();
      const streams: NodeJS.ReadableStream[] = [];
      const close = () => {
        controller.abort();
        for (const stream of streams) (stream as unknown as { destroy?: () => void }).destroy?.();
      };
      try {
        for (const { filter } of containerListFilters(selection)) {
          const stream = (await streamClient.getEvents({
            filters: { type: ['container'], label: [filter] },
            abortSignal: controller.signal,
          })) as NodeJS.ReadableStream;
          streams.push(stream);
          stream.on('data', (chunk: Buffer | string) => {
            const events = parseContainerEvents(String(chunk));
            if (events.length === 0) onChange();
            for (const event of events) onChange(event);
          });
          // An ended or broken stream is reported as a change: the waiter then lists again.
          stream.on('error', () => onChange());
          stream.on('end', () => onChange());
        }
      } catch (error) {
        close();
        throw error;
      }
      return close;
    },
  };
}
