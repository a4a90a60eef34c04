import { describe, expect, it } from 'vitest';
import { csvCell, csvLine, jsonLine } from '../../../src/core/audit/export.js';

describe('audit export formats', () => {
  it('quotes CSV cells per RFC 4180', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell(null)).toBe('');
    expect(csvCell(42)).toBe('42');
    expect(csvCell({ a: 'x,"y"' })).toBe('"{""a"":""x,\\""y\\""""}"');
  });

  it('neutralises cells a spreadsheet would run as formulas', () => {
    expect(csvCell('=SUM(A1)')).toBe("'=SUM(A1)");
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@cmd')).toBe("'@cmd");
    expect(csvCell('=HYPERLINK("x","y")')).toBe('"\'=HYPERLINK(""x"",""y"")"');
    expect(csvCell('\tx')).toBe("'\tx");
  });

  const row = {
    seq: 7,
    id: 'evt_1',
    occurredAt: new Date('2025-01-01T00:00:00Z'),
    type: 'use',
    actorType: 'agent',
    actorJson: JSON.stringify({ type: 'agent', name: '=evil' }),
    agentId: '@agent',
    permissionId: null,
    detailsJson: JSON.stringify({ note: 'a\r\nb' }),
    ip: '10.0.0.1',
    userAgent: '-ua',
    detailsHash: 'h',
    chainIndex: 3,
    prevHash: 'p',
    hash: 'x',
    redactedAt: null,
  };

  it('writes one CSV record and one JSON line per event', () => {
    expect(csvLine(row)).toBe(
      '7,evt_1,2025-01-01T00:00:00.000Z,use,agent,"{""type"":""agent"",""name"":""=evil""}",\'@agent,,"{""note"":""a\\r\\nb""}",10.0.0.1,\'-ua,h,3,p,x,\r\n',
    );
    const parsed = JSON.parse(jsonLine(row));
    expect(parsed).toEqual({
      seq: 7,
      id: 'evt_1',
      occurredAt: '2025-01-01T00:00:00.000Z',
      type: 'use',
      actor: { type: 'agent', name: '=evil' },
      agentId: '@agent',
      permissionId: null,
      details: { note: 'a\r\nb' },
      ip: '10.0.0.1',
      userAgent: '-ua',
      detailsHash: 'h',
      chainIndex: 3,
      prevHash: 'p',
      hash: 'x',
      redactedAt: null,
    });
    expect(jsonLine(row).endsWith('}\n')).toBe(true);
  });
});
