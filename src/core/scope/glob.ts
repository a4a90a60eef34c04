/**
 * Globs for allow/block lists: `*` matches any run of characters (including none), `?` exactly
 * one character; everything else is literal (there is no escape). Matching works on code points
 * so `?` matches one visible character even outside the BMP, and runs without regexes, so a list
 * entry can never become a ReDoS.
 */

export interface GlobOptions {
  /** Block lists match case-insensitively so `EVIL@x.com` cannot dodge `evil@x.com`. */
  readonly caseInsensitive?: boolean;
}

const STAR = '*';
const ANY = '?';

const chars = (s: string, options: GlobOptions): string[] =>
  Array.from(options.caseInsensitive ? s.toLowerCase() : s);

export const hasWildcard = (entry: string): boolean => entry.includes(STAR) || entry.includes(ANY);

/**
 * The form block lists compare in, on both sides: NFKC (full-width and ligature letters fold to
 * plain ones), trimmed and lower case, so " EVIL@x.com" and "ｅｖｉｌ@x.com" cannot dodge
 * "evil@x.com". Allow lists compare as written: a value that differs from every entry is refused.
 */
export const blockForm = (text: string): string => text.normalize('NFKC').trim().toLowerCase();

/** Does `value` match `pattern`? Greedy star with backtracking to the last star: O(n·m) worst case. */
export function globMatch(pattern: string, value: string, options: GlobOptions = {}): boolean {
  const p = chars(pattern, options);
  const v = chars(value, options);
  let pi = 0;
  let vi = 0;
  let starAt = -1;
  let starResume = 0;
  while (vi < v.length) {
    const pc = p[pi];
    if (pc === STAR) {
      starAt = pi;
      starResume = vi;
      pi++;
    } else if (pc !== undefined && (pc === ANY || pc === v[vi])) {
      pi++;
      vi++;
    } else if (starAt !== -1) {
      // Let the last star swallow one more character and retry from there.
      pi = starAt + 1;
      starResume++;
      vi = starResume;
    } else {
      return false;
    }
  }
  while (p[pi] === STAR) pi++;
  return pi === p.length;
}

/**
 * Is every string matched by `inner` also matched by `outer`? Used to decide whether a narrowed
 * allow-list entry stays inside the granted one (`a@acme.com` inside `*@acme.com`) and whether a
 * block-list entry is still covered. The simulation lets each `*` of `outer` absorb characters
 * and whole stars of `inner`; it is sound (true only when containment holds) but may answer false
 * for exotic equivalent globs, which errs on the strict side.
 */
export function globCovers(outer: string, inner: string, options: GlobOptions = {}): boolean {
  const o = chars(outer, options);
  const n = chars(inner, options);
  // dp over suffixes: next[j] is covers(o[i+1..], n[j..]), row[j] is covers(o[i..], n[j..]).
  let next: boolean[] = new Array<boolean>(n.length + 1).fill(false);
  next[n.length] = true; // empty outer covers empty inner
  for (let i = o.length - 1; i >= 0; i--) {
    const row: boolean[] = new Array<boolean>(n.length + 1).fill(false);
    const oc = o[i];
    row[n.length] = oc === STAR && next[n.length] === true;
    for (let j = n.length - 1; j >= 0; j--) {
      const ic = n[j];
      if (oc === STAR) {
        // Outer star matches nothing more (next[j]) or absorbs inner's char/star and stays (row[j+1]).
        row[j] = next[j] === true || row[j + 1] === true;
      } else if (ic === STAR) {
        row[j] = false; // inner may produce any run here; a single literal or `?` cannot cover it
      } else if (oc === ANY) {
        row[j] = next[j + 1] === true;
      } else {
        row[j] = ic !== ANY && oc === ic && next[j + 1] === true;
      }
    }
    next = row;
  }
  return next[0] === true;
}
