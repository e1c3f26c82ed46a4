/** The Podman adapter's rule for "does this container still run?", from Podman's own list. */
import { describe, expect, it } from 'vitest';
import { summarize } from '../../src/adapters/podman-list.js';

describe('summarize (one entry of GET /libpod/containers/json)', () => {
  it('a container left "removing" with no process runs nothing', () => {
    expect(summarize({ Id: 'abc', Names: ['ondemand-app'], State: 'removing', Pid: 0 })).toEqual({
      id: 'abc',
      name: 'ondemand-app',
      state: 'removing',
      running: false,
    });
  });

  it('a container that still has a process runs, whatever its status word', () => {
    expect(summarize({ Id: 'abc', Names: ['web'], State: 'stopping', Pid: 4242 }).running).toBe(true);
    expect(summarize({ Id: 'abc', Names: ['web'], State: 'paused', Pid: 4242 }).running).toBe(true);
    expect(summarize({ Id: 'abc', Names: ['web'], State: 'Running', Pid: 4242 })).toMatchObject({ state: 'running', running: true });
  });

  it('exited and created containers run nothing; a nameless one is named by its short ID', () => {
    expect(summarize({ Id: '0123456789abcdef', State: 'exited', Pid: 0 })).toEqual({ id: '0123456789abcdef', name: '0123456789ab', state: 'exited', running: false });
    expect(summarize({ Id: 'abc', Names: ['x'], State: 'created' }).running).toBe(false);
  });
});
