/** Outgoing HTTP for monitoring: one bounded request at a time, through Node's fetch. */
import { TimeoutError } from '../errors.js';
import { systemClock } from './clock.js';

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
  contentType?: string;
  /** Further headers (ntfy's Title, Priority, Tags); ASCII only. */
  headers?: Record<string, string>;
  timeoutMs: number;
}

export type HttpSend = (request: HttpRequest) => Promise<number>;

/** Sends the request and returns the HTTP status; rejects on a network error or timeout. */
export const sendHttp: HttpSend = async (request) => {
  // The real sender, so the real clock's deadline; its error is a TimeoutError, as the monitor expects.
  const deadline = systemClock.timeout(request.timeoutMs, () => new TimeoutError(`${request.method} request: no answer within ${Math.round(request.timeoutMs / 1000)} s`));
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: { ...request.headers, ...(request.contentType ? { 'Content-Type': request.contentType } : {}) },
      body: request.body,
      signal: deadline.signal,
    });
    // The body is not needed, but must be consumed so the connection is released.
    await response.arrayBuffer().catch(() => undefined);
    return response.status;
  } catch (error) {
    throw deadline.signal.aborted ? deadline.signal.reason : error;
  } finally {
    deadline.clear();
  }
};
