import type { ApproverLinks } from './approvers.js';

/** A stored approver as the rules see it: a name, and every identity that is theirs. */
export interface StoredPerson {
  name: string;
  /** Channel identities, and `web:<approver id>` for the web channel. */
  identities: readonly string[];
}

export interface MergedPersons {
  links: ApproverLinks;
  /** Persons of both sources that had to become one, by the name they now vote under. */
  merged: { name: string; members: string[] }[];
}

/**
 * APPROVER_LINKS and stored approvers as one set of persons. The approver API refuses a name or
 * an identity APPROVER_LINKS already has, but APPROVER_LINKS can change at a restart; then any
 * two persons sharing an identity, or a name (case-insensitively: `person:Alice` and
 * `person:alice` must not be two votes), are one person, named after the stored approver.
 * Merging errs towards fewer votes: keeping them apart would let one human vote twice, or slip
 * past the self-approval ban under their other identity.
 */
export function mergePersons(configured: ApproverLinks, stored: readonly StoredPerson[]): MergedPersons {
  const parent = new Map<string, string>();
  const find = (node: string): string => {
    let root = node;
    for (let up = parent.get(root); up !== undefined && up !== root; up = parent.get(root)) root = up;
    parent.set(node, root);
    return root;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(rb, ra);
  };
  /** Node (a lower-cased name) → the name it was first given (a stored one first), and its labels. */
  const names = new Map<string, { name: string; labels: string[] }>();
  const owner = new Map<string, string>();
  const add = (name: string, identity: string, source: string) => {
    const node = name.toLowerCase();
    if (!parent.has(node)) parent.set(node, node);
    const given = names.get(node) ?? { name, labels: [] };
    if (!given.labels.includes(`${name} (${source})`)) given.labels.push(`${name} (${source})`);
    names.set(node, given);
    const earlier = owner.get(identity);
    if (earlier === undefined) owner.set(identity, node);
    else union(earlier, node);
  };
  for (const person of stored) for (const identity of person.identities) add(person.name, identity, 'stored');
  for (const [identity, name] of configured.persons) add(name, identity, 'APPROVER_LINKS');

  // Each group votes under the first name it was given: a stored approver's when it has one.
  const groupName = new Map<string, string>();
  const members = new Map<string, string[]>();
  for (const [node, given] of names) {
    const root = find(node);
    if (!groupName.has(root)) groupName.set(root, given.name);
    members.set(root, [...(members.get(root) ?? []), ...given.labels]);
  }
  const persons = new Map<string, string>();
  for (const [identity, node] of owner) persons.set(identity, groupName.get(find(node)) ?? node);
  const merged = [...members]
    .filter(([, all]) => all.length > 1)
    .map(([root, all]) => ({ name: groupName.get(root) ?? root, members: all }));
  return { links: Object.freeze({ persons }), merged };
}

/** How the web channel (the approval page, to come) will name an approver who signed in. */
export const webIdentity = (approverId: string): string => `web:${approverId}`;
