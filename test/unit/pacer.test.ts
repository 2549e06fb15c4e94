// The receiving side of handoff's rate limit: whoever sends, a node admits hints at most at its
// rate, in call order, and refuses at once (rather than hold a sender past its deadline) when
// the queue is already too long.

import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { Pacer } from '../../src/handoff/pacer.js';
import { Scheduler } from '../../src/sim/deterministic.js';

describe('Pacer', () => {
  it('admits batches from several senders at the rate in total, in call order', async () => {
    const clock = new Scheduler();
    const t0 = clock.now();
    const pacer = new Pacer(1000, clock); // 1,000 items/s: a batch of 100 pays for 100 ms
    const admitted: Array<[string, number]> = [];
    const send = (who: string): Promise<void> => pacer.take(100, 10_000).then(() => void admitted.push([who, clock.now() - t0]));
    const all = Promise.all([send('a'), send('b'), send('c'), send('a')]);
    await clock.runUntil(t0); // lets what is admitted at once settle before time moves
    await clock.runUntil(t0 + 1000);
    await all;
    expect(admitted).toEqual([
      ['a', 0],
      ['b', 100],
      ['c', 200],
      ['a', 300],
    ]);
  });

  it('gives no credit for idle time: after a pause the next batches are paced again', async () => {
    const clock = new Scheduler();
    const t0 = clock.now();
    const pacer = new Pacer(1000, clock);
    await pacer.take(50, 1000);
    await clock.runUntil(t0 + 5000); // idle for 5 s
    const times: number[] = [];
    const all = Promise.all([1, 2, 3].map(() => pacer.take(50, 1000).then(() => void times.push(clock.now() - t0))));
    await clock.runUntil(t0 + 5000);
    await clock.runUntil(t0 + 6000);
    await all;
    expect(times).toEqual([5000, 5050, 5100]);
  });

  it('refuses with OVERLOADED, reserving nothing, when the turn would come after maxWaitMs', async () => {
    const clock = new Scheduler();
    const t0 = clock.now();
    const pacer = new Pacer(100, clock); // a batch of 100 pays for 1 s
    const first = pacer.take(100, 500);
    const second = pacer.take(100, 500); // its turn is 1 s away
    await expect(second).rejects.toMatchObject({ code: ErrorCodes.OVERLOADED, message: expect.stringContaining('handoff intake is full') });
    // The refusal took nothing: the next batch that accepts a longer wait still goes at 1 s.
    const third = pacer.take(100, 5000).then(() => clock.now() - t0);
    await clock.runUntil(t0 + 2000);
    await first;
    expect(await third).toBe(1000);
  });
});
