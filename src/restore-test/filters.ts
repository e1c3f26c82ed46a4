/**
 * A backup job's own filters, as far as stack-backup can read them: a restore test leaves out
 * of its count (and its sample) what the job itself does not back up, so that "a file the
 * version lacks" means a file Duplicati should have kept. Duplicati's filters
 * (Library/Utility/FilterExpression.cs): `[regex]` matches the whole path, a text with `*` or `?`
 * is a wildcard (`*` also matches `/`), anything else an exact path; `{Group}` names a built-in
 * set, which this does not know (then the job's filters cannot be read, and the count is not
 * compared). The first filter that matches decides; a folder a filter excludes (its path ends in
 * "/") is not entered, so nothing below it is backed up; a path no filter matches is backed up.
 */

export interface JobFilter {
  include: boolean;
  expression: string;
}

export type FilterTest = (path: string) => boolean;

function toRegex(expression: string): RegExp | undefined {
  if (expression.startsWith('{')) return undefined;
  if (expression.startsWith('[') && expression.endsWith(']')) {
    try {
      return new RegExp(`^(?:${expression.slice(1, -1)})$`);
    } catch {
      return undefined;
    }
  }
  const body = expression.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * Whether the job backs up a file (its full path as the container sees it), or undefined when a
 * filter is of a kind this cannot read.
 */
export function backedUpBy(filters: readonly JobFilter[]): FilterTest | undefined {
  const compiled: Array<{ include: boolean; regex: RegExp }> = [];
  for (const filter of filters) {
    const regex = toRegex(filter.expression);
    if (!regex) return undefined;
    compiled.push({ include: filter.include, regex });
  }
  const decide = (path: string): boolean | undefined => compiled.find((filter) => filter.regex.test(path))?.include;
  return (path) => {
    // Each folder above it, from the top: an excluded folder is not entered.
    const parts = path.split('/');
    for (let length = 2; length < parts.length; length += 1) {
      if (decide(`${parts.slice(0, length).join('/')}/`) === false) return false;
    }
    return decide(path) !== false;
  };
}
