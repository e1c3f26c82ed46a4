/**
 * The one JSON convention of list, status, doctor and a run: a top-level object whose
 * `version` is the format's, snake_case keys, durations in seconds as numbers, times in
 * ISO 8601 UTC. With --json, standard output holds this one document and nothing else.
 */
import type { TextSink } from './report.js';

/** Raised when a document's shape changes in a way a reader would notice. */
export const jsonFormatVersion = 1;

export function jsonDocument(body: Record<string, unknown>): Record<string, unknown> {
  return { version: jsonFormatVersion, ...body };
}

export function writeJson(sink: TextSink, body: Record<string, unknown>): void {
  sink.write(`${JSON.stringify(jsonDocument(body), null, 2)}\n`);
}

/** Milliseconds to seconds for a document: null when unknown. */
export function secondsOf(ms: number | undefined | null): number | null {
  return ms === undefined || ms === null ? null : ms / 1000;
}
