import { describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../../src/chat/channels.js';
import { approverKey, isRequester, NO_LINKS, parseApproverLinks } from '../../../src/core/approvers.js';
import { mergePersons } from '../../../src/core/persons.js';

const SHAPES = channelIdentityShapes();
const slack = (userId: string) => ({ type: 'approver' as const, platform: 'slack', userId });
const discord = (userId: string) => ({ type: 'approver' as const, platform: 'discord', userId });

/**
 * APPROVER_LINKS and stored approvers as one set of persons. The API keeps them apart, but
 * APPROVER_LINKS can change at a restart: an overlap must never split one human into two votes.
 */
describe('mergePersons', () => {
  it('stored approvers are persons named by the account, beside the configured ones', () => {
    const configured = parseApproverLinks('carol=slack:U0CAROL', SHAPES);
    const { links, merged } = mergePersons(configured, [
      { name: 'alice', identities: ['slack:U0ALICE', 'discord:111111111111111111', 'web:apr_1'] },
    ]);
    expect(approverKey(slack('U0ALICE'), links)).toBe('person:alice');
    expect(approverKey(discord('111111111111111111'), links)).toBe('person:alice');
    expect(approverKey(slack('U0CAROL'), links)).toBe('person:carol');
    expect(merged).toEqual([]);
  });

  it('an identity in both sources makes one person of the two, named after the account', () => {
    const configured = parseApproverLinks('al=slack:U0ALICE,operator:opk_al', SHAPES);
    const { links, merged } = mergePersons(configured, [
      { name: 'alice', identities: ['slack:U0ALICE', 'discord:111111111111111111'] },
    ]);
    const keys = new Set(
      [slack('U0ALICE'), discord('111111111111111111'), { type: 'operator' as const, id: 'opk_al' }].map(
        (a) => approverKey(a, links),
      ),
    );
    expect([...keys]).toEqual(['person:alice']);
    // The ban follows: a request for the configured name is hers under every identity.
    expect(isRequester('opk_al', discord('111111111111111111'), links)).toBe(true);
    expect(merged).toEqual([{ name: 'alice', members: ['alice (stored)', 'al (APPROVER_LINKS)'] }]);
  });

  it('names differing only in case are one person, and a bridge joins two accounts', () => {
    const configured = parseApproverLinks('Alice=discord:111111111111111111;x=slack:U0A,slack:U0B', SHAPES);
    const { links } = mergePersons(configured, [
      { name: 'alice', identities: ['slack:U0ALICE'] },
      { name: 'a2', identities: ['slack:U0A'] },
      { name: 'b2', identities: ['slack:U0B'] },
    ]);
    expect(approverKey(discord('111111111111111111'), links)).toBe('person:alice');
    expect(approverKey(slack('U0A'), links)).toBe(approverKey(slack('U0B'), links));
  });

  it('no accounts: exactly APPROVER_LINKS', () => {
    const configured = parseApproverLinks('carol=slack:U0CAROL,discord:333333333333333333', SHAPES);
    expect(mergePersons(configured, []).links.persons).toEqual(configured.persons);
    expect(mergePersons(NO_LINKS, []).links.persons.size).toBe(0);
  });
});
