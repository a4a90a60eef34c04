/**
 * Where a policy's `channels`, `approvers` and `escalateTo` entries belong. An entry is written
 * `<channel>:<rest>` (`slack:C123`, `discord:role:42`) or bare (`C123`, `U123`). The prefix is a
 * channel only when it names a channel this build knows, so an id that happens to contain a
 * colon (`role:42`) stays bare; each channel then reads `rest` in its own syntax.
 */
export interface RoutedEntry {
  /** The channel the entry names, or null for a bare entry. */
  channel: string | null;
  rest: string;
}

export function routeEntry(entry: string, knownChannels: ReadonlySet<string>): RoutedEntry {
  const colon = entry.indexOf(':');
  if (colon > 0) {
    const channel = entry.slice(0, colon);
    if (knownChannels.has(channel)) return { channel, rest: entry.slice(colon + 1) };
  }
  return { channel: null, rest: entry };
}

/**
 * The entries of `entries` meant for `channel`: its own prefixed ones, and bare ones when
 * `withBare` (approver lists offer bare ids to every channel, which match only its own users;
 * targets give bare entries to the one channel that claims them). Another channel's entries,
 * configured here or not, never leak in as bare ids.
 */
export function entriesFor(
  channel: string,
  entries: readonly string[],
  knownChannels: ReadonlySet<string>,
  withBare: boolean,
): string[] {
  return entries.flatMap((entry) => {
    const routed = routeEntry(entry, knownChannels);
    if (routed.channel === channel) return [routed.rest];
    return routed.channel === null && withBare ? [routed.rest] : [];
  });
}
