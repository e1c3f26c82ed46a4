/** Stack names given on the command line: normalisation and the rules for a plain name. */
import { UsageError } from '../errors.js';

export const subcommandNames = ['list', 'all', 'install', 'recover', 'status', 'doctor', 'help'] as const;

const plainName = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** `cryptpad-stack.service` -> `cryptpad`; anything else is returned as given. */
export function normaliseStackArgument(argument: string): string {
  const match = /^(.+)-stack\.service$/.exec(argument);
  return match ? match[1]! : argument;
}

/** Throws a UsageError unless the name could be a stack's (and so a file name in stacks/). */
export function assertPlainStackName(name: string, asGiven = name): void {
  if (!plainName.test(name)) {
    throw new UsageError(
      `"${asGiven}" is not a stack name: use letters, digits, "-", "_" and "." (not first), no "/"`,
    );
  }
  if ((subcommandNames as readonly string[]).includes(name)) {
    throw new UsageError(`"${asGiven}" is a command's name and cannot name a stack`);
  }
}
