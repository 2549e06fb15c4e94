// The deterministic simulation: the same NexusNode code, K nodes in one process, wired to the
// in-memory transport and in-memory storage, on a virtual clock driven by a seeded scheduler.
// Every timer, deferred batch and frame delivery goes through the scheduler; after each callback
// the scheduler lets pending promise callbacks run (one real setImmediate) before the next, so a
// seed fixes the whole run — the same seed gives the same history, byte for byte.
//
// A run: a workload phase with faults (crashes and restarts from the node's committed storage,
// partitions, "swizzle-clog" — links cut one by one and restored in random order — and frames
// dropped, duplicated, delayed and reordered), then a heal phase, then convergence (bounded, in
// virtual time), then the checker on every replica's state.

import type { Clock, TimerHandle } from '../core/clock.js';
import { defaultNodeConfig } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { liveValues } from '../core/version.js';
import { HintMirror } from '../handoff/mirror.js';
import type { Hint } from '../handoff/types.js';
import { NexusNode } from '../node.js';
import { Ring } from '../ring/index.js';
import { keyObjectHash } from '../antientropy/segments.js';
import { MemoryStorage, type MemoryImage } from '../storage/memory.js';
import type { Replies, Request } from '../transport/protocol.js';
import type { Link } from '../transport/link.js';
import { DirectReads, noReadStats, type DirectReadStats } from '../client/direct.js';
import { MemoryNetwork, type MemoryTransport } from '../transport/memory.js';
import { check, type Verdict } from './checker.js';
import type { Op, ReplicaState } from './history.js';
import { Random } from './random.js';
import { Workload, type SimShape, type WorkloadClient } from './workload.js';

/** Virtual time starts here (a plausible epoch time, since tombstone ages are wall-clock based). */
const EPOCH = 1_800_000_000_000;

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A virtual clock and a queue of timers, run in (time, order of scheduling) order. */
export class Scheduler implements Clock {
  private t = EPOCH;
  private seq = 0;
  private readonly heap: Timer[] = [];
  /** Timer callbacks run so far (a measure of the work a run did). */
  steps = 0;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Runs `fn` at the current virtual time, after what is already due. */
  readonly defer = (fn: () => void): void => void this.setTimeout(fn, 0);

  /** Runs every timer due up to `until` (virtual ms), letting promise callbacks settle after each. */
  async runUntil(until: number): Promise<void> {
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.at > until) break;
      this.pop();
      if (next.cancelled) continue;
      this.t = next.at;
      this.steps++;
      next.fn();
      await settle();
    }
    this.t = Math.max(this.t, until);
  }

  private push(x: Timer): void {
    const h = this.heap;
    h.push(x);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every promise callback that can run now run (a real macrotask comes after them all). */
function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface DetOptions extends SimShape {
  seed: number;
  /** Virtual seconds of faults, and of healed workload after. */
  faultSec: number;
  healSec: number;
  /** Longest virtual wait for convergence. */
  convergeSec: number;
  /** Run a deliberately broken build (replicas overwrite instead of merging): the checker must fail it. */
  brokenMerge?: boolean;
}

export const DET_DEFAULTS: Omit<DetOptions, 'seed'> = { nodes: 5, n: 3, clients: 4, keys: 6, r: 2, w: 2, faultSec: 4, healSec: 1, convergeSec: 60 };

export interface DetReport extends Verdict {
  seed: number;
  convergeMs: number | null;
  faults: string[];
  steps: number;
  replay: string;
}

interface SimNode {
  id: string;
  image: MemoryImage | undefined;
  hintsDisk: Map<number, Hint>;
  node: NexusNode | null;
  transport: MemoryTransport | null;
  /** Set when the node crashes: its leftover timers then do nothing. */
  dead: { value: boolean };
  restarts: number;
}

const PARTITIONS = 8;
const SEGMENTS = 16;

/**
 * One seeded run. Returns the verdict, the full history (identical for identical seeds) and how the
 * clients' reads were coordinated (client/direct.ts), summed over the clients.
 */
export async function runDeterministic(opts: Partial<DetOptions> & { seed: number }): Promise<{ report: DetReport; history: Op[]; reads: DirectReadStats }> {
  const o: DetOptions = { ...DET_DEFAULTS, ...opts };
  const rnd = new Random(o.seed);
  const sched = new Scheduler();
  const t0 = sched.now();
  const faults: string[] = [];
  const note = (what: string): void => void faults.push(`${sched.now() - t0}ms ${what}`);

  // Message faults, switched on during the fault phase.
  const msg = { drop: 0, dup: 0, maxDelay: 1 };
  const net = new MemoryNetwork({
    clock: sched,
    defer: sched.defer,
    drop: () => msg.drop > 0 && rnd.chance(msg.drop),
    duplicate: () => msg.dup > 0 && rnd.chance(msg.dup),
    delayMs: () => 1 + (msg.maxDelay > 1 ? rnd.int(msg.maxDelay) : 0),
  });
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const members = ids.map((id, i) => ({ id, url: `ws://127.0.0.1:${7000 + i}` })); // never dialled: the network is in memory
  const cluster = { members, n: o.n, partitions: PARTITIONS };
  const nodes = new Map<string, SimNode>(ids.map((id) => [id, { id, image: undefined, hintsDisk: new Map(), node: null, transport: null, dead: { value: false }, restarts: 0 }]));

  const start = async (s: SimNode): Promise<void> => {
    const dead = { value: false };
    s.dead = dead;
    // The node's timers die with it: a crashed process runs nothing more.
    const clock: Clock = {
      now: () => sched.now(),
      setTimeout: (fn, ms) => sched.setTimeout(() => dead.value || fn(), ms),
    };
    const defer = (fn: () => void): void => sched.defer(() => dead.value || fn());
    const storage = new MemoryStorage({ segments: SEGMENTS, now: clock.now, defer, ...(s.image ? { image: s.image } : {}) });
    s.image = storage.image();
    const disk = s.hintsDisk;
    const hints = new HintMirror(
      {
        persist: (upserts, deletes) => {
          for (const h of upserts) disk.set(h.id, { ...h });
          for (const id of deletes) disk.delete(id);
          return Promise.resolve();
        },
      },
      [...disk.values()].map((h) => ({ ...h })),
      defer,
    );
    const transport = net.transport(s.id, ids);
    const cfg = defaultNodeConfig({ id: s.id, port: 7000 + ids.indexOf(s.id), dataDir: 'memory', cluster }); // neither used: storage and transport are in memory
    cfg.antiEntropyIntervalMs = 1000;
    cfg.hintWindowMs = 60_000;
    cfg.tombstoneGraceMs = 3600_000;
    cfg.requestTimeoutMs = 2000;
    s.transport = transport;
    s.node = await NexusNode.start(cfg, { clock, log: silentLogger(), storage, transport, hints, incarnation: () => `${s.id}i${s.restarts}`, brokenMerge: o.brokenMerge === true });
  };

  /** kill -9: the process is gone; only what its storage committed survives. */
  const crash = async (s: SimNode): Promise<void> => {
    s.dead.value = true;
    await s.transport?.stop();
    s.node = null;
    s.transport = null;
    s.restarts++;
  };

  for (const s of nodes.values()) await start(s);
  await sched.runUntil(sched.now() + 1000); // links up, heartbeats learned

  // Clients: each fails over across the nodes from its own starting point, like NexusClient.
  const call = async (order: string[], m: Request, timeoutMs: number): Promise<unknown> => {
    await new Promise<void>((r) => sched.setTimeout(r, 1));
    const target = order.map((id) => nodes.get(id)!).find((s) => s.node !== null);
    if (!target) throw new NexusError(ErrorCodes.UNREACHABLE, 'no node is up');
    const node = target.node!;
    return new Promise((resolve, reject) => {
      const timer = sched.setTimeout(() => reject(new NexusError(ErrorCodes.TIMEOUT, `no answer within ${timeoutMs} ms`)), timeoutMs);
      node.handle({ kind: 'client', addr: 'sim' }, m, timeoutMs).then(
        (v) => sched.setTimeout(() => (timer.cancel(), resolve(v)), 1),
        (e: unknown) => sched.setTimeout(() => (timer.cancel(), reject(e)), 1),
      );
    });
  };
  // Reads are coordinated by the client, as NexusClient does with every node's URL (client/direct.ts):
  // node ids stand in for URLs, and a "link" to a node is a call to it alone.
  const readers: DirectReads[] = [];
  const client = (i: number): WorkloadClient => {
    const order = [...ids.slice(i % ids.length), ...ids.slice(0, i % ids.length)];
    const enc = (v: string): Uint8Array => new TextEncoder().encode(v);
    const reads = new DirectReads({
      urls: order,
      link: async (id) => ({ request: (m: Request, timeoutMs: number) => call([id], m, timeoutMs) }) as unknown as Link,
      coordinated: async (m, timeoutMs, id) => (await call(id === undefined ? order : [id], { ...m, timeoutMs }, timeoutMs)) as Replies['get'],
      patienceMs: 1000,
      clock: sched,
    });
    readers.push(reads);
    return {
      put: async (key, value, w) =>
        call(order, { t: 'put', key, value: enc(value), w: w.w ?? 2, timeoutMs: w.timeoutMs ?? 2000, ...(w.context ? { ctx: w.context } : {}), ...(w.strict ? { strict: true } : {}) }, w.timeoutMs ?? 2000),
      get: async (key, r) => {
        const res = await reads.get({ t: 'get', key, r: r.r ?? 2, timeoutMs: r.timeoutMs ?? 2000, ...(r.strict ? { strict: true } : {}) }, r.timeoutMs ?? 2000);
        return { values: res.values, context: res.ctx };
      },
      del: async (key, w) => {
        await call(order, { t: 'put', key, value: null, w: w.w ?? 2, timeoutMs: w.timeoutMs ?? 2000, ...(w.context ? { ctx: w.context } : {}) }, w.timeoutMs ?? 2000);
      },
    };
  };

  let phase = 'fault';
  const workload = new Workload({
    clients: Array.from({ length: o.clients }, (_, i) => ({ client: client(i), node: ids[i % ids.length]! })),
    keys: o.keys,
    r: o.r,
    w: o.w,
    strict: false,
    opTimeoutMs: 2000,
    now: () => sched.now() - t0,
    phase: () => phase,
    random: rnd.fork(),
  });
  workload.start();

  // Fault phase: episodes until its end, each from the seeded source.
  const frnd = rnd.fork();
  const faultEnd = sched.now() + o.faultSec * 1000;
  const maxDown = Math.floor((o.nodes - 1) / 2);
  msg.drop = 0.02;
  msg.dup = 0.02;
  msg.maxDelay = 20;
  while (sched.now() < faultEnd) {
    const kind = frnd.pick(['crash', 'partition', 'swizzle'] as const);
    const hold = frnd.between(200, 1500);
    if (kind === 'crash') {
      const up = [...nodes.values()].filter((s) => s.node !== null);
      if (o.nodes - up.length < maxDown) {
        const victim = frnd.pick(up);
        note(`crash ${victim.id}`);
        await crash(victim);
        await sched.runUntil(sched.now() + hold);
        note(`restart ${victim.id}`);
        await start(victim);
      }
    } else if (kind === 'partition') {
      const side = new Set(ids.filter(() => frnd.chance(0.5)));
      const cuts: Array<[string, string]> = [];
      for (const a of ids) for (const b of ids) if (a < b && side.has(a) !== side.has(b)) cuts.push([a, b]);
      note(`partition {${[...side].join(',')}} | rest`);
      for (const [a, b] of cuts) net.disconnect(a, b);
      await sched.runUntil(sched.now() + hold);
      for (const [a, b] of cuts) net.connect(a, b);
      note('heal');
    } else {
      // Swizzle-clog: cut a random subset of links one by one, then restore them in random order.
      const pairs: Array<[string, string]> = [];
      for (const a of ids) for (const b of ids) if (a < b && frnd.chance(0.4)) pairs.push([a, b]);
      note(`swizzle ${pairs.map((p) => p.join('-')).join(' ')}`);
      for (const [a, b] of pairs) {
        net.disconnect(a, b);
        await sched.runUntil(sched.now() + frnd.between(20, 200));
      }
      const order = [...pairs];
      while (order.length > 0) {
        const [a, b] = order.splice(frnd.int(order.length), 1)[0]!;
        net.connect(a, b);
        await sched.runUntil(sched.now() + frnd.between(20, 200));
      }
    }
    await sched.runUntil(sched.now() + frnd.between(50, 300));
  }

  // Heal: every node up, every link whole, no message faults; the workload runs on a little.
  phase = 'heal';
  msg.drop = 0;
  msg.dup = 0;
  msg.maxDelay = 1;
  for (const s of nodes.values()) if (s.node === null) await start(s);
  for (const a of ids) for (const b of ids) if (a < b) net.connect(a, b);
  note('all healed');
  const healedAt = sched.now();
  await sched.runUntil(sched.now() + o.healSec * 1000);
  let stopped = false;
  const stopping = workload.stop().then(() => (stopped = true));
  while (!stopped) await sched.runUntil(sched.now() + 100);
  await stopping;

  // Converge: hints delivered and every key's replicas identical, checked each virtual second.
  const ring = new Ring(cluster);
  const keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  const replicasOf = (k: string): string[] => ring.primaries(ring.partitionOf(k));
  const converged = (): boolean => {
    for (const s of nodes.values()) if ([...s.node!.hints.pendingHints().values()].some((c) => c > 0)) return false;
    return keys.every((k) => {
      const hashes = replicasOf(k).map((id) => {
        const obj = nodes.get(id)!.node!.storage.get(k);
        return obj === undefined ? '' : keyObjectHash(k, obj).toString('hex');
      });
      return hashes.every((h) => h === hashes[0]);
    });
  };
  let convergeMs: number | null = null;
  const convergeBy = sched.now() + o.convergeSec * 1000;
  while (sched.now() < convergeBy) {
    if (converged()) {
      convergeMs = sched.now() - healedAt;
      break;
    }
    await sched.runUntil(sched.now() + 1000);
  }

  const finals = new Map<string, ReplicaState>();
  for (const s of nodes.values()) {
    const state: ReplicaState = new Map();
    for (const k of keys) {
      const obj = s.node!.storage.get(k);
      if (obj) state.set(k, liveValues(obj).map((v) => Buffer.from(v).toString('utf8')).sort());
    }
    finals.set(s.id, state);
  }
  for (const s of nodes.values()) await crash(s); // stop everything; nothing of it is kept
  const verdict = check({ history: workload.history, finals, replicasOf, n: o.n });
  const report: DetReport = {
    ...verdict,
    ok: verdict.ok && convergeMs !== null,
    seed: o.seed,
    convergeMs,
    faults,
    steps: sched.steps,
    replay: `npx nexus sim --deterministic --seed ${o.seed} --nodes ${o.nodes} --duration ${o.faultSec} --clients ${o.clients} --keys ${o.keys} --r ${o.r} --w ${o.w}`,
  };
  const reads = noReadStats();
  for (const r of readers) for (const k of Object.keys(reads) as Array<keyof DirectReadStats>) reads[k] += r.stats[k];
  return { report, history: workload.history, reads };
}
