/**
 * Quadlet stacks (issue 29): the unit graph read from systemd's own `systemctl --user show`
 * output (captured from the real Quadlet generator's units in the test world), the containers a
 * stack is found by, and the refusal of a selector that matches nothing while the unit runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { memberUnits, parseUnitShow, readUnitGraph } from '../../src/adapters/unit-graph.js';
import { describeContainerList } from '../../src/adapters/podman-list.js';
import { selectionOf } from '../../src/steps/stack-containers.js';
import { removeTempRoots, runStack, stackConfig, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

/** `systemctl --user show --property=Id,LoadState,ActiveState,Wants,Requires,ConsistsOf,BoundBy,SourcePath -- UNITS`, as systemd 252 printed it. */
const shown: Record<string, string> = {
  'quadpod-pod.service': `Id=quadpod-pod.service
Requires=app.slice basic.target
Wants=quadpod-worker.service quadpod-web.service podman-user-wait-network-online.service
BoundBy=quadpod-web.service quadpod-worker.service
ConsistsOf=
LoadState=loaded
ActiveState=active
SourcePath=/home/sbworld/.config/containers/systemd/quadpod.pod
`,
  'quadgroup.target': `Id=quadgroup.target
Requires=
Wants=quadgroup-worker.service quadgroup-web.service
BoundBy=
ConsistsOf=quadgroup-worker.service quadgroup-web.service
LoadState=loaded
ActiveState=active
SourcePath=
`,
  'podman-user-wait-network-online.service': `Id=podman-user-wait-network-online.service
Requires=
Wants=
BoundBy=
ConsistsOf=
LoadState=not-found
ActiveState=inactive
SourcePath=
`,
  'composeapp-stack.service': `Id=composeapp-stack.service
Requires=app.slice basic.target
Wants=sbworld-userns.service
BoundBy=
ConsistsOf=
LoadState=loaded
ActiveState=active
SourcePath=
`,
};
for (const member of ['quadpod-web', 'quadpod-worker', 'quadgroup-web', 'quadgroup-worker']) {
  shown[`${member}.service`] = `Id=${member}.service
Requires=app.slice basic.target
Wants=podman-user-wait-network-online.service
BoundBy=
ConsistsOf=
LoadState=loaded
ActiveState=active
SourcePath=/home/sbworld/.config/containers/systemd/${member}.container
`;
}

/** One `systemctl show` of several units: their blocks, an empty line between. */
const show = async (units: string[]) => units.map((unit) => shown[unit] ?? `Id=${unit}\nLoadState=not-found\nActiveState=inactive\n`).join('\n');

describe('reading the unit graph from systemctl show', () => {
  it('parses one block per unit, lists split on spaces, an empty SourcePath as none', () => {
    const units = parseUnitShow(`${shown['quadpod-pod.service']}\n${shown['quadgroup.target']}`);
    expect(units.map((unit) => unit.id)).toEqual(['quadpod-pod.service', 'quadgroup.target']);
    expect(units[0]).toMatchObject({ loadState: 'loaded', activeState: 'active', boundBy: ['quadpod-web.service', 'quadpod-worker.service'], sourcePath: '/home/sbworld/.config/containers/systemd/quadpod.pod' });
    expect(units[1]).toMatchObject({ consistsOf: ['quadgroup-worker.service', 'quadgroup-web.service'], sourcePath: undefined });
  });

  it("a pod's members are the units bound to its service; its Wants= (a network-online helper) are not followed for a service", () => {
    const [pod] = parseUnitShow(shown['quadpod-pod.service']!);
    expect(memberUnits(pod!)).toEqual(['quadpod-web.service', 'quadpod-worker.service']);
  });

  it("a target's members are its parts and the units it wants or requires", () => {
    const [target] = parseUnitShow(shown['quadgroup.target']!);
    expect(memberUnits(target!).sort()).toEqual(['quadgroup-web.service', 'quadgroup-worker.service']);
  });

  it("a compose unit's own Wants= (a shared user-namespace holder) are not its members", () => {
    const [compose] = parseUnitShow(shown['composeapp-stack.service']!);
    expect(memberUnits(compose!)).toEqual([]);
  });

  it('walks the graph: the pod with its two members, each marked as made by Quadlet from its file', async () => {
    const graph = await readUnitGraph('quadpod-pod.service', show);
    expect(graph).toEqual([
      { unit: 'quadpod-pod.service', activeState: 'active', quadlet: true, sourcePath: '/home/sbworld/.config/containers/systemd/quadpod.pod' },
      { unit: 'quadpod-web.service', activeState: 'active', quadlet: true, sourcePath: '/home/sbworld/.config/containers/systemd/quadpod-web.container' },
      { unit: 'quadpod-worker.service', activeState: 'active', quadlet: true, sourcePath: '/home/sbworld/.config/containers/systemd/quadpod-worker.container' },
    ]);
  });

  it('walks a target of units; a unit systemd does not know is left out; each unit is asked once', async () => {
    const asked: string[][] = [];
    const graph = await readUnitGraph('quadgroup.target', async (units) => {
      asked.push(units);
      return show(units);
    });
    expect(graph.map((unit) => unit.unit).sort()).toEqual(['quadgroup-web.service', 'quadgroup-worker.service', 'quadgroup.target']);
    expect(graph.find((unit) => unit.unit === 'quadgroup.target')?.quadlet).toBe(false);
    // One systemctl show per level of the graph.
    expect(asked).toEqual([['quadgroup.target'], ['quadgroup-worker.service', 'quadgroup-web.service']]);
  });

  it('a target that groups a pod reaches the pod’s members (two levels down)', async () => {
    const withPod: Record<string, string> = { ...shown, 'site.target': 'Id=site.target\nWants=quadpod-pod.service\nConsistsOf=\nBoundBy=\nLoadState=loaded\nActiveState=active\nSourcePath=\n' };
    const graph = await readUnitGraph('site.target', async (units) => units.map((unit) => withPod[unit] ?? `Id=${unit}\nLoadState=not-found\n`).join('\n'));
    expect(graph.map((unit) => unit.unit)).toEqual(['site.target', 'quadpod-pod.service', 'quadpod-web.service', 'quadpod-worker.service']);
  });
});

describe("a stack's containers", () => {
  it('without a label set: the compose project label, and the Quadlet unit label of every unit of the graph', async () => {
    const stack = stackConfig({ name: 'quadpod', unit: 'quadpod-pod.service', selector: { key: 'io.podman.compose.project', value: 'quadpod' } });
    const selection = selectionOf(stack, await readUnitGraph('quadpod-pod.service', show));
    expect(selection).toEqual([
      { key: 'io.podman.compose.project', value: 'quadpod' },
      { key: 'PODMAN_SYSTEMD_UNIT', value: 'quadpod-pod.service' },
      { key: 'PODMAN_SYSTEMD_UNIT', value: 'quadpod-web.service' },
      { key: 'PODMAN_SYSTEMD_UNIT', value: 'quadpod-worker.service' },
    ]);
    // Podman ANDs label filters: one request per key, the unit names matched on the answer.
    expect(describeContainerList(selection)).toBe(
      'GET /v4.0.0/libpod/containers/json?all=true&filters={"label":["io.podman.compose.project=quadpod"]}, ' +
        'GET /v4.0.0/libpod/containers/json?all=true&filters={"label":["PODMAN_SYSTEMD_UNIT"]} (PODMAN_SYSTEMD_UNIT one of quadpod-pod.service, quadpod-web.service, quadpod-worker.service)',
    );
  });

  it('a label set by hand selects alone, and no graph is needed', () => {
    const stack = stackConfig({ selector: { key: 'role', value: 'db' }, selectorSet: true });
    expect(selectionOf(stack, [])).toEqual([{ key: 'role', value: 'db' }]);
  });
});

describe('a selector that matches nothing while the unit runs', () => {
  it('is refused before anything is touched, naming the unit and the selector (exit 1)', async () => {
    const fake = worldWithStack('active');
    // A typo in the label: the stack's containers carry another one.
    const stack = stackConfig({ selector: { key: 'io.podman.compose.project', value: 'aap' }, selectorSet: true });
    const { result } = await runStack(fake, stack);
    expect(result.ok).toBe(false);
    expect(result.error).toBe(
      'preflight: unit app-stack.service is active but no container matches io.podman.compose.project=aap, so stack-backup could not tell when its containers have stopped; ' +
        'set project_label or container_label to a label its containers carry (stack-backup doctor app lists the containers it sees); nothing was touched',
    );
    expect(fake.actions.filter((action) => /^(stop|start) /.test(action))).toEqual([]);
    expect(fake.state('app-stack.service')).toBe('active');
    expect(fake.duplicati.tasks).toEqual([]);
  });

  it('a unit that is down has nothing to find: the stack is backed up', async () => {
    const fake = worldWithStack('inactive');
    const stack = stackConfig({ selector: { key: 'io.podman.compose.project', value: 'aap' }, selectorSet: true });
    const { result } = await runStack(fake, stack);
    expect(result.ok).toBe(true);
  });

  it("a Quadlet stack's containers are found by their units' names, with no label set", async () => {
    const fake = worldWithStack('active');
    fake.containers.length = 0;
    fake.unit('app-web.service', 'active');
    fake.container('systemd-app-web', 'app-stack.service', { PODMAN_SYSTEMD_UNIT: 'app-web.service' });
    fake.unitGraphs.set('app-stack.service', [
      { unit: 'app-stack.service', activeState: 'active', quadlet: true, sourcePath: '/home/u/.config/containers/systemd/app.pod' },
      { unit: 'app-web.service', activeState: 'active', quadlet: true, sourcePath: '/home/u/.config/containers/systemd/app-web.container' },
    ]);
    const { result, log } = await runStack(fake, stackConfig());
    expect(result.ok).toBe(true);
    expect(log.lines.some((line) => line.fields?.selector === 'io.podman.compose.project=app or PODMAN_SYSTEMD_UNIT=app-stack.service or PODMAN_SYSTEMD_UNIT=app-web.service')).toBe(true);
  });
});
