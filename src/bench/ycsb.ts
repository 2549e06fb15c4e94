// `nexus bench`: YCSB core workloads (A 50/50 read/update, B 95/5, C read-only, F
// read-modify-write) with uniform or zipfian keys over a sweep of (R, W) pairs. Each point loads its
// own records, then C clients run a closed loop spreading requests over every node; per operation
// type HdrHistogram latency percentiles, errors and sibling counts. Updates carry the context of
// that client's latest read of the key, as an application would.
//
// After each point's load, its staleness is measured and predicted (staleness.ts): probes with the
// per-replica write delay injected through the nodes' fault layer, beside the PBS model fed with
// the run's own latencies. Then a single node with N = 1 runs the same workload, and the baselines
// (baselines.ts) run with the same value size, concurrency and mix.

import { NexusClient } from '../client/client.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { LocalCluster, type ClusterOptions } from '../sim/local-cluster.js';
import { Random } from '../sim/random.js';
import { runBaseline, type Baseline, type BaselineName, type BaselineOptions } from './baselines.js';
import { newHistogram, recordMs, summarize, type Latency } from './hdr.js';
import { scrambledZipfian, uniform, type KeyChooser } from './keys.js';
import { cpuPerOp, cpuSnapshot, machineInfo, type CpuPerOp, type CpuSnapshot, type MachineInfo } from './machine.js';
import { measureStaleness, type StalenessResult } from './staleness.js';

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
  /** Versions each probe writes before its read (for k-staleness). */
  probeVersions: number;
  /** The per-replica write delay injected during the probes ("exp:MEAN", "const:MS", "uniform:LO-HI", "none"). */
  replicaDelay: string;
  /**
   * Who coordinates the probes' reads: another node ('coordinated', a single-URL client) or the
   * client itself ('direct', a client with every URL, as the workload's reads are; docs/adr/010).
   */
  probeReads: 'coordinated' | 'direct';
  /** PBS Monte Carlo trials per t (0: no prediction). */
  modelTrials: number;
  /** Baselines to run after the sweep; "singleNode" is Nexus itself with one node and N = 1. */
  baselines: Array<BaselineName | 'singleNode'>;
  /** Run every point sloppy and strict again on a cluster with one node cut off. */
  faultPhase: boolean;
  nodes: number;
  n: number;
  /** An existing cluster's node URLs; otherwise the bench starts its own. */
  urls?: string[];
  /**
   * How the bench starts the sweep's own cluster (default: the CLI's `nexus start`, durability
   * fsync). bench/storage.ts swaps these to price the storage; the baselines never change.
   */
  sweepCluster?: Pick<ClusterOptions, 'durability' | 'mainScript'>;
  seed: number;
  progress?: (point: number, points: number, fraction: number, label: string) => void;
}

export interface PointResult {
  r: number;
  w: number;
  strict: boolean;
  throughput: number;
  /** Operations that succeeded ÷ all started in the window. */
  availability: number;
  /** All operations, µs. */
  latency: Latency;
  /** Per operation type, µs. */
  byOp: Partial<Record<'read' | 'update' | 'rmw', Latency>>;
  errors: number;
  firstError?: string;
  siblings: { max: number; readsWithSiblings: number };
  /** Probe reads that missed the last acknowledged version, of `probes` (CLI.md: scripts read these). */
  staleReads: number;
  probes: number;
  /** The staleness probes and the PBS prediction (absent with --probes 0). */
  staleness?: StalenessResult;
  /** CPU per operation in the measured window, µs: the cluster's nodes (null with --node) and the benchmark. */
  cpuPerOp?: CpuPerOp;
}

export interface BenchReport {
  ok: boolean;
  machine: MachineInfo;
  settings: Omit<BenchOptions, 'progress'>;
  points: PointResult[];
  baselines: Record<string, Baseline | PointResult>;
  /** The points again, sloppy and strict, with one primary cut off (strict matters only then). */
  underFault?: { what: string; nodes: number; durationSec: number; points: PointResult[] } | { skipped: string };
  /** Issue 6's bars for the R = W = 2 point, when it and the baselines ran. */
  bars: Record<string, { value: number; bar: string; met: boolean }>;
}

/** A baseline's settings for a sweep's workload: the same clients, records, values, mix and seed. */
export function baselineOptions(o: BenchOptions): BaselineOptions {
  return { clients: o.clients, durationSec: o.durationSec, warmupSec: o.warmupSec, valueBytes: o.valueBytes, records: o.records, readFraction: WORKLOADS[o.workload].read, distribution: o.distribution, seed: o.seed };
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const machine = machineInfo();
  const delay = o.replicaDelay !== 'none' && o.probesPerT > 0;
  const total = o.points.length + o.baselines.length + (o.faultPhase ? 1 : 0);
  const rnd = new Random(o.seed);
  const points: PointResult[] = [];
  // The cluster's own nodes honour the fault layer only when started with NEXUS_SIM_FAULTS=1.
  const cluster = o.urls ? null : await LocalCluster.start({ nodes: o.nodes, n: o.n, durability: 'fsync', ...o.sweepCluster, ...(delay ? { env: { NEXUS_SIM_FAULTS: '1' } } : {}) });
  const urls = o.urls ?? cluster!.urls;
  const client = new NexusClient({ nodes: urls, strategy: 'spread', timeoutMs: 10_000 });
  const perNode = urls.map((u) => new NexusClient({ nodes: [u], timeoutMs: 10_000 }));
  const setDelay = async (spec: string): Promise<void> => {
    try {
      await Promise.all(perNode.map((c) => c.simFault([], 0, spec)));
    } catch (e) {
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `cannot inject --replica-delay ${o.replicaDelay}: ${(e as Error).message} (start the nodes with NEXUS_SIM_FAULTS=1, or pass --replica-delay none)`);
    }
  };
  try {
    // Refused before any work, not after the first point, when the nodes run without the fault layer.
    if (delay) await setDelay('none');
    for (const [i, [r, w]] of o.points.entries()) {
      const label = `R=${r} W=${w}`;
      // Each point loads its own records: siblings and grown objects left by one point would
      // otherwise slow the points after it.
      const prefix = `p${i}-user`;
      await load(client, o, prefix);
      const point = await runPoint(client, o, prefix, r, w, rnd.fork(), (f) => o.progress?.(i, total, f * 0.5, label), { serverPids: cluster?.pids });
      if (o.probesPerT > 0) {
        if (delay) await setDelay(o.replicaDelay);
        try {
          point.staleness = await measureStaleness({
            urls,
            n: o.n,
            r,
            w,
            probesPerT: o.probesPerT,
            ts: o.probeDelaysMs,
            versions: o.probeVersions,
            reads: o.probeReads,
            concurrency: 16,
            prefix: `p${i}-probe`,
            modelTrials: o.modelTrials,
            seed: o.seed + i,
            progress: (f) => o.progress?.(i, total, 0.5 + f * 0.5, `${label} staleness`),
          });
        } finally {
          if (delay) await setDelay('none');
        }
        point.staleReads = point.staleness.staleReads;
        point.probes = point.staleness.probes;
      }
      o.progress?.(i, total, 1, label);
      points.push(point);
    }
  } finally {
    client.close();
    for (const c of perNode) c.close();
    await cluster?.stop();
  }

  // Baselines, one at a time, each on a quiet machine: the sweep's cluster is gone.
  const baselines: BenchReport['baselines'] = {};
  for (const [j, name] of o.baselines.entries()) {
    const at = o.points.length + j;
    const ticker = tick((f) => o.progress?.(at, total, f, name), (o.warmupSec + o.durationSec) * 1000);
    try {
      baselines[name] = name === 'singleNode' ? await singleNode(o, rnd.fork(), (f) => o.progress?.(at, total, f, name)) : await runBaseline(name, baselineOptions(o));
    } finally {
      ticker();
    }
    o.progress?.(at, total, 1, name);
  }
  let underFault: BenchReport['underFault'];
  if (o.faultPhase) {
    const at = total - 1;
    underFault = o.urls
      ? { skipped: 'runs only on a cluster the bench starts (it cuts a node off through the fault layer)' }
      : await faultPhase(o, rnd.fork(), (f, label) => o.progress?.(at, total, f, label));
    o.progress?.(at, total, 1, 'under a fault');
  }
  const settings: Omit<BenchOptions, 'progress'> = { ...o };
  delete (settings as Partial<BenchOptions>).progress;
  return { ok: points.every((p) => p.throughput > 0), machine, settings, points, baselines, ...(underFault ? { underFault } : {}), bars: bars(points, baselines) };
}

/**
 * Strict quorums differ from sloppy ones only when a primary is unreachable. This phase starts a
 * cluster with one node more than N (so there is a stand-in to hint to), loads the records, cuts
 * the last node off from the others (both ways, through the fault layer), waits until they judge
 * it down, and runs every point sloppy and then strict, clients spreading over the nodes still up.
 */
async function faultPhase(o: BenchOptions, rnd: Random, progress: (f: number, label: string) => void): Promise<NonNullable<BenchReport['underFault']>> {
  const nodes = Math.max(o.nodes, o.n + 1);
  const durationSec = Math.max(1, Math.ceil(o.durationSec / 2));
  const cluster = await LocalCluster.start({ nodes, n: o.n, durability: 'fsync', env: { NEXUS_SIM_FAULTS: '1' } });
  const ids = cluster.urls.map((_, i) => `n${i + 1}`);
  const cut = ids[ids.length - 1]!;
  const upUrls = cluster.urls.slice(0, -1);
  const client = new NexusClient({ nodes: upUrls, strategy: 'spread', timeoutMs: 10_000 });
  const perNode = cluster.urls.map((u) => new NexusClient({ nodes: [u], timeoutMs: 10_000 }));
  try {
    await load(client, o, 'fault-user');
    await Promise.all(perNode.map((c, i) => c.simFault(ids[i] === cut ? ids.slice(0, -1) : [cut], 0)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const seen = await Promise.all(perNode.slice(0, -1).map(async (c) => (await c.status()).nodes.find((x) => x.id === cut)?.state));
      if (seen.every((s) => s === 'down')) break;
      if (Date.now() > deadline) throw new NexusError(ErrorCodes.TIMEOUT, `the other nodes did not judge ${cut} down within 30 s of cutting it off`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const points: PointResult[] = [];
    const runs = o.points.flatMap(([r, w]) => [false, true].map((strict) => ({ r, w, strict })));
    for (const [i, { r, w, strict }] of runs.entries()) {
      const label = `${cut} cut off: R=${r} W=${w} ${strict ? 'strict' : 'sloppy'}`;
      points.push(await runPoint(client, o, 'fault-user', r, w, rnd.fork(), (f) => progress((i + f) / runs.length, label), { strict, durationSec, serverPids: cluster.pids }));
    }
    return { what: `${nodes} nodes, N=${o.n}: ${cut} cut off from the others`, nodes, durationSec, points };
  } catch (e) {
    return { skipped: `failed: ${(e as Error).message}` };
  } finally {
    client.close();
    for (const c of perNode) c.close();
    await cluster.stop();
  }
}

/** Progress for a phase that reports none: the fraction of its expected length gone by. */
function tick(report: (f: number) => void, expectedMs: number): () => void {
  const t0 = performance.now();
  const timer = setInterval(() => report(Math.min(0.99, (performance.now() - t0) / expectedMs)), 250);
  return () => clearInterval(timer);
}

/** Nexus on one node with N = 1, R = W = 1: the same workload without replication. */
async function singleNode(o: BenchOptions, rnd: Random, progress: (f: number) => void): Promise<PointResult> {
  const cluster = await LocalCluster.start({ nodes: 1, n: 1, durability: 'fsync' });
  const client = new NexusClient({ nodes: cluster.urls, timeoutMs: 10_000 });
  try {
    await load(client, o, 'single-user');
    return await runPoint(client, o, 'single-user', 1, 1, rnd, progress, { serverPids: cluster.pids });
  } finally {
    client.close();
    await cluster.stop();
  }
}

/** Issue 6's bars: workload A at R = W = 2 against the bare ceiling and etcd. */
function bars(points: PointResult[], baselines: BenchReport['baselines']): BenchReport['bars'] {
  const out: BenchReport['bars'] = {};
  const p = points.find((x) => x.r === 2 && x.w === 2);
  if (!p) return out;
  const bare = baselines.bareCeiling;
  const etcd = baselines.etcd;
  const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
  if (bare && 'throughput' in bare) {
    const v = ratio(p.throughput, bare.throughput);
    out.throughputVsBareCeiling = { value: v, bar: '>= 0.5', met: v >= 0.5 };
  }
  if (etcd && 'throughput' in etcd) {
    const v = ratio(p.throughput, etcd.throughput);
    out.throughputVsEtcd = { value: v, bar: '>= 2', met: v >= 2 };
    const q = ratio(p.latency.p99, etcd.latency.p99);
    out.p99VsEtcd = { value: q, bar: '<= 1', met: q <= 1 };
  }
  return out;
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

async function runPoint(
  client: NexusClient,
  o: BenchOptions,
  prefix: string,
  r: number,
  w: number,
  rnd: Random,
  progress: (f: number) => void,
  mode: { strict?: boolean; durationSec?: number; serverPids?: readonly number[] | undefined } = {},
): Promise<PointResult> {
  const strict = mode.strict === true;
  const durationSec = mode.durationSec ?? o.durationSec;
  const mix = WORKLOADS[o.workload];
  const all = newHistogram();
  const byOp = { read: newHistogram(), update: newHistogram(), rmw: newHistogram() };
  const counts = { read: 0, update: 0, rmw: 0 };
  let errors = 0;
  let firstError: string | undefined;
  let maxSiblings = 0;
  let readsWithSiblings = 0;
  const t0 = performance.now();
  const warmEnd = t0 + o.warmupSec * 1000;
  const end = warmEnd + durationSec * 1000;
  const ticker = setInterval(() => progress(Math.min(1, (performance.now() - t0) / (end - t0))), 250);
  // CPU over the measured window: snapshots when it opens and when it closes.
  let cpuStart: CpuSnapshot | undefined;
  let cpuEnd: CpuSnapshot | undefined;
  const cpuTimers = [
    setTimeout(() => (cpuStart = cpuSnapshot(mode.serverPids)), warmEnd - t0),
    setTimeout(() => (cpuEnd = cpuSnapshot(mode.serverPids)), end - t0),
  ];
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
          const got = await client.get(key, { r, strict });
          contexts.set(key, got.context);
          if (got.siblings > 1) readsWithSiblings++;
          maxSiblings = Math.max(maxSiblings, got.siblings);
        }
        if (kind !== 'read') {
          const ctx = contexts.get(key);
          const res = await client.put(key, value, { w, strict, ...(ctx !== undefined ? { context: ctx } : {}) });
          contexts.set(key, res.context);
        }
        const done = performance.now();
        if (start >= warmEnd && done <= end) {
          recordMs(all, done - start);
          recordMs(byOp[kind], done - start);
          counts[kind]++;
        }
      } catch (e) {
        if (start >= warmEnd && start < end) {
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
    for (const t of cpuTimers) clearTimeout(t);
    // The workers can see the window end before its timer runs: the window has just closed.
    cpuEnd ??= cpuSnapshot(mode.serverPids);
  }
  const total = counts.read + counts.update + counts.rmw;
  const cpu = cpuStart !== undefined && cpuEnd !== undefined ? cpuPerOp(cpuStart, cpuEnd, total) : undefined;
  const result: PointResult = {
    r,
    w,
    strict,
    throughput: Math.round(total / durationSec),
    availability: total + errors === 0 ? 0 : Math.round((total / (total + errors)) * 10000) / 10000,
    latency: summarize(all),
    byOp: Object.fromEntries((['read', 'update', 'rmw'] as const).filter((k) => counts[k] > 0).map((k) => [k, summarize(byOp[k])])),
    errors,
    siblings: { max: maxSiblings, readsWithSiblings },
    staleReads: 0,
    probes: 0,
  };
  if (cpu !== undefined) result.cpuPerOp = cpu;
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}
