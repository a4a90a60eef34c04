import type { Actor } from './audit/index.js';
import type { ApprovalRecord } from './permission.js';

/**
 * Who an approver is (DESIGN §13): quorum, the self-approval ban and "already decided by you"
 * are rules over persons, not over the button someone pressed. A person is known by the
 * platform's user id — Slack user ids are global within an Enterprise org and Discord ids are
 * global, so the workspace or guild a click came from (absent in org-wide installs, shared
 * channels and DMs) is not part of who clicked — and, when an operator links identities on
 * several platforms to one person (APPROVER_LINKS), by that person.
 *
 * Pure, so that stored persons can replace the configured links later without touching a rule.
 */
export interface ApproverLinks {
  /** Identity (`slack:U123`, `discord:456…`, `operator:opk_…`) → person name. */
  readonly persons: ReadonlyMap<string, string>;
}

export const NO_LINKS: ApproverLinks = Object.freeze({ persons: new Map<string, string>() });

/** A person's name, in APPROVER_LINKS and as a stored approver's name. */
export const PERSON_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A channel's registered name (`slack`, `discord`, `web`, …): also the prefix of its identities. */
export const CHANNEL_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * How a channel writes a user id, for checking APPROVER_LINKS: each channel declares its own
 * (src/chat/channels.ts), so core names none of them. `hint` is shown in the error.
 */
export interface IdentityShape {
  readonly pattern: RegExp;
  readonly hint: string;
}

/** Operator keys are identities too (an operator who also approves in chat is one person). */
const OPERATOR_SHAPE: IdentityShape = { pattern: /^opk_[A-Za-z0-9]{1,64}$/, hint: 'operator:opk_…' };

/**
 * The identity syntax an operator may write, by channel (each channel's own, and operator keys),
 * and the sentence naming it for errors: `expected slack:U…/W…, discord:<user id> or operator:opk_…`.
 */
export class IdentitySyntax {
  private readonly known: Record<string, IdentityShape>;
  readonly expected: string;

  constructor(shapes: Readonly<Record<string, IdentityShape>>) {
    this.known = { ...shapes, operator: OPERATOR_SHAPE };
    const hints = Object.entries(this.known).map(([channel, shape]) =>
      shape.hint.startsWith(`${channel}:`) ? shape.hint : `${channel}:${shape.hint}`,
    );
    this.expected = `${hints.slice(0, -1).join(', ')}${hints.length > 1 ? ' or ' : ''}${hints.at(-1)}`;
  }

  /** `slack:U123` is a channel's user id written as that channel writes it. */
  accepts(identity: string): boolean {
    const colon = identity.indexOf(':');
    if (colon < 0) return false;
    const channel = identity.slice(0, colon);
    const shape = Object.hasOwn(this.known, channel) ? this.known[channel] : undefined;
    return shape?.pattern.test(identity.slice(colon + 1)) ?? false;
  }
}

/**
 * `alice=slack:U123,discord:123456789012345678;bob=slack:U9` → the links. Throws an Error
 * naming the first bad entry: an identity in two persons, or one person declared twice, is a
 * configuration mistake that would silently merge or split votes. `shapes`: the user-id syntax
 * of each channel, by channel name.
 */
export function parseApproverLinks(
  text: string,
  shapes: Readonly<Record<string, IdentityShape>>,
): ApproverLinks {
  const syntax = new IdentitySyntax(shapes);
  const persons = new Map<string, string>();
  const seen = new Set<string>();
  for (const entry of text.split(';').map((s) => s.trim())) {
    if (!entry) continue;
    const eq = entry.indexOf('=');
    const name = eq < 0 ? '' : entry.slice(0, eq).trim();
    if (!PERSON_NAME.test(name)) {
      throw new Error(
        `"${entry.slice(0, 80)}": expected <person>=<platform>:<id>,… (person: letters, digits, . _ -)`,
      );
    }
    if (seen.has(name.toLowerCase())) throw new Error(`person "${name}" is listed twice`);
    seen.add(name.toLowerCase());
    const identities = entry
      .slice(eq + 1)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (identities.length === 0) throw new Error(`person "${name}" has no identities`);
    for (const identity of identities) {
      if (!syntax.accepts(identity)) {
        throw new Error(`"${identity.slice(0, 80)}" (person "${name}"): expected ${syntax.expected}`);
      }
      const other = persons.get(identity);
      if (other !== undefined) throw new Error(`${identity} is linked to both "${other}" and "${name}"`);
      persons.set(identity, name);
    }
  }
  return Object.freeze({ persons });
}

/**
 * Where the rules read the links from: a fixed set (APPROVER_LINKS alone), or the current one
 * of a directory that follows stored approvers (a synchronous read of a cached value).
 */
export type LinksSource = ApproverLinks | (() => ApproverLinks);

export const linksProvider = (source: LinksSource = NO_LINKS): (() => ApproverLinks) =>
  typeof source === 'function' ? source : () => source;

/** Actor platforms that are not channels a person clicks in: the API and the CLI act as operators. */
const OPERATOR_PLATFORMS: ReadonlySet<string> = new Set(['api', 'cli']);

/**
 * The channel identity: `slack:U123`, `discord:456…`, `operator:opk_…` — an approver who acted
 * in a channel is known by the channel's user id (no workspace or guild); anyone else by type and id.
 */
export function identityKey(actor: Actor): string {
  if (actor.type === 'approver' && actor.platform && !OPERATOR_PLATFORMS.has(actor.platform)) {
    return `${actor.platform}:${actor.userId ?? actor.id ?? ''}`;
  }
  return `${actor.type}:${actor.id ?? actor.userId ?? ''}`;
}

/**
 * A person who decides (DESIGN §13): the approver id quorum and the self-approval ban compare,
 * a display name, and every channel identity known to be theirs. An identity linked to nobody is
 * a person of its own.
 */
export interface Approver {
  /** `person:alice` when linked, else the identity itself (`slack:U123`). */
  id: string;
  displayName: string;
  /** `slack:U…`, `discord:…`, `operator:opk_…` (later `web:<approver id>`). */
  identities: string[];
}

/** The person behind an actor, under the current links. */
export function approverOf(actor: Actor, links: ApproverLinks = NO_LINKS): Approver {
  const identity = identityKey(actor);
  const person = links.persons.get(identity);
  if (person === undefined) return { id: identity, displayName: displayName(actor), identities: [identity] };
  const identities = [...links.persons].filter(([, linked]) => linked === person).map(([id]) => id);
  return { id: `person:${person}`, displayName: person, identities };
}

/**
 * The one display-name rule for an actor (cards, refusals, errors): the user's name on the
 * channel, an operator's or agent's name, then ids; `someone` when nobody is known.
 */
export function displayName(actor: Actor | null): string {
  if (!actor) return 'someone';
  return actor.userName ?? actor.name ?? actor.userId ?? actor.id ?? actor.type;
}

/** The linked person's name, if the actor's identity is linked to one. */
export function personOf(actor: Actor, links: ApproverLinks): string | null {
  return links.persons.get(identityKey(actor)) ?? null;
}

/**
 * The key quorum counts: one person is one vote whichever platform, workspace or button they
 * used. Always computed from the actor and the current links — never trust a stored key or a
 * stored `person` — so votes recorded before an upgrade or a change of links still match.
 */
export function approverKey(actor: Actor, links: ApproverLinks = NO_LINKS): string {
  return approverOf(actor, links).id;
}

/** The actor as the audit trail and the card show it: naming the linked person, if any. */
export function attributeApprover(actor: Actor, links: ApproverLinks): Actor {
  const { person: _stale, ...rest } = actor;
  const person = personOf(rest, links);
  return person === null ? rest : { ...rest, person };
}

/** One record per person (the first), whatever keys the records were stored under. */
export function distinctApprovals(
  approvals: readonly ApprovalRecord[],
  links: ApproverLinks,
): ApprovalRecord[] {
  const seen = new Set<string>();
  return approvals.filter((a) => {
    const key = approverKey(a.actor, links);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The self-approval ban: is this actor the person the agent acts for (`context.user_id`)? The
 * requester may be named by a bare platform id (`U123`), an identity (`slack:U123`) or a person
 * (`alice`, `person:alice`); any identity linked to the same person counts as them. Compared
 * without case, so a differently-cased name cannot slip past.
 */
export function isRequester(requester: unknown, actor: Actor, links: ApproverLinks): boolean {
  if (typeof requester !== 'string' || requester.trim() === '') return false;
  const names = new Set<string>();
  const addIdentity = (identity: string) => {
    names.add(identity.toLowerCase());
    names.add(identity.slice(identity.indexOf(':') + 1).toLowerCase());
  };
  addIdentity(identityKey(actor));
  const person = personOf(actor, links);
  if (person !== null) {
    names.add(person.toLowerCase());
    names.add(`person:${person}`.toLowerCase());
    for (const [identity, linked] of links.persons) if (linked === person) addIdentity(identity);
  }
  return names.has(requester.trim().toLowerCase());
}
