// `nexus bench`, first slice: YCSB core workloads (A 50/50 read/update, B 95/5, C read-only,
// F read-modify-write) with uniform or zipfian keys over a sweep of (R, W) pairs, each point a load
// phase of its own records and then a closed loop of C clients spreading requests over every node; per operation type
// HdrHistogram latency percentiles, errors and sibling counts. Updates carry the context of that
// client's latest read of the key, as an application would.
//
// Staleness is measured by a probe: write a fresh key through one node, and t ms after the ack
// read it through another; the read is stale if it misses the value (t-visibility).
//
// Not yet (issue 6): per-replica delay injected through the fault layer, the PBS prediction,
// k-staleness, strict points under injected faults, and the baselines (bare and fsync ceilings,
// a single node, etcd, Redis) — reported as skipped with that reason.

import { build, type Histogram } from 'hdr-histogram-js';
import { NexusClient } from '../client/client.js';
import { LocalCluster } from '../sim/local-cluster.js';
import { Random } from '../sim/random.js';
import { scrambledZipfian, uniform, type KeyChooser } from './keys.js';
import { machineInfo, type MachineInfo } from './machine.js';

export type WorkloadName = 'A' | 'B' | 'C' | 'F';
export const WORKLOADS: Record<WorkloadName, { read: number; update: number; rmw: number; what: string }> = {
  A: { read: 0.5, update: 0.5, rmw: 0, what: 'update heavy: 50% reads, 50% updates' },
  B: { read: 0.95, update: 0.05, rmw: 0, what: 'read mostly: 95% reads, 5% updates' },
  C: { read: 1, update: 0, rmw: 0, what: 'read only' },
  F: { read: 0.5, update: 0, rmw: 0.5, what: 'read-modify-write: 50% reads, 50% read-modify-writes' },
};

/** The (R, W) pairs of the sweep for N = 3. */
export const DEFAULT_POINTS: Array<[number, number]> = [
  [1, 1],
  [1, 2],
  [2, 1],
  [2, 2],
  [1, 3],
  [3, 1],
  [3, 3],
];

export interface BenchOptions {
  workload: WorkloadName;
  distribution: 'zipfian' | 'uniform';
  records: number;
  valueBytes: number;
  clients: number;
  durationSec: number;
  warmupSec: number;
  points: Array<[number, number]>;
  /** Staleness probes per delay t, per point (0: none). */
  probesPerT: number;
  /** The delays t (ms) after a write's ack at which the probe reads. */
  probeDelaysMs: number[];
  nodes: number;
  n: number;
  /** An existing cluster's node URLs; otherwise the bench starts its own. */
  urls?: string[];
  seed: number;
  progress?: (point: number, points: number, fraction: number, label: string) => void;
}

export interface Latency {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface PointResult {
  r: number;
  w: number;
  strict: boolean;
  throughput: number;
  /** All operations, µs. */
  latency: Latency;
  /** Per operation type, µs. */
  byOp: Partial<Record<'read' | 'update' | 'rmw', Latency>>;
  errors: number;
  firstError?: string;
  siblings: { max: number; readsWithSiblings: number };
  /** Probe reads that missed the value acknowledged before them (see `probe`). */
  staleReads: number;
  probes: number;
  /** P(a read t ms after the write's ack returns it), per t: t-visibility on this machine. */
  visibility: Array<{ t: number; probes: number; consistent: number }>;
}

export interface BenchReport {
  ok: boolean;
  machine: MachineInfo;
  settings: Omit<BenchOptions, 'progress'>;
  points: PointResult[];
  baselines: Record<string, { skipped: string } | Record<string, unknown>>;
}

const NOT_YET = 'not built yet (issue 6 is in progress)';

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const machine = machineInfo();
  const cluster = o.urls ? null : await LocalCluster.start({ nodes: o.nodes, n: o.n, durability: 'fsync' });
  const urls = o.urls ?? cluster!.urls;
  const client = new NexusClient({ nodes: urls, strategy: 'spread', timeoutMs: 10_000 });
  const rnd = new Random(o.seed);
  try {
    const points: PointResult[] = [];
    for (const [i, [r, w]] of o.points.entries()) {
      // Each point loads its own records: siblings and grown objects left by one point would
      // otherwise slow the points after it.
      const prefix = `p${i}-user`;
      await load(client, o, prefix);
      const point = await runPoint(client, o, prefix, r, w, rnd.fork(), (f) => o.progress?.(i, o.points.length, f, `R=${r} W=${w}`));
      Object.assign(point, await probe(urls, o, `p${i}-probe`, r, w));
      points.push(point);
    }
    const settings: Omit<BenchOptions, 'progress'> = { ...o };
    delete (settings as Partial<BenchOptions>).progress;
    return {
      ok: points.every((p) => p.throughput > 0),
      machine,
      settings,
      points,
      baselines: { bareCeiling: { skipped: NOT_YET }, fsyncCeiling: { skipped: NOT_YET }, singleNode: { skipped: NOT_YET }, etcd: { skipped: NOT_YET }, redis: { skipped: NOT_YET } },
    };
  } finally {
    client.close();
    await cluster?.stop();
  }
}

/** The load phase: every record written once, W = all, 64 at a time. */
async function load(client: NexusClient, o: BenchOptions, prefix: string): Promise<void> {
  const value = Buffer.alloc(o.valueBytes, 0x61);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < o.records) await client.put(`${prefix}${next++}`, value, { w: 'all' });
  };
  await Promise.all(Array.from({ length: Math.min(64, o.records) }, worker));
}

async function runPoint(client: NexusClient, o: BenchOptions, prefix: string, r: number, w: number, rnd: Random, progress: (f: number) => void): Promise<PointResult> {
  const mix = WORKLOADS[o.workload];
  const hist = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  const all = hist();
  const byOp = { read: hist(), update: hist(), rmw: hist() };
  const counts = { read: 0, update: 0, rmw: 0 };
  let errors = 0;
  let firstError: string | undefined;
  let maxSiblings = 0;
  let readsWithSiblings = 0;
  const t0 = performance.now();
  const warmEnd = t0 + o.warmupSec * 1000;
  const end = warmEnd + o.durationSec * 1000;
  const ticker = setInterval(() => progress(Math.min(1, (performance.now() - t0) / (end - t0))), 250);
  const worker = async (keys: KeyChooser, wr: Random): Promise<void> => {
    const contexts = new Map<string, string>(); // this client's latest read context per key
    let seq = 0;
    while (performance.now() < end) {
      const key = `${prefix}${keys.next()}`;
      const roll = wr.next();
      const kind: 'read' | 'update' | 'rmw' = roll < mix.read ? 'read' : roll < mix.read + mix.update ? 'update' : 'rmw';
      const value = Buffer.from(`${o.valueBytes}:${++seq}`.padEnd(o.valueBytes, 'x'));
      const start = performance.now();
      try {
        if (kind !== 'update') {
          const got = await client.get(key, { r });
          contexts.set(key, got.context);
          if (got.siblings > 1) readsWithSiblings++;
          maxSiblings = Math.max(maxSiblings, got.siblings);
        }
        if (kind !== 'read') {
          const ctx = contexts.get(key);
          const res = await client.put(key, value, { w, ...(ctx !== undefined ? { context: ctx } : {}) });
          contexts.set(key, res.context);
        }
        const done = performance.now();
        if (start >= warmEnd && done <= end) {
          const us = Math.max(1, Math.round((done - start) * 1000));
          all.recordValue(us);
          byOp[kind].recordValue(us);
          counts[kind]++;
        }
      } catch (e) {
        if (start >= warmEnd) {
          errors++;
          firstError ??= (e as Error).message;
        }
      }
    }
  };
  try {
    await Promise.all(
      Array.from({ length: o.clients }, () => {
        const wr = rnd.fork();
        const keys = o.distribution === 'zipfian' ? scrambledZipfian(o.records, wr.fork()) : uniform(o.records, wr.fork());
        return worker(keys, wr);
      }),
    );
  } finally {
    clearInterval(ticker);
  }
  const summary = (h: Histogram, count: number): Latency => ({
    count,
    p50: h.getValueAtPercentile(50),
    p95: h.getValueAtPercentile(95),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: Math.round(h.mean),
  });
  const total = counts.read + counts.update + counts.rmw;
  const result: PointResult = {
    r,
    w,
    strict: false,
    throughput: Math.round(total / o.durationSec),
    latency: summary(all, total),
    byOp: Object.fromEntries((['read', 'update', 'rmw'] as const).filter((k) => counts[k] > 0).map((k) => [k, summary(byOp[k], counts[k])])),
    errors,
    siblings: { max: maxSiblings, readsWithSiblings },
    staleReads: 0,
    probes: 0,
    visibility: [],
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

/**
 * The staleness probe: for each delay t, `probesPerT` trials of "write a fresh key through node
 * i with W, wait t ms after the ack, read it through node i+1 with R", 16 trials at a time. A read
 * that does not return the value is stale. With R + W > N none may be (the read quorum overlaps
 * the write quorum).
 */
async function probe(urls: string[], o: BenchOptions, prefix: string, r: number, w: number): Promise<Pick<PointResult, 'staleReads' | 'probes' | 'visibility'>> {
  const clients = urls.map((u) => new NexusClient({ nodes: [u], timeoutMs: 10_000 }));
  const visibility: PointResult['visibility'] = [];
  let staleReads = 0;
  let probes = 0;
  let seq = 0;
  try {
    for (const t of o.probesPerT > 0 ? o.probeDelaysMs : []) {
      let consistent = 0;
      let done = 0;
      const trial = async (): Promise<void> => {
        while (done < o.probesPerT) {
          done++;
          const n = seq++;
          const key = `${prefix}${n}`;
          const value = `v${n}`;
          await clients[n % clients.length]!.put(key, value, { w });
          if (t > 0) await new Promise((res) => setTimeout(res, t));
          const got = await clients[(n + 1) % clients.length]!.get(key, { r });
          if (got.values.some((v) => Buffer.from(v).toString('utf8') === value)) consistent++;
          else staleReads++;
          probes++;
        }
      };
      await Promise.all(Array.from({ length: 16 }, trial));
      visibility.push({ t, probes: done, consistent });
    }
  } finally {
    for (const c of clients) c.close();
  }
  return { staleReads, probes, visibility };
}
