// Latency histograms for the benchmarks: HdrHistogram (hdr-histogram-js) in microseconds, 1 µs to
// 60 s at 3 significant digits, and the one summary every report prints.

import { build, type Histogram } from 'hdr-histogram-js';

export type { Histogram } from 'hdr-histogram-js';

export interface Latency {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

/** Records a duration given in ms (as performance.now() differences are), as whole µs ≥ 1. */
export function recordMs(h: Histogram, ms: number): number {
  const us = Math.max(1, Math.round(ms * 1000));
  h.recordValue(us);
  return us;
}

/** Percentiles, max and mean, µs; all zero for an empty histogram. */
export function summarize(h: Histogram): Latency {
  if (h.totalCount === 0) return { count: 0, p50: 0, p95: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p95: h.getValueAtPercentile(95),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: Math.round(h.mean),
  };
}
