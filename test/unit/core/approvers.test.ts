import { describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../../src/chat/channels.js';
import { loadConfig } from '../../../src/config.js';
import {
  approverKey,
  attributeApprover,
  distinctApprovals,
  isRequester,
  NO_LINKS,
  parseApproverLinks,
} from '../../../src/core/approvers.js';
import type { Actor } from '../../../src/core/audit/index.js';

/** The user-id syntax of the channels this build has (src/chat/channels.ts). */
const SHAPES = channelIdentityShapes();

const DISCORD_ALICE = '123456789012345678';
const links = parseApproverLinks(
  ` alice = slack:U0ALICE, discord:${DISCORD_ALICE} ; bob=slack:W0BOB,operator:opk_bob1 `,
  SHAPES,
);

const slackAlice = (teamId?: string): Actor => ({
  type: 'approver',
  platform: 'slack',
  userId: 'U0ALICE',
  userName: 'alice',
  ...(teamId ? { teamId } : {}),
});

describe('APPROVER_LINKS', () => {
  it('maps every identity to its person', () => {
    expect([...links.persons]).toEqual([
      ['slack:U0ALICE', 'alice'],
      [`discord:${DISCORD_ALICE}`, 'alice'],
      ['slack:W0BOB', 'bob'],
      ['operator:opk_bob1', 'bob'],
    ]);
  });

  it.each([
    ['alice=slack:U1X,discord:123456789012345678;bob=slack:U1X', /linked to both "alice" and "bob"/],
    ['alice=slack:U1X;alice=slack:U2X', /listed twice/],
    ['alice=', /no identities/],
    ['slack:U1X', /expected <person>=/],
    ['alice=teams:abc', /expected slack:U…/],
    ['alice=discord:456', /expected slack:U…/],
    ['alice=slack:u1x', /expected slack:U…/],
  ])('refuses %s', (text, message) => {
    expect(() => parseApproverLinks(text, SHAPES)).toThrow(message);
  });

  it('is read from the environment, and a bad value stops the start naming the variable', () => {
    const config = loadConfig({ APPROVER_LINKS: 'alice=slack:U0ALICE' });
    expect(config.APPROVER_LINKS?.persons.get('slack:U0ALICE')).toBe('alice');
    expect(() => loadConfig({ APPROVER_LINKS: 'alice=slack:U1X;bob=slack:U1X' })).toThrow(
      /APPROVER_LINKS: slack:U1X is linked to both/,
    );
  });
});

describe('approverKey: one person, one key', () => {
  it('ignores the Slack workspace and the Discord guild', () => {
    expect(approverKey(slackAlice('T1'))).toBe('slack:U0ALICE');
    expect(approverKey(slackAlice())).toBe('slack:U0ALICE');
    const member = (guildId?: string): Actor => ({
      type: 'approver',
      platform: 'discord',
      userId: '999999999999999999',
      ...(guildId ? { guildId } : {}),
    });
    expect(approverKey(member('1'))).toBe(approverKey(member()));
    expect(approverKey({ type: 'operator', id: 'opk_x', platform: 'api' })).toBe('operator:opk_x');
  });

  it('is the person for a linked identity, on any platform, whatever person a record claims', () => {
    expect(approverKey(slackAlice('T1'), links)).toBe('person:alice');
    expect(approverKey({ type: 'approver', platform: 'discord', userId: DISCORD_ALICE }, links)).toBe(
      'person:alice',
    );
    expect(approverKey({ type: 'operator', id: 'opk_bob1', platform: 'cli' }, links)).toBe('person:bob');
    // A stored `person` is not trusted: the links decide.
    expect(approverKey({ ...slackAlice(), person: 'bob' }, NO_LINKS)).toBe('slack:U0ALICE');
    expect(attributeApprover({ ...slackAlice(), person: 'bob' }, links).person).toBe('alice');
    expect(attributeApprover({ ...slackAlice(), person: 'bob' }, NO_LINKS)).not.toHaveProperty('person');
  });

  it('collapses stored records of one person, whatever key they were stored under', () => {
    const at = '2025-01-01T00:00:00.000Z';
    const records = [
      { key: 'slack:T1:U0ALICE', actor: slackAlice('T1'), at },
      { key: 'slack::U0ALICE', actor: slackAlice(), at },
      {
        key: `discord:9:${DISCORD_ALICE}`,
        actor: { type: 'approver' as const, platform: 'discord' as const, userId: DISCORD_ALICE },
        at,
      },
    ];
    expect(distinctApprovals(records, NO_LINKS)).toHaveLength(2);
    expect(distinctApprovals(records, links)).toEqual([records[0]]);
  });
});

describe('isRequester: the self-approval ban', () => {
  it('matches a bare id, an identity, or the linked person, without case', () => {
    const discordAlice: Actor = { type: 'approver', platform: 'discord', userId: DISCORD_ALICE };
    for (const requester of ['U0ALICE', 'slack:U0ALICE', 'alice', 'ALICE', 'person:alice', DISCORD_ALICE]) {
      expect(isRequester(requester, discordAlice, links), requester).toBe(true);
      expect(isRequester(requester, slackAlice('T1'), links), requester).toBe(true);
    }
    expect(isRequester('bob', slackAlice(), links)).toBe(false);
    expect(isRequester('W0BOB', slackAlice(), links)).toBe(false);
    // Without links only the clicker's own id is theirs.
    expect(isRequester(DISCORD_ALICE, slackAlice(), NO_LINKS)).toBe(false);
    expect(isRequester('U0ALICE', slackAlice(), NO_LINKS)).toBe(true);
    for (const nothing of [undefined, null, '', ' ', 42])
      expect(isRequester(nothing, slackAlice(), links)).toBe(false);
  });
});
