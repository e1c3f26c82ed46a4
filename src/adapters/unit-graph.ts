/**
 * The units a stack's unit stops with it, read from systemd's own properties: what a Quadlet
 * stack's containers are found by (each carries its unit's name in the PODMAN_SYSTEMD_UNIT label).
 *
 * Which relations count: a unit stops with the stack's unit when it is BoundBy it (Quadlet gives a
 * pod's member `.container` units BindsTo= the pod's service) or when it is part of it
 * (ConsistsOf, the reverse of PartOf=, how a `.target` groups units so that stopping the target
 * stops them). For a `.target`, the units it Wants= or Requires= are its members too, as a user
 * groups units under a target; one that is not also PartOf= it does not stop with it, so its
 * containers still running after the stop are waited for and fail the stack, never backed up live.
 * A `.service`'s Wants=/Requires= are its dependencies, not its parts (a compose stack may want a
 * database that other stacks share): they are not followed.
 */

/** What `systemctl show` says of one unit, for the graph. */
export interface UnitProperties {
  id: string;
  loadState: string;
  activeState: string;
  wants: string[];
  requires: string[];
  consistsOf: string[];
  boundBy: string[];
  /** The file the unit was generated from (a Quadlet `.container`, `.pod`, `.kube`...), if any. */
  sourcePath: string | undefined;
}

/** The properties asked of systemd, one `systemctl show` for a whole level of the graph. */
export const unitGraphProperties = ['Id', 'LoadState', 'ActiveState', 'Wants', 'Requires', 'ConsistsOf', 'BoundBy', 'SourcePath'];

/** How deep the graph is followed: a target of pods of containers is three levels. */
const maximumDepth = 4;

/** Quadlet's source files: a unit generated from one of these is a Quadlet unit. */
const quadletSources = /\.(container|pod|kube|volume|network|image|build)$/;

const list = (value: string | undefined) => (value ?? '').split(/\s+/).filter(Boolean);

/**
 * `systemctl show --property=... -- UNIT...` output: one block per unit, blocks separated by an
 * empty line, each line KEY=VALUE. A unit systemd does not know still gets a block
 * (LoadState=not-found).
 */
export function parseUnitShow(text: string): UnitProperties[] {
  const units: UnitProperties[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const values = new Map<string, string>();
    for (const line of block.split('\n')) {
      const separator = line.indexOf('=');
      if (separator > 0) values.set(line.slice(0, separator), line.slice(separator + 1));
    }
    const id = values.get('Id');
    if (!id) continue;
    units.push({
      id,
      loadState: values.get('LoadState') ?? 'unknown',
      activeState: values.get('ActiveState') ?? 'unknown',
      wants: list(values.get('Wants')),
      requires: list(values.get('Requires')),
      consistsOf: list(values.get('ConsistsOf')),
      boundBy: list(values.get('BoundBy')),
      sourcePath: values.get('SourcePath') || undefined,
    });
  }
  return units;
}

/** The units that stop with this one (see the module's comment for which relations count). */
export function memberUnits(unit: UnitProperties): string[] {
  const members = [...unit.boundBy, ...unit.consistsOf];
  if (unit.id.endsWith('.target')) members.push(...unit.wants, ...unit.requires);
  return [...new Set(members)];
}

/** A unit of the graph, with whether Quadlet made it. */
export interface GraphUnit {
  unit: string;
  activeState: string;
  quadlet: boolean;
  /** The Quadlet file it was generated from, where it was. */
  sourcePath: string | undefined;
}

/**
 * The stack's unit and every unit that stops with it, level by level; `show` is one
 * `systemctl show` of a list of units. A unit that is not loaded is left out (a Wants= of a
 * unit that does not exist, such as Podman 5's podman-user-wait-network-online.service on a
 * host that lacks it).
 */
export async function readUnitGraph(root: string, show: (units: string[]) => Promise<string>): Promise<GraphUnit[]> {
  const seen = new Set<string>([root]);
  const graph: GraphUnit[] = [];
  let level = [root];
  for (let depth = 0; level.length > 0 && depth <= maximumDepth; depth++) {
    const next: string[] = [];
    for (const unit of parseUnitShow(await show(level))) {
      if (unit.loadState !== 'loaded' && unit.id !== root) continue;
      graph.push({ unit: unit.id, activeState: unit.activeState, quadlet: unit.sourcePath !== undefined && quadletSources.test(unit.sourcePath), sourcePath: unit.sourcePath });
      for (const member of memberUnits(unit)) {
        if (seen.has(member)) continue;
        seen.add(member);
        next.push(member);
      }
    }
    level = next;
  }
  return graph;
}
