import { describe, expect, it } from 'vitest';
import { newHistogram, recordMs, summarize } from '../../src/bench/hdr.js';

describe('latency histograms', () => {
  it('summarize 1..10,000 µs into the percentiles a sorted list gives, within 3 significant digits', () => {
    const h = newHistogram();
    for (let us = 1; us <= 10_000; us++) recordMs(h, us / 1000);
    const s = summarize(h);
    expect(s.count).toBe(10_000);
    const near = (got: number, want: number): void => expect(Math.abs(got - want) / want).toBeLessThan(0.001 + 1e-9);
    near(s.p50, 5_000);
    near(s.p95, 9_500);
    near(s.p99, 9_900);
    near(s.p999, 9_990);
    near(s.max, 10_000);
    near(s.mean, 5_000);
  });

  it('records ms as whole µs, never below 1, and summarizes an empty histogram as zeros', () => {
    const h = newHistogram();
    expect(recordMs(h, 0)).toBe(1);
    expect(recordMs(h, 2.5)).toBe(2_500);
    expect(summarize(h)).toMatchObject({ count: 2, max: 2_500 });
    expect(summarize(newHistogram())).toEqual({ count: 0, p50: 0, p95: 0, p99: 0, p999: 0, max: 0, mean: 0 });
  });

  it('keeps values far above its first range (it resizes)', () => {
    const h = newHistogram();
    recordMs(h, 45_000);
    expect(Math.abs(summarize(h).max - 45_000_000) / 45_000_000).toBeLessThan(0.001);
  });
});
