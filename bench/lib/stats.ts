// Latency summaries from raw samples (µs), so that a benchmark can take percentiles over any
// sub-interval of a run (e.g. only while hinted handoff was running), with the same HdrHistogram
// settings as the load generator (src/bench/hdr.ts).

import { newHistogram } from '../../src/bench/hdr.js';

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function summarize(samplesUs: Iterable<number>): LatencySummary {
  const hist = newHistogram();
  try {
    for (const us of samplesUs) hist.recordValue(Math.max(1, Math.round(us)));
    const n = hist.totalCount;
    const pct = (p: number): number => (n === 0 ? 0 : hist.getValueAtPercentile(p));
    return {
      count: n,
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
      p999: pct(99.9),
      max: n === 0 ? 0 : hist.maxValue,
      mean: n === 0 ? 0 : Math.round(hist.mean * 10) / 10,
    };
  } finally {
    hist.destroy();
  }
}

/** Median and max of plain numbers (e.g. detection times in ms). */
export function medianMax(xs: number[]): { median: number; max: number; min: number; n: number } {
  if (xs.length === 0) return { median: NaN, max: NaN, min: NaN, n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, max: s[s.length - 1]!, min: s[0]!, n: s.length };
}
