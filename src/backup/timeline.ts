/**
 * A stop-mode run's timeline: every instant of the downtime path as the run saw it (and as
 * Duplicati recorded the job), for the log line that `--verbose` also shows and for tuning.
 */
import type { StackTimings } from '../steps/context.js';

/** The instants of the downtime path, in order, as the run saw them (Duplicati's where it says). */
const timelineSteps: ReadonlyArray<readonly [keyof StackTimings, string]> = [
  ['unitStopIssuedAt', 'stop requested'],
  ['unitStoppedAt', 'unit inactive'],
  ['containersGoneAt', 'last container exited'],
  ['duplicatiIdleAt', 'Duplicati idle confirmed'],
  ['runRequestedAt', 'run requested'],
  ['jobQueuedAt', 'job queued'],
  ['jobStartedAt', 'job picked up (as Duplicati records it)'],
  ['jobSeenAt', 'job seen running'],
  ['jobEndedAt', 'job ended (as Duplicati records it)'],
  ['jobEndSeenAt', 'end seen'],
  ['unitStartIssuedAt', 'start requested'],
  ['unitStartedAt', 'unit active'],
];

/**
 * The timeline of a stop-mode run: each instant as milliseconds after the stop was asked, and
 * the two gaps that are stack-backup's own (the stack down until its job is queued, the job's
 * end until the start is asked), so that every millisecond of the downtime has a name.
 * Undefined when the stack was not stopped and started again.
 */
export function timelineOf(timings: StackTimings): { text: string; instants: Record<string, string>; gaps: Record<string, number> } | undefined {
  const stop = timings.unitStopIssuedAt;
  if (stop === undefined || timings.unitStartedAt === undefined || timings.snapshotStartedAt !== undefined) return undefined;
  const instants: Record<string, string> = {};
  const parts: string[] = [];
  for (const [key, label] of timelineSteps) {
    const at = timings[key];
    if (typeof at !== 'number') continue;
    const seconds = timings.jobRecordedInSeconds && (key === 'jobStartedAt' || key === 'jobEndedAt');
    instants[label] = new Date(at).toISOString();
    parts.push(`${label} +${at - stop} ms${seconds ? ' (whole seconds)' : ''}`);
  }
  const gaps: Record<string, number> = {};
  const down = Math.max(timings.unitStoppedAt ?? stop, timings.containersGoneAt ?? stop);
  if (timings.jobQueuedAt !== undefined) gaps['stack down to job queued'] = timings.jobQueuedAt - down;
  if (timings.jobEndSeenAt !== undefined && timings.unitStartIssuedAt !== undefined) gaps['end seen to start requested'] = timings.unitStartIssuedAt - timings.jobEndSeenAt;
  if (timings.jobEndedAt !== undefined && timings.jobEndSeenAt !== undefined && !timings.jobRecordedInSeconds) {
    gaps['job ended to end seen'] = timings.jobEndSeenAt - timings.jobEndedAt;
  }
  return { text: parts.join(', '), instants, gaps };
}
