/** Stack names given on the command line: normalisation and the rules for a plain name. */
import { UsageError } from '../errors.js';

export const subcommandNames = ['list', 'all', 'install', 'uninstall', 'recover', 'status', 'doctor', 'help', 'versions', 'restore'] as const;

const allowedCharacters = /^[A-Za-z0-9._-]+$/;

/** `cryptpad-stack.service` -> `cryptpad`; anything else is returned as given. */
export function normaliseStackArgument(argument: string): string {
  const match = /^(.+)-stack\.service$/.exec(argument);
  if (match) return match[1]!;
  // The file's name as a person copies it from `ls stacks/`: plainapp.yaml is the stack plainapp.
  const file = /^(?:stacks\/)?([^/]+)\.ya?ml$/.exec(argument);
  return file ? file[1]! : argument;
}

/** How many single-character edits turn one word into the other (Levenshtein). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * ' (did you mean "x"?)' for the known name closest to a mistyped one, when it is close enough to
 * be a slip (at most a third of its letters off, and at most 3); '' otherwise. Case is ignored.
 */
export function didYouMean(given: string, known: readonly string[]): string {
  const scored = known
    .map((name) => ({ name, distance: editDistance(given.toLowerCase(), name.toLowerCase()) }))
    .filter(({ name, distance }) => distance <= Math.min(3, Math.max(1, Math.floor(Math.max(given.length, name.length) / 3))))
    .sort((a, b) => a.distance - b.distance || a.name.localeCompare(b.name));
  return scored.length > 0 ? ` (did you mean "${scored[0]!.name}"?)` : '';
}

/** Which rule a name breaks, or nothing when it could be a stack's (and so a file name in stacks/). */
export function stackNameProblem(name: string): string | undefined {
  if (name === '') return 'a stack name cannot be empty';
  if (name.includes('/')) return 'a stack name cannot contain "/" (it names a file in stacks/, not a path)';
  if (name.startsWith('_')) return 'a name beginning with "_" is a template (such as stacks/_template.yaml), not a stack';
  if (name.startsWith('.')) return 'a name beginning with "." is a hidden file, not a stack';
  if (!allowedCharacters.test(name)) {
    const bad = [...new Set([...name].filter((character) => !allowedCharacters.test(character)))].map((character) => JSON.stringify(character));
    return `a stack name may hold only letters, digits, "-", "_" and "." (found ${bad.join(', ')})`;
  }
  if ((subcommandNames as readonly string[]).includes(name)) return `"${name}" is a command's name and cannot name a stack`;
  return undefined;
}

/** Throws a UsageError naming the rule unless the name could be a stack's. */
export function assertPlainStackName(name: string, asGiven = name): void {
  const problem = stackNameProblem(name);
  if (problem) throw new UsageError(`"${asGiven}" is not a stack name: ${problem}`);
}
