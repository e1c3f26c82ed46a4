/** systemd --user, through `systemctl --user`. */
import { CommandError } from '../errors.js';
import { describeFailure, timeoutError, type CommandRunner } from './process.js';
import { readUnitGraph, unitGraphProperties, type GraphUnit } from './unit-graph.js';

export interface UnitState {
  /** LoadState: loaded, not-found, masked... */
  load: string;
  /** ActiveState: active, inactive, failed, activating, deactivating, reloading. */
  active: string;
  /** UnitFileState: enabled, disabled, static...; where known. */
  file?: string;
}

export interface Systemd {
  state(unit: string, signal?: AbortSignal): Promise<UnitState>;
  /** Starts the unit and `members` (units it groups) in one call, which waits for every one of them. */
  start(unit: string, timeoutMs: number, signal?: AbortSignal, members?: readonly string[]): Promise<void>;
  stop(unit: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** The unit and every unit that stops with it (a pod's members, a target's parts): unit-graph.ts. */
  unitGraph(unit: string, signal?: AbortSignal): Promise<GraphUnit[]>;
}

/** Unit-file management, for `stack-backup install`. */
export interface SystemdManager {
  daemonReload(): Promise<void>;
  enableNow(unit: string): Promise<void>;
  /** Disables the unit and stops it (a timer: no further runs; a run under way is not touched). */
  disableNow(unit: string): Promise<void>;
}

/** `active`, `activating` and `reloading` all mean the unit is up or coming up. */
export function isUp(state: UnitState): boolean {
  return state.active === 'active' || state.active === 'activating' || state.active === 'reloading';
}

const queryTimeoutMs = 15_000;

/** The command line of a start or stop; the dry run shows the same. */
export function systemctlArgv(action: 'start' | 'stop', unit: string, members: readonly string[] = []): string[] {
  return ['systemctl', '--user', action, '--', unit, ...members];
}

export function createSystemd(run: CommandRunner): Systemd & SystemdManager {
  const systemctl = async (args: string[], timeoutMs: number, signal?: AbortSignal) => {
    const result = await run(['systemctl', '--user', ...args], { timeoutMs, signal });
    if (result.timedOut) throw timeoutError(result, timeoutMs);
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, timeoutMs), result.output);
    return result.stdout;
  };
  return {
    async state(unit, signal) {
      const text = await systemctl(['show', '--property=LoadState,ActiveState,UnitFileState', '--', unit], queryTimeoutMs, signal);
      const values = new Map(
        text
          .split('\n')
          .filter((line) => line.includes('='))
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
      );
      return {
        load: values.get('LoadState') ?? 'unknown',
        active: values.get('ActiveState') ?? 'unknown',
        file: values.get('UnitFileState') || undefined,
      };
    },
    async unitGraph(unit, signal) {
      return readUnitGraph(unit, (units) => systemctl(['show', `--property=${unitGraphProperties.join(',')}`, '--', ...units], queryTimeoutMs, signal));
    },
    async start(unit, timeoutMs, signal, members = []) {
      await systemctl(systemctlArgv('start', unit, members).slice(2), timeoutMs, signal);
    },
    async stop(unit, timeoutMs, signal) {
      await systemctl(systemctlArgv('stop', unit).slice(2), timeoutMs, signal);
    },
    async daemonReload() {
      await systemctl(['daemon-reload'], queryTimeoutMs);
    },
    async enableNow(unit) {
      await systemctl(['enable', '--now', '--', unit], queryTimeoutMs);
    },
    async disableNow(unit) {
      await systemctl(['disable', '--now', '--', unit], queryTimeoutMs);
    },
  };
}
