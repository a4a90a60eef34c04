/**
 * Set operations on allow/block lists that understand globs, shared by narrowing (which merges)
 * and the widening check (which compares).
 *
 * Comparing two globs costs the product of their lengths, and the lists come from agents (up to
 * the 32 KiB of a scope), so every glob comparison is charged to a WorkBudget first; when it runs
 * out, WorkLimitExceeded is thrown and the caller refuses the scope change (narrow.ts,
 * widening.ts) rather than spending seconds on it.
 */
import { globWork, type WorkBudget } from '../budget.js';
import { blockForm, globCovers, hasWildcard } from './glob.js';

type Form = (s: string) => string;
const asWritten: Form = (s) => s;

/**
 * A membership test for "covered by some entry of `list`". Only wildcard entries need the glob
 * comparison; a plain entry covers exactly itself, which a Set answers at once. Comparing every
 * pair with globCovers made a 2000-entry allow-list take 15 s: an agent could stall the server.
 */
function coveredBy(list: readonly string[], budget: WorkBudget, form: Form): (entry: string) => boolean {
  const exact = new Set(list.filter((e) => !hasWildcard(e)).map(form));
  const globs = list.filter(hasWildcard).map(form);
  return (entry) => {
    const inner = form(entry);
    if (exact.has(inner)) return true;
    return globs.some((outer) => {
      budget.require(globWork(outer.length, inner.length));
      return globCovers(outer, inner);
    });
  };
}

/** The entries of `entries` that `list` does not cover; block lists compare in blockForm. */
export function uncovered(
  entries: readonly string[],
  list: readonly string[],
  budget: WorkBudget,
  block = false,
): string[] {
  const covered = coveredBy(list, budget, block ? blockForm : asWritten);
  return entries.filter((e) => !covered(e));
}

/**
 * A sound under-approximation of the intersection of two allow-lists: an entry of either list
 * survives when the other list covers it, so `*@acme.com` ∩ `[bob@acme.com, eve@evil.com]` is
 * `[bob@acme.com]`. An entry that another survivor already covers is dropped as redundant.
 * An empty result means nothing is allowed for that field.
 */
export function intersectAllowLists(
  base: readonly string[],
  narrower: readonly string[],
  budget: WorkBudget,
): string[] {
  const inNarrower = coveredBy(narrower, budget, asWritten);
  const inBase = coveredBy(base, budget, asWritten);
  const candidates = [...base.filter(inNarrower), ...narrower.filter(inBase)];
  const unique = [...new Set(candidates)];
  // Only a wildcard entry can make another entry redundant.
  const wildcards = unique.filter(hasWildcard);
  const covers = (outer: string, inner: string) => {
    budget.require(globWork(outer.length, inner.length));
    return globCovers(outer, inner);
  };
  return unique.filter(
    (entry) => !wildcards.some((other) => other !== entry && covers(other, entry) && !covers(entry, other)),
  );
}

/** Union, base order first, without exact duplicates. */
export const unionLists = (a: readonly string[], b: readonly string[]): string[] => [
  ...new Set([...a, ...b]),
];
