// The YCSB key choosers: the zipfian generator must match its distribution (rank-frequency over
// many draws), and the scrambled form must spread the popular ranks over the key space.

import { describe, expect, it } from 'vitest';
import { scrambledZipfian, uniform, Zipfian } from '../../src/bench/keys.js';
import { Random } from '../../src/sim/random.js';

describe('key choosers', () => {
  it('zipfian (θ = 0.99) draws each top rank as often as 1/(k+1)^θ / ζ(n) says', () => {
    const z = new Zipfian(1000, new Random(7));
    const draws = 400_000;
    const counts = new Array<number>(1000).fill(0);
    for (let i = 0; i < draws; i++) counts[z.next()]!++;
    // Chi-square over the 20 most popular ranks plus the rest as one bin (21 bins, 20 degrees of
    // freedom): the 0.1% critical value is 45.3.
    let chi = 0;
    let restObserved = draws;
    let restP = 1;
    for (let k = 0; k < 20; k++) {
      const expected = draws * z.p(k);
      chi += (counts[k]! - expected) ** 2 / expected;
      restObserved -= counts[k]!;
      restP -= z.p(k);
    }
    chi += (restObserved - draws * restP) ** 2 / (draws * restP);
    expect(chi).toBeLessThan(45.3);
    expect(counts[0]! / draws).toBeCloseTo(z.p(0), 2);
    expect(Math.max(...counts.map((_, k) => k))).toBeLessThan(1000);
  });

  it('scrambled zipfian keeps the skew but puts the hottest records anywhere; uniform is flat', () => {
    const n = 1000;
    const draws = 100_000;
    const sz = scrambledZipfian(n, new Random(3));
    const counts = new Map<number, number>();
    for (let i = 0; i < draws; i++) {
      const k = sz.next();
      expect(k).toBeGreaterThanOrEqual(0);
      expect(k).toBeLessThan(n);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const sorted = [...counts].sort((a, b) => b[1] - a[1]);
    expect(sorted[0]![1] / draws).toBeGreaterThan(0.05); // rank 0 alone is ~13% at n = 1000
    expect(sorted[0]![0]).not.toBe(0); // and it is not record 0

    const u = uniform(n, new Random(3));
    const flat = new Array<number>(10).fill(0);
    for (let i = 0; i < draws; i++) flat[Math.floor(u.next() / 100)]!++;
    for (const c of flat) expect(Math.abs(c - draws / 10)).toBeLessThan(draws / 100);
  });
});
