// `nexus sim` on a real cluster: start K node processes, run the workload while the fault
// injector works through its episodes, heal, wait (bounded) until hints are delivered and
// anti-entropy finds nothing left to repair, stop the nodes, read every replica's SQLite file, and
// hand the history and the final states to the checker.

import { join } from 'node:path';
import { NexusClient } from '../client/client.js';
import { liveValues } from '../core/version.js';
import { Ring } from '../ring/index.js';
import { SqliteStorage } from '../storage/sqlite.js';
import { check, type Verdict } from './checker.js';
import { FaultInjector, type FaultEvent, type Scenario, type ScheduledFault } from './faults.js';
import type { Op, ReplicaState } from './history.js';
import { LocalCluster } from './local-cluster.js';
import { Random } from './random.js';
import { Workload, type SimShape } from './workload.js';

export interface SimOptions extends SimShape {
  /** A named scenario, or 'file' when `schedule` gives the faults. */
  scenario: Scenario | 'file';
  /** The fault episodes of a schedule file (see ScheduledFault); the fault phase lasts until they end. */
  schedule?: ScheduledFault[];
  seed: number;
  /** Seconds of faults (the workload also runs 2 s before and 3 s after). */
  durationSec: number;
  strict: boolean;
  opTimeoutMs: number;
  convergeTimeoutSec: number;
  /** Called about every 250 ms: what fraction of the run is done, and what is happening. */
  progress?: (fraction: number, status: string) => void;
}

export const SIM_DEFAULTS: Omit<SimOptions, 'scenario' | 'seed'> = {
  durationSec: 30,
  nodes: 5,
  n: 3,
  clients: 8,
  keys: 40,
  r: 2,
  w: 2,
  strict: false,
  opTimeoutMs: 2000,
  convergeTimeoutSec: 120,
};

const BEFORE_MS = 2000;
const HEAL_MS = 3000;
const PARTITIONS = 16;

export interface TimelinePoint {
  /** Second since the run started. */
  t: number;
  ok: number;
  failed: number;
  unknown: number;
  p50Ms: number;
  p99Ms: number;
}

export interface SimReport extends Verdict {
  seed: number;
  scenario: Scenario | 'file';
  settings: Omit<SimOptions, 'progress'>;
  faults: FaultEvent[];
  /** From the end of the faults until replicas were identical and no hint was pending. */
  convergeMs: number | null;
  timeline: TimelinePoint[];
  replay: string;
}

export async function runSim(o: SimOptions): Promise<{ report: SimReport; history: Op[] }> {
  const rnd = new Random(o.seed);
  const t0 = Date.now();
  const now = (): number => Date.now() - t0;
  const total = BEFORE_MS + o.durationSec * 1000 + HEAL_MS;
  let phase = 'before';
  const say = (status: string): void => o.progress?.(Math.min(1, now() / total), status);

  say('starting the cluster');
  const cluster = await LocalCluster.start({
    nodes: o.nodes,
    n: o.n,
    partitions: PARTITIONS,
    durability: 'fsync',
    env: { NEXUS_SIM_FAULTS: '1' },
    // Faster rounds and detection than the defaults, so a short run also converges quickly.
    nodeArgs: ['--ae-interval-ms', '1000', '--hint-window-ms', '60000', '--tombstone-grace-ms', '3600000'],
  });
  const clients = cluster.urls.map((_, i) => new NexusClient({ nodes: [...cluster.urls.slice(i), ...cluster.urls.slice(0, i)], timeoutMs: o.opTimeoutMs }));
  try {
    const workload = new Workload({
      clients: Array.from({ length: o.clients }, (_, i) => ({ client: clients[i % clients.length]!, node: cluster.ids[i % clients.length]! })),
      keys: o.keys,
      r: o.r,
      w: o.w,
      strict: o.strict,
      opTimeoutMs: o.opTimeoutMs,
      now,
      phase: () => phase,
      random: rnd.fork(),
    });
    const ticker = setInterval(() => say(`${phase}: ${workload.history.length} operations`), 250);
    const faults = new FaultInjector(cluster, rnd.fork(), now);
    let faultEnd = 0;
    try {
      workload.start();
      await new Promise((r) => setTimeout(r, BEFORE_MS));
      phase = 'fault';
      const faultUntil = Date.now() + o.durationSec * 1000;
      if (o.schedule !== undefined) await faults.runSchedule(o.schedule, Date.now());
      else await faults.run(o.scenario as Scenario, () => Date.now() >= faultUntil);
      faultEnd = now();
      phase = 'heal';
      await new Promise((r) => setTimeout(r, HEAL_MS));
      await workload.stop();
    } finally {
      clearInterval(ticker);
    }

    say('waiting for the replicas to converge');
    const convergeMs = await converge(cluster, o.convergeTimeoutSec * 1000, faultEnd, now);

    say('reading every replica');
    for (const i of cluster.ids.keys()) await cluster.signal(i, 'SIGTERM');
    const finals = new Map<string, ReplicaState>();
    const keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
    for (const id of cluster.ids) {
      const storage = SqliteStorage.open({ dir: join(cluster.dir, id), durability: 'os' });
      try {
        const state: ReplicaState = new Map();
        for (const k of keys) {
          const obj = storage.get(k);
          if (obj) state.set(k, liveValues(obj).map((v) => Buffer.from(v).toString('utf8')).sort());
        }
        finals.set(id, state);
      } finally {
        await storage.close();
      }
    }
    const ring = new Ring({ members: cluster.ids.map((id, i) => ({ id, url: cluster.urls[i]! })), n: o.n, partitions: PARTITIONS });
    const verdict = check({ history: workload.history, finals, replicasOf: (k) => ring.primaries(ring.partitionOf(k)), n: o.n });
    const settings: Omit<SimOptions, 'progress'> = { ...o };
    delete (settings as Partial<SimOptions>).progress;
    const report: SimReport = {
      ...verdict,
      ok: verdict.ok && convergeMs !== null,
      seed: o.seed,
      scenario: o.scenario,
      settings,
      faults: faults.events,
      convergeMs,
      timeline: timeline(workload.history),
      replay:
        o.schedule !== undefined
          ? `npx nexus sim --schedule <the same file> --seed ${o.seed} --nodes ${o.nodes}`
          : `npx nexus sim --scenario ${o.scenario} --seed ${o.seed} --duration ${o.durationSec} --nodes ${o.nodes}`,
    };
    say('done');
    return { report, history: workload.history };
  } finally {
    for (const c of clients) c.close();
    await cluster.stop();
  }
}

/**
 * Waits until every node is up, no hint is pending anywhere, and a repair round on every node
 * repairs nothing. Returns the time from the end of the faults, or null past the timeout.
 */
async function converge(cluster: LocalCluster, timeoutMs: number, faultEnd: number, now: () => number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  await cluster.waitAllUp(timeoutMs).catch(() => {});
  while (Date.now() < deadline) {
    try {
      const stats = await cluster.nodeStats();
      const pending = stats.reduce((a, s) => a + (Number(s.hintsPending) || 0), 0);
      if (pending === 0) {
        let repaired = 0;
        for (const url of cluster.urls) {
          const c = new NexusClient({ nodes: [url], timeoutMs: 30_000 });
          try {
            repaired += (await c.repair()).keysRepaired;
          } finally {
            c.close();
          }
        }
        if (repaired === 0) return Math.max(0, now() - faultEnd);
      }
    } catch {
      // a node still starting: try again
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

function timeline(history: readonly Op[]): TimelinePoint[] {
  const buckets = new Map<number, Op[]>();
  for (const op of history) {
    const t = Math.floor(op.end / 1000);
    (buckets.get(t) ?? buckets.set(t, []).get(t)!).push(op);
  }
  return [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((t) => {
      const ops = buckets.get(t)!;
      const lat = ops.filter((x) => x.result === 'ok').map((x) => x.end - x.start).sort((a, b) => a - b);
      const at = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : 0);
      return {
        t,
        ok: ops.filter((x) => x.result === 'ok').length,
        failed: ops.filter((x) => x.result === 'failed').length,
        unknown: ops.filter((x) => x.result === 'unknown').length,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
      };
    });
}
