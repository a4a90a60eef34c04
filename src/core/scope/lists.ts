/**
 * Set operations on allow/block lists that understand globs, shared by narrowing (which merges)
 * and the widening check (which compares).
 */
import { type GlobOptions, globCovers, hasWildcard } from './glob.js';

/** Block lists compare case-insensitively, matching how they are enforced. */
const BLOCK = { caseInsensitive: true } as const;

/**
 * A membership test for "covered by some entry of `list`". Only wildcard entries need the glob
 * comparison; a plain entry covers exactly itself, which a Set answers at once. Comparing every
 * pair with globCovers made a 2000-entry allow-list take 15 s: an agent could stall the server.
 */
function coveredBy(list: readonly string[], options: GlobOptions = {}): (entry: string) => boolean {
  const norm = (s: string) => (options.caseInsensitive ? s.toLowerCase() : s);
  const exact = new Set(list.filter((e) => !hasWildcard(e)).map(norm));
  const globs = list.filter(hasWildcard);
  return (entry) => exact.has(norm(entry)) || globs.some((outer) => globCovers(outer, entry, options));
}

/** Is `entry` inside some entry of `list`? (`a@acme.com` is inside `*@acme.com`.) */
export const allowCovered = (entry: string, list: readonly string[]): boolean => coveredBy(list)(entry);

/** Is the blocked `entry` still blocked by some entry of `list`? */
export const blockCovered = (entry: string, list: readonly string[]): boolean =>
  coveredBy(list, BLOCK)(entry);

/** The entries of `entries` that `list` does not cover (one index built for the whole check). */
export function uncovered(entries: readonly string[], list: readonly string[], block = false): string[] {
  const covered = coveredBy(list, block ? BLOCK : {});
  return entries.filter((e) => !covered(e));
}

/**
 * A sound under-approximation of the intersection of two allow-lists: an entry of either list
 * survives when the other list covers it, so `*@acme.com` ∩ `[bob@acme.com, eve@evil.com]` is
 * `[bob@acme.com]`. An entry that another survivor already covers is dropped as redundant.
 * An empty result means nothing is allowed for that field.
 */
export function intersectAllowLists(base: readonly string[], narrower: readonly string[]): string[] {
  const inNarrower = coveredBy(narrower);
  const inBase = coveredBy(base);
  const candidates = [...base.filter(inNarrower), ...narrower.filter(inBase)];
  const unique = [...new Set(candidates)];
  // Only a wildcard entry can make another entry redundant.
  const wildcards = unique.filter(hasWildcard);
  return unique.filter(
    (entry) =>
      !wildcards.some((other) => other !== entry && globCovers(other, entry) && !globCovers(entry, other)),
  );
}

/** Union, base order first, without exact duplicates. */
export const unionLists = (a: readonly string[], b: readonly string[]): string[] => [
  ...new Set([...a, ...b]),
];
