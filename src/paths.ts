/** Path relations, for checks that must not be fooled by a shared prefix ("/srv/a" is not inside "/srv/ab"). */
import path from 'node:path';

/** Whether `inner` is `outer` or lies below it. */
export function within(outer: string, inner: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
