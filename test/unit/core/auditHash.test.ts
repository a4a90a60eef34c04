import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, hashDetails } from '../../../src/core/audit/event.js';

/**
 * The audit chain's hashes are stored: a trail written by any earlier version must still verify,
 * so the bytes hashed may never change, however the code that builds them is rewritten. These
 * expected values were produced by the first implementation (Object.entries, filter, sort, map).
 */
describe('audit hash format (fixed for good)', () => {
  // biome-ignore lint/suspicious/noSparseArray: a hole must keep its historical encoding
  const sparse = [1, , 3];
  const details = {
    zeta: 1,
    Alpha: [3, 'b', null, undefined, { y: 2, x: [] }],
    _under: true,
    é: 'accent',
    'a"b\n': -0,
    nested: {
      when: new Date('2026-12-07T04:00:00.123Z'),
      big: 1e21,
      small: 0.1,
      skip: undefined,
      empty: {},
    },
    sparse,
    '10': 'ten',
    '9': 'nine',
    '😀': 'emoji',
    ｚ: 'fullwidth',
  };

  it('serialises with keys in UTF-16 order, undefined fields left out, and Dates as ISO text', () => {
    expect(canonicalJson(details)).toBe(
      '{"10":"ten","9":"nine","Alpha":[3,"b",null,null,{"x":[],"y":2}],"_under":true,"a\\"b\\n":0,' +
        '"nested":{"big":1e+21,"empty":{},"small":0.1,"when":"2026-12-07T04:00:00.123Z"},' +
        '"sparse":[1,,3],"zeta":1,"é":"accent","😀":"emoji","ｚ":"fullwidth"}',
    );
  });

  it('hashes details and chain links to the same values as ever', () => {
    expect(hashDetails(details)).toBe('51f2dd4469f5bc014c52ca4d82ecb793d70615a64248fa33ebd16e846100d0bb');
    expect(
      chainHash('0'.repeat(64), 7, {
        id: 'evt_1',
        occurredAt: new Date('2026-12-07T04:00:00.000Z'),
        type: 'verify',
        actor: { type: 'agent', id: 'agent_1', name: 'n', userName: undefined },
        agentId: null,
        permissionId: 'perm_1',
        detailsHash: 'ab',
      }),
    ).toBe('84bd5d547a76974ba59be461b72646b6e2709bcd0f37c5dafe8ea4a3f2fdcb98');
  });
});
