/** Stack names given on the command line: normalisation and the rules for a plain name. */
import { UsageError } from '../errors.js';

export const subcommandNames = ['list', 'all', 'install', 'uninstall', 'recover', 'status', 'doctor', 'help', 'versions', 'restore'] as const;

const allowedCharacters = /^[A-Za-z0-9._-]+$/;

/** `cryptpad-stack.service` -> `cryptpad`; anything else is returned as given. */
export function normaliseStackArgument(argument: string): string {
  const match = /^(.+)-stack\.service$/.exec(argument);
  return match ? match[1]! : argument;
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
