// Staleness of one (R, W) point, measured and predicted side by side.
//
// Measured: each probe trial writes `versions` versions of a fresh key one after another through
// node i (each write carrying the context of the previous one, so each supersedes the last), waits
// t ms after the last ack, and reads the key through node i+1 — or, with `reads: 'direct'`, from
// every replica at once through a client that coordinates the read itself (client/direct.ts),
// as the workload's reads are. The read is fresh if it returns the
// last version; otherwise it is k versions behind (k = versions when it returns nothing). On
// loopback the replicas are nearly simultaneous, so the nodes can delay every replica write they
// apply by a draw from a distribution (the fault layer, `--replica-delay`).
//
// Predicted: the PBS Monte Carlo (pbs.ts), fed with what each t step of the run measured — the
// nodes' own commits, half their replica-read round trips as one hop between nodes, half the
// client's lightest round trip as one hop to a node, the delays the nodes really slept, and how
// long the client's timer really waited.

import { NexusClient } from '../client/client.js';
import { Random } from '../sim/random.js';
import { empirical, predict, type Sampler } from './pbs.js';

export interface StalenessOptions {
  urls: string[];
  n: number;
  r: number;
  w: number;
  /** Trials per t. */
  probesPerT: number;
  ts: number[];
  versions: number;
  /** Who coordinates the reads: node i+1 (default) or the client itself. */
  reads?: 'coordinated' | 'direct';
  /** Trials run at a time. */
  concurrency: number;
  prefix: string;
  /** Monte Carlo trials per t (0: no prediction). */
  modelTrials: number;
  seed: number;
  progress?: (fraction: number) => void;
}

export interface VisibilityPoint {
  t: number;
  probes: number;
  /** Reads that returned the last version. */
  consistent: number;
  /** behind[k] = reads k versions behind (k = versions: nothing returned). */
  behind: number[];
  /** The client's real wait, ms (median): timers overshoot t. */
  waitedMs: number;
  /** The PBS prediction for this t, when it could be made. */
  predicted?: { consistent: number; withinK: number[] };
  /** The run's latencies that fed the prediction (medians, ms). */
  fed?: { hop: number; clientHop: number; commit: number; replicaDelay: number; samples: number; rput: number; rputModel: number };
}

export interface StalenessResult {
  versions: number;
  reads: 'coordinated' | 'direct';
  probes: number;
  /** Reads that missed the last acknowledged version. */
  staleReads: number;
  visibility: VisibilityPoint[];
  /** The largest |measured − predicted| P(fresh) over t, in percentage points. */
  maxGapPp?: number;
  /** Why there is no prediction, when there is none. */
  noPrediction?: string;
}

export async function measureStaleness(o: StalenessOptions): Promise<StalenessResult> {
  const reads = o.reads ?? 'coordinated';
  const clients = o.urls.map((u) => new NexusClient({ nodes: [u], timeoutMs: 10_000 }));
  const direct = reads === 'direct' ? new NexusClient({ nodes: o.urls, timeoutMs: 10_000 }) : undefined;
  const rnd = new Random(o.seed);
  const out: StalenessResult = { versions: o.versions, reads, probes: 0, staleReads: 0, visibility: [] };
  const canPredict = o.urls.length === o.n && o.n >= 2;
  if (!canPredict) out.noPrediction = `the model assumes every node replicates every key (K = N); here K=${o.urls.length}, N=${o.n}`;
  let seq = 0;
  let stepsDone = 0;
  try {
    // The direct client learns the ring on its first read; not inside a timed probe.
    if (direct) await direct.get(`${o.prefix}ping`, { r: 1 });
    for (const t of o.ts) {
      await takeTimings(clients); // start each step's timings afresh
      const behind = new Array<number>(o.versions + 1).fill(0);
      const waits: number[] = [];
      const clientHops: number[] = [];
      let started = 0;
      const trial = async (): Promise<void> => {
        while (started < o.probesPerT) {
          started++;
          const n = seq++;
          const key = `${o.prefix}${n}`;
          const writer = clients[n % clients.length]!;
          const reader = direct ?? clients[(n + 1) % clients.length]!;
          let context: string | undefined;
          for (let v = 1; v <= o.versions; v++) context = (await writer.put(key, `${n}.${v}`, { w: o.w, ...(context !== undefined ? { context } : {}) })).context;
          const waitStart = performance.now();
          if (t > 0) await new Promise((res) => setTimeout(res, t));
          waits.push(performance.now() - waitStart);
          const got = await reader.get(key, { r: o.r });
          // Every 4th trial also times the lightest round trip there is, a one-replica read of a
          // key nobody writes, answered from the node's own state: two client hops.
          if (n % 4 === 0) {
            const pinged = performance.now();
            await writer.get(`${o.prefix}ping`, { r: 1 });
            clientHops.push((performance.now() - pinged) / 2);
          }
          let newest = 0;
          for (const value of got.values) {
            const m = /^\d+\.(\d+)$/.exec(Buffer.from(value).toString('utf8'));
            if (m) newest = Math.max(newest, Number(m[1]));
          }
          behind[o.versions - newest]!++;
        }
      };
      const ticker = setInterval(() => o.progress?.((stepsDone + started / o.probesPerT) / o.ts.length), 250);
      try {
        await Promise.all(Array.from({ length: o.concurrency }, trial));
      } finally {
        clearInterval(ticker);
      }
      stepsDone++;
      const point: VisibilityPoint = { t, probes: o.probesPerT, consistent: behind[0]!, behind, waitedMs: round3(median(waits)) };
      out.probes += o.probesPerT;
      out.staleReads += o.probesPerT - behind[0]!;
      if (canPredict && o.modelTrials > 0) {
        const timings = await takeTimings(clients);
        const hops = timings.rget.map((x) => x / 2);
        if (hops.length > 0 && timings.commit.length > 0) {
          const delays = timings.delay.length > 0 ? timings.delay : [0];
          const waited: Sampler = empirical(waits);
          const [p] = predict(
            { hop: empirical(hops), clientHop: empirical(clientHops.length > 0 ? clientHops : hops), commit: empirical(timings.commit), replicaDelay: empirical(delays), wait: (_t, r) => waited(r) },
            { n: o.n, r: o.r, w: o.w, versions: o.versions, ts: [t], trials: o.modelTrials, reads },
            rnd.fork(),
          );
          point.predicted = { consistent: round4(p!.consistent), withinK: p!.withinK.map(round4) };
          // A check on the model's parts: a replica write's round trip as the nodes measured it,
          // and as hop + delay + commit + hop drawn from the same samples.
          const draw = rnd.fork();
          const [h, c, d] = [empirical(hops), empirical(timings.commit), empirical(delays)];
          const modelled = Array.from({ length: 2000 }, () => h(draw) + d(draw) + c(draw) + h(draw));
          point.fed = {
            hop: round3(median(hops)),
            clientHop: round3(median(clientHops)),
            commit: round3(median(timings.commit)),
            replicaDelay: round3(median(delays)),
            samples: timings.commit.length,
            rput: round3(median(timings.rput)),
            rputModel: round3(median(modelled)),
          };
        } else {
          out.noPrediction = 'the nodes reported no replica timings';
        }
      }
      out.visibility.push(point);
    }
  } finally {
    for (const c of clients) c.close();
    direct?.close();
  }
  const gaps = out.visibility.filter((v) => v.predicted).map((v) => Math.abs(v.consistent / v.probes - v.predicted!.consistent) * 100);
  if (gaps.length > 0) out.maxGapPp = Math.round(Math.max(...gaps) * 10) / 10;
  return out;
}

/** Every node's timings since the last call, pooled. */
async function takeTimings(clients: NexusClient[]): Promise<{ commit: number[]; rput: number[]; rget: number[]; delay: number[] }> {
  const all = await Promise.all(clients.map((c) => c.timings()));
  return {
    commit: all.flatMap((x) => x.commit),
    rput: all.flatMap((x) => x.rput),
    rget: all.flatMap((x) => x.rget),
    delay: all.flatMap((x) => x.delay),
  };
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const round4 = (x: number): number => Math.round(x * 10000) / 10000;
