/**
 * Set operations on allow/block lists that understand globs, shared by narrowing (which merges)
 * and the widening check (which compares).
 */
import { globCovers } from './glob.js';

/** Block lists compare case-insensitively, matching how they are enforced. */
const BLOCK = { caseInsensitive: true } as const;

/** Is `entry` inside some entry of `list`? (`a@acme.com` is inside `*@acme.com`.) */
export const allowCovered = (entry: string, list: readonly string[]): boolean =>
  list.some((outer) => globCovers(outer, entry));

/** Is the blocked `entry` still blocked by some entry of `list`? */
export const blockCovered = (entry: string, list: readonly string[]): boolean =>
  list.some((outer) => globCovers(outer, entry, BLOCK));

/**
 * A sound under-approximation of the intersection of two allow-lists: an entry of either list
 * survives when the other list covers it, so `*@acme.com` ∩ `[bob@acme.com, eve@evil.com]` is
 * `[bob@acme.com]`. An entry that another survivor already covers is dropped as redundant.
 * An empty result means nothing is allowed for that field.
 */
export function intersectAllowLists(base: readonly string[], narrower: readonly string[]): string[] {
  const candidates = [
    ...base.filter((entry) => allowCovered(entry, narrower)),
    ...narrower.filter((entry) => allowCovered(entry, base)),
  ];
  const unique = [...new Set(candidates)];
  return unique.filter(
    (entry) =>
      !unique.some((other) => other !== entry && globCovers(other, entry) && !globCovers(entry, other)),
  );
}

/** Union, base order first, without exact duplicates. */
export const unionLists = (a: readonly string[], b: readonly string[]): string[] => [
  ...new Set([...a, ...b]),
];
