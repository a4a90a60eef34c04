import { describe, expect, it } from 'vitest';
import { formatDuration, groupThousands, ProgressBar } from '../../src/cli/progress.js';

/** A bar on a fake clock writing to memory; `screen()` is the terminal line as a person sees it. */
function fakeBar(total: number | null, columns?: number) {
  let now = 1_000_000;
  const writes: string[] = [];
  const bar = new ProgressBar({
    unit: 'rows',
    total,
    write: (text) => writes.push(text),
    now: () => now,
    ...(columns === undefined ? {} : { columns }),
  });
  return {
    bar,
    writes,
    advance: (ms: number) => {
      now += ms;
    },
    /** The last line drawn, without the carriage return and the clear-to-end. */
    screen: () => (writes.at(-1) ?? '').replace(/^\r/, '').replace('\x1b[K', ''),
  };
}

describe('ProgressBar', () => {
  it('draws the bar, the percentage, done/total with grouped thousands and the time left', () => {
    const t = fakeBar(1_000_000);
    t.advance(2000);
    t.bar.update(420_000);
    // 420 000 rows in 2 s: 580 000 more at 210 000/s ≈ 2.8 s.
    expect(t.screen()).toBe('[########------------]  42% 420 000/1 000 000 rows · 3 s left');
    t.advance(10_000);
    t.bar.update(1_000_000);
    expect(t.screen()).toBe('[####################] 100% 1 000 000/1 000 000 rows · 0 s left');
  });

  it('redraws in place and at most every 100 ms, however often it is updated', () => {
    const t = fakeBar(10_000);
    for (let i = 1; i <= 1000; i += 1) {
      t.bar.update(i * 10);
      t.advance(1); // 1000 updates over 1 s
    }
    expect(t.writes.length).toBeGreaterThanOrEqual(10);
    expect(t.writes.length).toBeLessThanOrEqual(11);
    for (const w of t.writes) {
      expect(w.startsWith('\r')).toBe(true);
      expect(w.endsWith('\x1b[K')).toBe(true);
      expect(w).not.toContain('\n');
    }
  });

  it('says "estimating" until it has seen a second of progress', () => {
    const t = fakeBar(1000);
    t.bar.update(0);
    expect(t.screen()).toBe('[--------------------]   0% 0/1 000 rows · estimating…');
    t.advance(500);
    t.bar.update(100);
    expect(t.screen()).toContain('estimating…');
    t.advance(500);
    t.bar.update(200);
    // 200 in 1 s: 800 more take 4 s.
    expect(t.screen()).toBe('[####----------------]  20% 200/1 000 rows · 4 s left');
  });

  it('finishes with the elapsed time and a newline, once', () => {
    const t = fakeBar(5000);
    t.advance(75_000);
    t.bar.finish(5000);
    t.bar.finish(5000);
    expect(t.writes).toHaveLength(1);
    expect(t.writes[0]).toBe('\r[####################] 100% 5 000/5 000 rows · 1 min 15 s\x1b[K\n');
  });

  it('grows the total when more arrive than were counted (events added during an export)', () => {
    const t = fakeBar(100);
    t.advance(1000);
    t.bar.finish(103);
    expect(t.screen()).toBe('[####################] 100% 103/103 rows · 1 s\n');
  });

  it('an empty export is complete at once', () => {
    const t = fakeBar(0);
    t.bar.finish(0);
    expect(t.screen()).toBe('[####################] 100% 0/0 rows · 0 s\n');
  });

  it('counts without a bar when the total is unknown', () => {
    const t = fakeBar(null);
    t.advance(200);
    t.bar.update(12_345);
    expect(t.screen()).toBe('12 345 rows');
    t.advance(3000);
    t.bar.finish(20_000);
    expect(t.screen()).toBe('20 000 rows · 3 s\n');
  });

  it('stays within the terminal width, so the line never wraps', () => {
    const t = fakeBar(1_000_000, 40);
    t.advance(2000);
    t.bar.update(1000);
    expect(t.screen()).toHaveLength(39);
    expect(t.screen().startsWith('[--------------------]   0% 1 000/')).toBe(true);
  });
});

describe('formatting', () => {
  it('groups thousands with a space', () => {
    expect(groupThousands(0)).toBe('0');
    expect(groupThousands(999)).toBe('999');
    expect(groupThousands(1000)).toBe('1 000');
    expect(groupThousands(1_234_567)).toBe('1 234 567');
  });

  it('writes durations in seconds, minutes or hours', () => {
    expect(formatDuration(0)).toBe('0 s');
    expect(formatDuration(12.4)).toBe('12 s');
    expect(formatDuration(59.6)).toBe('1 min 00 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(3720)).toBe('1 h 02 min');
  });
});
