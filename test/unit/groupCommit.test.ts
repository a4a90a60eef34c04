import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/services/groupCommit.js';

/** A writer whose writes finish when the test says so, recording what each carried. */
function heldWriter(refuse: (item: number) => boolean = () => false) {
  const writes: { items: number[]; finish: () => void }[] = [];
  const write = (items: readonly number[]) =>
    new Promise<void>((resolve, reject) => {
      writes.push({
        items: [...items],
        finish: () => (items.some(refuse) ? reject(new Error('refused')) : resolve()),
      });
    });
  return { writes, write };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('group commit', () => {
  it('writes a lone item at once, and gathers the items that arrive meanwhile into the next write', async () => {
    const w = heldWriter();
    const group = new GroupCommit<number>({ write: w.write, maxInFlight: 1, maxBatch: 100 });
    const settled: number[] = [];
    const first = group.submit(1).then(() => settled.push(1));
    expect(w.writes.map((x) => x.items)).toEqual([[1]]);

    const later = [2, 3, 4].map((n) => group.submit(n).then(() => settled.push(n)));
    await tick();
    // One write in flight: the others wait for it, and nobody is answered before their write.
    expect(w.writes.map((x) => x.items)).toEqual([[1]]);
    expect(settled).toEqual([]);

    w.writes[0]?.finish();
    await first;
    await tick();
    expect(settled).toEqual([1]);
    expect(w.writes.map((x) => x.items)).toEqual([[1], [2, 3, 4]]);
    w.writes[1]?.finish();
    await Promise.all(later);
    expect(settled).toEqual([1, 2, 3, 4]);
  });

  it('with gatherTurn, puts everything submitted in one turn of the event loop into one write', async () => {
    const w = heldWriter();
    const group = new GroupCommit<number>({
      write: w.write,
      maxInFlight: 2,
      maxBatch: 100,
      gatherTurn: true,
    });
    const first = [1, 2, 3].map((n) => group.submit(n));
    // Nothing in flight, yet nothing written during the turn that submitted.
    expect(w.writes).toEqual([]);
    await tick();
    expect(w.writes.map((x) => x.items)).toEqual([[1, 2, 3]]);
    const second = [4, 5].map((n) => group.submit(n));
    await tick();
    // A free slot: the next turn's items go at once, in their own write.
    expect(w.writes.map((x) => x.items)).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    for (const write of w.writes) write.finish();
    await Promise.all([...first, ...second]);
  });

  it('runs up to maxInFlight writes at once and caps a write at maxBatch items', async () => {
    const w = heldWriter();
    const group = new GroupCommit<number>({ write: w.write, maxInFlight: 2, maxBatch: 3 });
    const all = Array.from({ length: 9 }, (_, i) => group.submit(i));
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1]]);
    w.writes[0]?.finish();
    await tick();
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1], [2, 3, 4]]);
    w.writes[1]?.finish();
    await tick();
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1], [2, 3, 4], [5, 6, 7]]);
    w.writes[2]?.finish();
    w.writes[3]?.finish();
    await tick();
    w.writes[4]?.finish();
    await Promise.all(all);
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1], [2, 3, 4], [5, 6, 7], [8]]);
  });

  it('isolates an item the writer refuses: it alone fails and is reported, the others are written', async () => {
    const written: number[] = [];
    const failed: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const group = new GroupCommit<number>({
      write: async (items) => {
        await gate;
        if (items.includes(13)) throw new Error('refused');
        written.push(...items);
      },
      maxInFlight: 1,
      maxBatch: 100,
      onItemFailed: (item) => failed.push(item),
    });
    const outcomes = Array.from({ length: 21 }, (_, i) =>
      group.submit(i).then(
        () => 'ok',
        (err: Error) => err.message,
      ),
    );
    release();
    const results = await Promise.all(outcomes);
    expect(results[13]).toBe('refused');
    expect(results.filter((r) => r === 'ok')).toHaveLength(20);
    expect(failed).toEqual([13]);
    expect(written.sort((a, b) => a - b)).toEqual(
      Array.from({ length: 21 }, (_, i) => i).filter((i) => i !== 13),
    );
  });

  it('fails a whole batch at once when no item caused the failure, one write at a time', async () => {
    let statements = 0;
    let concurrent = 0;
    let mostConcurrent = 0;
    const down = Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    const group = new GroupCommit<number>({
      write: async () => {
        statements += 1;
        concurrent += 1;
        mostConcurrent = Math.max(mostConcurrent, concurrent);
        await tick();
        concurrent -= 1;
        throw down;
      },
      maxInFlight: 1,
      maxBatch: 256,
      causedByData: (err) => (err as { code?: string }).code?.startsWith('22') ?? false,
    });
    const outcomes = await Promise.all(
      Array.from({ length: 257 }, (_, i) =>
        group.submit(i).then(
          () => 'ok',
          (err: Error) => err.message,
        ),
      ),
    );
    expect(outcomes.every((o) => o === 'connection refused')).toBe(true);
    // One statement per batch (256 + 1), never the halves of a database that is down.
    expect(statements).toBeLessThanOrEqual(3);
    expect(mostConcurrent).toBe(1);
  });

  it('bisects a data failure one half after the other, never beyond maxInFlight', async () => {
    let concurrent = 0;
    let mostConcurrent = 0;
    const group = new GroupCommit<number>({
      write: async (items) => {
        concurrent += 1;
        mostConcurrent = Math.max(mostConcurrent, concurrent);
        await tick();
        concurrent -= 1;
        if (items.includes(7)) throw Object.assign(new Error('invalid'), { code: '22P05' });
      },
      maxInFlight: 1,
      maxBatch: 64,
      causedByData: (err) => (err as { code?: string }).code?.startsWith('22') ?? false,
    });
    const outcomes = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        group.submit(i).then(
          () => 'ok',
          () => 'failed',
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'failed')).toEqual(['failed']);
    expect(mostConcurrent).toBe(1);
  });

  it('answers the caller even when the failure reporter throws, and drain waits for every write', async () => {
    const w = heldWriter((n) => n === 2);
    const group = new GroupCommit<number>({
      write: w.write,
      maxInFlight: 1,
      maxBatch: 100,
      onItemFailed: () => {
        throw new Error('the logger is broken');
      },
    });
    const one = group.submit(1);
    const two = group.submit(2).catch((err: Error) => err.message);
    let drained = false;
    const draining = group.drain().then(() => {
      drained = true;
    });
    w.writes[0]?.finish();
    await one;
    await tick();
    expect(drained).toBe(false);
    w.writes[1]?.finish();
    expect(await two).toBe('refused');
    await draining;
    expect(drained).toBe(true);
  });
});
