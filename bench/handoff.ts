// The hinted-handoff benchmark (issue 3, "Performance"): in one run, on this machine,
//   0. before: the foreground load below with every node up and no hint ever queued (a control
//      with the same membership as the delivery window);
//   1. a local 5-node cluster (N=3, durability fsync); node T is killed (kill -9 by default) and
//      the others wait until they judge it down;
//   2. 100,000 distinct keys whose primaries include T are written (100-byte values, W=2), so each
//      leaves a hint for T on a stand-in; every stand-in's status must show them pending;
//   3. baseline: foreground puts (16 outstanding, W=2, fresh keys none of whose replicas is T) for a
//      few seconds with T still down — no delivery;
//   4. T is restarted at the start of the next measured window, and the same foreground load runs
//      while the stand-ins deliver; status is polled every 100 ms until no hint for T is pending
//      anywhere. Delivery rate = hints ÷ (time from T's process start to zero pending);
//   5. control: the same foreground load with T up and nothing to deliver.
// Bars: delivery ≥ 5,000 hints/s at the defaults; foreground p99 during delivery ≤ 2× without.
//
//   npm run bench:handoff [-- --hints 100000 --json --out bench/results]

import { Command, InvalidArgumentError } from 'commander';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NexusClient } from '../src/client/client.js';
import { Ring, selectReplicas } from '../src/ring/index.js';
import type { NodeStatus } from '../src/transport/protocol.js';
import { LocalCluster } from '../src/sim/local-cluster.js';
import { runClosedLoop, type LoadResult } from '../src/bench/load.js';
import { readLog, type LogEvent } from './lib/logs.js';
import { cpuSecondsOf, machineBusySeconds, machineInfo, sourceVersion, waitForQuiet, type MachineInfo } from '../src/bench/machine.js';
import { NodeClients } from './lib/nodes.js';
import { formatUs } from './lib/report.js';
import { summarize, type LatencySummary } from './lib/stats.js';
import { CLI_MAIN, commandLine, positive, progress, ROOT, round2, sleep } from './lib/args.js';

const N = 3;
const PARTITIONS = 64;
const W = 2;
const REQUEST_TIMEOUT_MS = 10_000;
const POLL_MS = 100;
const DELIVERY_BAR = 5000;
const P99_BAR = 2;

interface Options {
  hints: number;
  nodes: number;
  concurrency: number;
  loadConcurrency: number;
  duration: number;
  warmup: number;
  valueBytes: number;
  stop: 'kill' | 'term';
  handoffRate?: number;
  nodeArgs?: string;
  maxDelivery: number;
  quietTimeout: number;
  json: boolean;
  out: string;
  keepData: boolean;
  profile: boolean;
}

function parseArgs(): Options {
  const program = new Command()
    .name('bench:handoff')
    .description('Nexus hinted-handoff benchmark: delivery rate of queued hints, and foreground put latency while they are delivered')
    .option('--hints <n>', 'hints queued for the stopped node', positive('--hints', true), 100_000)
    .option('--nodes <k>', 'cluster size (4 or more; N=3)', positive('--nodes', true), 5)
    .option('--concurrency <c>', 'outstanding foreground puts', positive('--concurrency', true), 16)
    .option('--load-concurrency <c>', 'outstanding puts while queueing the hints', positive('--load-concurrency', true), 64)
    .option('--duration <sec>', 'measured seconds of the before, baseline and control phases', positive('--duration', false), 10)
    .option('--warmup <sec>', 'unrecorded warm-up seconds before each foreground phase', positive('--warmup', false), 1)
    .option('--value-bytes <b>', 'value size', positive('--value-bytes', true), 100)
    .option('--stop <how>', 'how T is stopped: kill (kill -9) or term (SIGTERM, clean stop)', (v: string) => {
      if (v !== 'kill' && v !== 'term') throw new InvalidArgumentError('--stop must be kill or term');
      return v;
    }, 'kill')
    .option('--handoff-rate <hints/s>', 'pass --handoff-rate to every node (default: the nodes\' default)', positive('--handoff-rate', true))
    .option('--node-args <args>', 'more `nexus start` arguments for every node, e.g. --node-args="--ae-interval-ms 3600000"')
    .option('--max-delivery <sec>', 'give up if hints are still pending this long after T restarted', positive('--max-delivery', false), 300)
    .option('--quiet-timeout <sec>', 'before each phase, wait up to this long for the machine to be idle', positive('--quiet-timeout', false), 30)
    .option('--json', 'print one JSON document on stdout instead of the tables', false)
    .option('--out <dir>', 'folder for the results JSON and markdown', join(ROOT, 'bench', 'results'))
    .option('--keep-data', 'keep the cluster\'s temp folder (data and node logs) after the run', false)
    .option('--profile', 'run every node process with --cpu-prof; profiles go to <out>/profiles-handoff-<time>/', false)
    .showHelpAfterError();
  program.parse(process.argv);
  const o = program.opts<Options>();
  if (o.nodes < N + 1) program.error(`--nodes must be at least ${N + 1} (a stand-in is needed besides the N=${N} primaries)`);
  return o;
}


interface FgPhase {
  load: LoadResult;
  /** Latency over a sub-interval of the window (delivery phase only). */
  sub?: Record<string, { seconds: number; ops: number; throughput: number; latencyUs: LatencySummary }>;
}

interface HandoffRun {
  targetLog: { startedMs?: number };
  standIns: Array<{
    id: string;
    expected: number;
    pendingBefore: number;
    judgedUpMs?: number;
    runs: Array<{ startMs: number; endMs?: number; delivered?: number; ms?: number; interrupted?: string }>;
  }>;
}

export interface HandoffResults {
  benchmark: 'handoff';
  command: string;
  startedAt: string;
  machine: MachineInfo;
  source: { commit: string; srcDirty: boolean | null };
  settings: Record<string, unknown>;
  queue: { hints: number; seconds: number; putsPerSec: number; retries: number; pendingPerStandIn: Record<string, number>; expectedPerStandIn: Record<string, number> };
  /** Every node up, before T is stopped and before any hint exists. */
  before: FgPhase;
  baseline: FgPhase;
  delivery: {
    completed: boolean;
    remaining: number;
    /** From T's process start (spawn) to zero pending, as seen by polling status. */
    seconds: number;
    hintsPerSec: number;
    /** Milestones in ms after T's spawn (from the nodes' own log timestamps). */
    milestones: Record<string, number | null>;
    /** Hints/s between the first handoff batch and the last stand-in finishing. */
    activeHintsPerSec: number | null;
    handoff: HandoffRun;
    cpuCores: Record<string, number | null>;
    target: { commits: number; writes: number; writesPerCommit: number };
    /** Anti-entropy work during the delivery window, summed over all nodes (it repairs T too). */
    antiEntropy: { exchanges: number; keysRepaired: number; bytesSent: number };
    samples: Array<{ ms: number; pending: number; inProgress: string[] }>;
    fg: FgPhase;
  };
  after: FgPhase;
  bars: Array<{ name: string; value: number; op: '>=' | '<='; target: number; pass: boolean }>;
  /** The same p99 compared with the control phase (T up, nothing pending): not a bar, a cross-check. */
  p99VsAfter: number;
  /** The same p99 compared with the phase before T was stopped (every node up): a cross-check. */
  p99VsBefore: number;
  findings: string[];
}

async function main(): Promise<void> {
  const o = parseArgs();
  const startedAt = new Date().toISOString();
  const stamp = startedAt.replace(/[:.]/g, '-');
  const machine = machineInfo();
  const value = randomBytes(o.valueBytes);
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; ${o.nodes} nodes, ${o.hints.toLocaleString('en-US')} hints`);

  const nodeArgs = [...(o.handoffRate !== undefined ? ['--handoff-rate', String(o.handoffRate)] : []), ...(o.nodeArgs?.trim().split(/\s+/).filter(Boolean) ?? [])];
  progress(`starting a ${o.nodes}-node cluster (N=${N}, ${PARTITIONS} partitions, durability fsync${nodeArgs.length ? `, ${nodeArgs.join(' ')}` : ''}) …`);
  const profileDir = o.profile ? resolve(o.out, `profiles-handoff-${stamp}`) : undefined;
  if (profileDir) progress(`profiling every node process into ${profileDir}/ (the restarted T writes a second profile)`);
  const nodeFlags = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const cluster = await LocalCluster.start({ nodes: o.nodes, n: N, partitions: PARTITIONS, durability: 'fsync', mainScript: CLI_MAIN, nodeArgs, nodeFlags, keep: o.keepData });
  if (o.keepData) progress(`cluster data and logs kept in ${cluster.dir}`);
  const clients = new NodeClients(cluster.urls, 5000);
  let writer: NexusClient | undefined;
  try {
    const ids = cluster.ids;
    const tIdx = ids.length - 1;
    const T = ids[tIdx]!;
    const others = ids.map((_, i) => i).filter((i) => i !== tIdx);
    const otherUrls = others.map((i) => cluster.urls[i]!);
    const ring = new Ring({ members: ids.map((id, i) => ({ id, url: cluster.urls[i]! })), partitions: PARTITIONS, n: N });
    const involvesT = (key: string): boolean => ring.primaries(ring.partitionOf(key)).includes(T);

    const pendingFor = async (): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const i of others) {
        const me = await clients.self(i, ids[i]!);
        const n = (me.hintsByTarget as Record<string, number> | undefined)?.[T] ?? 0;
        if (n > 0) out[ids[i]!] = n;
      }
      return out;
    };
    const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

    // Foreground load: fresh keys none of whose primaries is T, spread over the nodes other than T.
    const fg = new NexusClient({ nodes: otherUrls, strategy: 'spread', timeoutMs: REQUEST_TIMEOUT_MS });
    const fgOp = (prefix: string): (() => Promise<unknown>) => {
      let seq = 0;
      return () => {
        let key: string;
        do key = `${prefix}-${String(seq++).padStart(9, '0')}`;
        while (involvesT(key));
        return fg.put(key, value, { w: W });
      };
    };
    const otherPids = (): number[] => others.map((i) => cluster.pidOf(i));
    const quiet = async (label: string): Promise<void> => {
      const q = await waitForQuiet(0.25, o.quietTimeout * 1000);
      if (q && q.busyCores > 0.25) progress(`${label}: machine still ${q.busyCores} cores busy after waiting ${o.quietTimeout} s`);
    };
    const describe = (r: LoadResult): string => {
      const err = r.errors > 0 ? `, ${r.errors} errors (${r.firstError})` : '';
      return `${r.throughput.toLocaleString('en-US')} puts/s, p50 ${formatUs(r.latencyUs.p50)}, p99 ${formatUs(r.latencyUs.p99)}, max ${formatUs(r.latencyUs.max)}${err}`;
    };

    // Status is polled every POLL_MS in every foreground phase (it costs the nodes some work, so
    // baseline and control pay for it too); during delivery the poll also watches for zero pending.
    const observer = others[0]!;
    let spawnPerf = 0;
    let zeroPerf: number | undefined;
    let remaining = o.hints;
    const samples: Array<{ ms: number; pending: number; inProgress: string[] }> = [];
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const cpuAt: { start?: Map<number, number | undefined>; end?: Map<number, number | undefined>; machineStart?: number; machineEnd?: number } = {};
    let targetSelf: NodeStatus | undefined;
    let aeAfter: NodeStatus[] = [];
    let watching = false; // true once T restarted
    const startPoller = (): (() => Promise<void>) => {
      let stop = false;
      const loop = (async (): Promise<void> => {
        while (!stop) {
          const tick = performance.now();
          try {
            const s = await clients.status(observer);
            if (watching && zeroPerf === undefined) {
              const t = s.nodes.find((n) => n.id === T);
              const pending = typeof t?.hintsAwaiting === 'number' ? t.hintsAwaiting : NaN;
              const inProgress = s.nodes.filter((n) => Array.isArray(n.handoffInProgress) && (n.handoffInProgress as string[]).includes(T)).map((n) => n.id);
              const now = performance.now();
              samples.push({ ms: Math.round(now - spawnPerf), pending, inProgress });
              remaining = Number.isNaN(pending) ? remaining : pending;
              if (pending === 0) {
                // The observer's figures for its peers are their last reports: confirm with each
                // node's own status before calling it done.
                const exact = await pendingFor();
                if (total(exact) === 0) {
                  zeroPerf = now;
                  cpuAt.end = new Map([...otherPids(), cluster.pidOf(tIdx)].map((p) => [p, cpuSecondsOf(p)]));
                  cpuAt.machineEnd = machineBusySeconds();
                  targetSelf = await clients.self(tIdx, T).catch(() => undefined);
                  aeAfter = await Promise.all(others.map((i) => clients.self(i, ids[i]!))).catch(() => []);
                  resolveDone();
                } else remaining = total(exact);
              }
            }
          } catch (e) {
            if (watching) samples.push({ ms: Math.round(performance.now() - spawnPerf), pending: NaN, inProgress: [`status failed: ${(e as Error).message}`] });
          }
          const wait = POLL_MS - (performance.now() - tick);
          if (wait > 0) await sleep(wait);
        }
      })();
      return async () => {
        stop = true;
        await loop;
      };
    };
    const withPolling = async <X>(f: () => Promise<X>): Promise<X> => {
      const stop = startPoller();
      try {
        return await f();
      } finally {
        await stop();
      }
    };

    /** A fixed-length foreground phase (before, baseline, after), on a quiet machine, status polled. */
    const controlPhase = async (label: string, state: string, prefix: string): Promise<LoadResult> => {
      await quiet(label);
      progress(`${label}: foreground puts @${o.concurrency}, ${state}, ${o.duration} s …`);
      const load = await withPolling(() =>
        runClosedLoop(fgOp(prefix), { concurrency: o.concurrency, durationMs: o.duration * 1000, warmupMs: o.warmup * 1000, serverPids: otherPids() }),
      );
      progress(`${label}: ${describe(load)}`);
      return load;
    };

    // 0. Before: the same foreground load with every node up and nothing ever queued, so the
    //    delivery window can also be compared with the cluster T returns to (a cross-check).
    const beforeLoad = await controlPhase('before', 'every node up, nothing pending', 'fg-before');

    // 1. Stop T and wait until every other node judges it down.
    progress(`stopping ${T} (${o.stop === 'kill' ? 'kill -9' : 'SIGTERM'}) …`);
    const stoppedAt = Date.now();
    await cluster.signal(tIdx, o.stop === 'kill' ? 'SIGKILL' : 'SIGTERM');
    for (const i of others) {
      for (;;) {
        const s = await clients.status(i);
        if (s.nodes.find((n) => n.id === T)?.state === 'down') break;
        if (Date.now() - stoppedAt > 30_000) throw new Error(`${ids[i]} does not judge ${T} down 30 s after it was stopped`);
        await sleep(20);
      }
    }
    progress(`every node judges ${T} down (${Date.now() - stoppedAt} ms after the signal)`);

    // 2. Queue the hints: keys whose primaries include T; the stand-in for T is predictable.
    const isUp = (id: string): boolean => id !== T;
    const hintKeys: string[] = [];
    const expected: Record<string, number> = {};
    for (let i = 0; hintKeys.length < o.hints; i++) {
      const key = `hint-${String(i).padStart(9, '0')}`;
      const p = ring.partitionOf(key);
      if (!ring.primaries(p).includes(T)) continue;
      hintKeys.push(key);
      const standIn = selectReplicas(ring.preferenceList(p), N, isUp).find((c) => c.hintFor === T)?.node ?? '?';
      expected[standIn] = (expected[standIn] ?? 0) + 1;
    }
    progress(`writing ${o.hints.toLocaleString('en-US')} keys with ${T} among their primaries (W=${W}, ${o.loadConcurrency} outstanding); expected hints per stand-in: ${JSON.stringify(expected)} …`);
    writer = new NexusClient({ nodes: otherUrls, strategy: 'spread', timeoutMs: REQUEST_TIMEOUT_MS });
    const w = writer;
    let next = 0;
    let retries = 0;
    const q0 = performance.now();
    await Promise.all(
      Array.from({ length: o.loadConcurrency }, async () => {
        while (next < hintKeys.length) {
          const key = hintKeys[next++]!;
          for (let attempt = 1; ; attempt++) {
            try {
              await w.put(key, value, { w: W });
              break;
            } catch (e) {
              retries++;
              if (attempt >= 5) throw new Error(`put ${key} failed ${attempt} times: ${(e as Error).message}`);
            }
          }
        }
      }),
    );
    const queueSec = (performance.now() - q0) / 1000;
    progress(`queued in ${queueSec.toFixed(1)} s (${Math.round(o.hints / queueSec).toLocaleString('en-US')} puts/s, ${retries} retries)`);

    // Each stand-in's own status must show the hints for T (a hint is durable before its ack; the
    // W=2 put may answer before the stand-in's ack, so wait briefly for the last ones).
    let pendingBefore = await pendingFor();
    for (const deadline = Date.now() + 30_000; total(pendingBefore) < o.hints && Date.now() < deadline; ) {
      await sleep(200);
      pendingBefore = await pendingFor();
    }
    progress(`hints pending for ${T}: ${total(pendingBefore).toLocaleString('en-US')} ${JSON.stringify(pendingBefore)}`);
    if (total(pendingBefore) !== o.hints) throw new Error(`expected ${o.hints} hints pending for ${T}, the stand-ins report ${total(pendingBefore)}: ${JSON.stringify(pendingBefore)}`);

    // 3. Baseline: T down, nothing delivered.
    const baselineLoad = await controlPhase('baseline', `${T} down`, 'fg-base');

    // 4. Restart T at the start of the measured window and keep the load on until nothing is pending.
    await quiet('delivery');
    progress(`delivery: foreground puts @${o.concurrency}; restarting ${T} when the window opens …`);
    let spawnedAt = 0; // epoch ms
    const aeBefore = await Promise.all(others.map((i) => clients.self(i, ids[i]!)));
    const fgSamples: Array<[number, number]> = [];
    const deliveryLoad = await withPolling(() =>
      runClosedLoop(fgOp('fg-deliv'), {
        concurrency: o.concurrency,
        durationMs: o.maxDelivery * 1000,
        warmupMs: o.warmup * 1000,
        serverPids: otherPids(),
        until: done,
        onOp: (t, us) => fgSamples.push([t, us]),
        onMeasureStart: () => {
          cpuAt.start = new Map(otherPids().map((p) => [p, cpuSecondsOf(p)]));
          cpuAt.machineStart = machineBusySeconds();
          spawnPerf = performance.now();
          spawnedAt = cluster.restart(tIdx);
          watching = true;
        },
      }),
    );
    const completed = zeroPerf !== undefined;
    const deliverySec = ((zeroPerf ?? performance.now()) - spawnPerf) / 1000;
    progress(
      completed
        ? `delivery: ${o.hints.toLocaleString('en-US')} hints in ${deliverySec.toFixed(2)} s from ${T}'s restart = ${Math.round(o.hints / deliverySec).toLocaleString('en-US')} hints/s`
        : `delivery: NOT complete after ${deliverySec.toFixed(0)} s: ${remaining} hints still pending`,
    );
    progress(`delivery window foreground: ${describe(deliveryLoad)}`);

    // Milestones from the nodes' own logs.
    await sleep(300); // let pino flush the last lines
    const handoff = collectHandoff(cluster, tIdx, others, spawnedAt, expected, pendingBefore);
    const tStarted = handoff.targetLog.startedMs;
    const judged = handoff.standIns.map((s) => s.judgedUpMs).filter((x): x is number => x !== undefined);
    const starts = handoff.standIns.flatMap((s) => s.runs.map((r) => r.startMs));
    const ends = handoff.standIns.flatMap((s) => s.runs.map((r) => r.endMs).filter((x): x is number => x !== undefined));
    const firstStart = starts.length ? Math.min(...starts) : null;
    const lastEnd = ends.length && completed ? Math.max(...ends) : null;
    const zeroMs = completed ? Math.round(zeroPerf! - spawnPerf) : null;
    const milestones: Record<string, number | null> = {
      'T logs "node started"': tStarted ?? null,
      'stand-ins judge T up (first)': judged.length ? Math.min(...judged) : null,
      'stand-ins judge T up (last)': judged.length ? Math.max(...judged) : null,
      'first handoff started': firstStart,
      'last handoff finished': lastEnd,
      'zero pending seen in status': zeroMs,
    };
    const activeSec = firstStart !== null && lastEnd !== null ? (lastEnd - firstStart) / 1000 : null;

    // Foreground latency over sub-intervals of the window.
    const sub = (from: number, to: number) => {
      const xs = fgSamples.filter(([t]) => t >= from && t <= to).map(([, us]) => us);
      const seconds = Math.max(1e-9, (to - from) / 1000);
      return { seconds: Math.round(seconds * 1000) / 1000, ops: xs.length, throughput: Math.round(xs.length / seconds), latencyUs: summarize(xs) };
    };
    const fgSub: NonNullable<FgPhase['sub']> = {};
    if (completed) fgSub['T restart → zero pending'] = sub(spawnPerf, zeroPerf!);
    if (firstStart !== null && lastEnd !== null) fgSub['handoff running (first batch → last finished)'] = sub(spawnPerf + firstStart, spawnPerf + lastEnd);
    if (firstStart !== null) fgSub['T restart → first handoff (no delivery yet)'] = sub(spawnPerf, spawnPerf + firstStart);

    // CPU over restart → zero, per process, in cores.
    const cpuCores: Record<string, number | null> = {};
    if (completed && cpuAt.start && cpuAt.end) {
      for (const i of others) {
        const pid = cluster.pidOf(i);
        const a = cpuAt.start.get(pid);
        const b = cpuAt.end.get(pid);
        cpuCores[ids[i]!] = a === undefined || b === undefined ? null : round2((b - a) / deliverySec);
      }
      const tCpu = cpuAt.end.get(cluster.pidOf(tIdx));
      cpuCores[`${T} (restarted)`] = tCpu === undefined ? null : round2(tCpu / deliverySec);
      if (cpuAt.machineStart !== undefined && cpuAt.machineEnd !== undefined) {
        const machineCores = (cpuAt.machineEnd - cpuAt.machineStart) / deliverySec;
        // Everything but the benchmark: the machine minus the load generator and all the nodes.
        const nodes = Object.values(cpuCores).reduce<number>((a, x) => a + (x ?? 0), 0);
        cpuCores['machine (all)'] = round2(machineCores);
        cpuCores['other processes'] = round2(Math.max(0, machineCores - nodes - deliveryLoad.cpu.client));
      }
    }
    const num = (n: NodeStatus | undefined, f: string): number => (typeof n?.[f] === 'number' ? (n[f] as number) : 0);
    const aeDelta = (f: string): number => num(targetSelf, f) + aeAfter.reduce((a, n, k) => a + num(n, f) - num(aeBefore[k], f), 0);
    const antiEntropy = { exchanges: aeDelta('aeExchanges'), keysRepaired: aeDelta('aeKeysRepaired'), bytesSent: aeDelta('aeBytesSent') };
    const tCommits = typeof targetSelf?.commits === 'number' ? targetSelf.commits : 0;
    const tWrites = typeof targetSelf?.writes === 'number' ? targetSelf.writes : 0;

    // 5. Control: T up, nothing to deliver.
    const afterLoad = await controlPhase('after', `${T} up, nothing pending`, 'fg-after');
    fg.close();

    const hintsPerSec = completed ? Math.round(o.hints / deliverySec) : 0;
    const duringKey = fgSub['handoff running (first batch → last finished)'] ? 'handoff running (first batch → last finished)' : 'T restart → zero pending';
    const duringP99 = fgSub[duringKey]?.latencyUs.p99 ?? deliveryLoad.latencyUs.p99;
    const ratio = baselineLoad.latencyUs.p99 > 0 ? duringP99 / baselineLoad.latencyUs.p99 : NaN;
    const bars: HandoffResults['bars'] = [
      { name: 'delivery rate, hints/s (T restart → zero pending)', value: hintsPerSec, op: '>=', target: DELIVERY_BAR, pass: completed && hintsPerSec >= DELIVERY_BAR },
      { name: `foreground put p99 during delivery (${duringKey}) ÷ baseline p99 (T down)`, value: round2(ratio), op: '<=', target: P99_BAR, pass: Number.isFinite(ratio) && ratio <= P99_BAR },
    ];

    const results: HandoffResults = {
      benchmark: 'handoff',
      command: commandLine('handoff'),
      startedAt,
      machine,
      source: sourceVersion(ROOT),
      settings: {
        nodes: o.nodes,
        nodeArgs: nodeArgs.join(' ') || 'none (node defaults)',
        n: N,
        partitions: PARTITIONS,
        w: W,
        durability: 'fsync',
        target: T,
        stop: o.stop === 'kill' ? 'kill -9' : 'SIGTERM',
        hints: o.hints,
        valueBytes: o.valueBytes,
        foregroundConcurrency: o.concurrency,
        foregroundKeys: `fresh keys none of whose primaries is ${T}, client spread over the other nodes`,
        loadConcurrency: o.loadConcurrency,
        durationSec: o.duration,
        warmupSec: o.warmup,
        pollMs: POLL_MS,
        handoffRate: o.handoffRate ?? 'node default (10,000/s per stand-in)',
      },
      queue: { hints: o.hints, seconds: round2(queueSec), putsPerSec: Math.round(o.hints / queueSec), retries, pendingPerStandIn: pendingBefore, expectedPerStandIn: expected },
      baseline: { load: baselineLoad },
      delivery: {
        completed,
        remaining: completed ? 0 : remaining,
        seconds: round2(deliverySec),
        hintsPerSec,
        milestones,
        activeHintsPerSec: activeSec !== null && activeSec > 0 ? Math.round(o.hints / activeSec) : null,
        handoff,
        cpuCores,
        target: { commits: tCommits, writes: tWrites, writesPerCommit: tCommits === 0 ? 0 : round2(tWrites / tCommits) },
        antiEntropy,
        samples,
        fg: { load: deliveryLoad, sub: fgSub },
      },
      before: { load: beforeLoad },
      after: { load: afterLoad },
      bars,
      p99VsAfter: afterLoad.latencyUs.p99 > 0 ? round2(duringP99 / afterLoad.latencyUs.p99) : NaN,
      p99VsBefore: beforeLoad.latencyUs.p99 > 0 ? round2(duringP99 / beforeLoad.latencyUs.p99) : NaN,
      findings: [],
    };
    results.findings = findings(results);
    const table = markdown(results);
    mkdirSync(o.out, { recursive: true });
    const base = join(o.out, `handoff-${stamp}`);
    writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n');
    writeFileSync(`${base}.md`, `# Nexus hinted-handoff benchmark\n\n${table}\n`);
    progress(`results written to ${base}.json and ${base}.md`);
    if (o.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    else process.stdout.write(`\n${table}\n`);
  } finally {
    writer?.close();
    clients.close();
    await cluster.stop();
  }
}

/** Handoff milestones (ms after T's spawn) from the logs of T and of the stand-ins. */
function collectHandoff(cluster: LocalCluster, tIdx: number, others: number[], spawnedAt: number, expected: Record<string, number>, pendingBefore: Record<string, number>): HandoffRun {
  const T = cluster.ids[tIdx]!;
  const after = (e: LogEvent): boolean => e.time >= spawnedAt;
  const rel = (e: LogEvent): number => e.time - spawnedAt;
  const tLog = readLog(cluster.logPath(tIdx)).filter(after);
  const started = tLog.find((e) => e.msg === 'node started');
  const standIns: HandoffRun['standIns'] = [];
  for (const i of others) {
    const id = cluster.ids[i]!;
    if (!pendingBefore[id] && !expected[id]) continue;
    const log = readLog(cluster.logPath(i)).filter(after);
    const up = log.find((e) => e.peer === T && e.state === 'up' && typeof e.msg === 'string' && e.msg.includes('judged up'));
    const runs: HandoffRun['standIns'][number]['runs'] = [];
    for (const e of log) {
      if (e.target !== T) continue;
      if (e.msg === `handoff to ${T} started`) runs.push({ startMs: rel(e) });
      else if (e.msg === `handoff to ${T} finished` || e.msg.startsWith(`handoff to ${T} interrupted`)) {
        const r = runs[runs.length - 1];
        if (!r) continue;
        r.endMs = rel(e);
        if (typeof e.delivered === 'number') r.delivered = e.delivered;
        if (typeof e.ms === 'number') r.ms = e.ms;
        if (e.msg.includes('interrupted')) r.interrupted = String(e.err ?? '');
      }
    }
    standIns.push({ id, expected: expected[id] ?? 0, pendingBefore: pendingBefore[id] ?? 0, ...(up ? { judgedUpMs: rel(up) } : {}), runs });
  }
  return { targetLog: started ? { startedMs: rel(started) } : {}, standIns };
}

function findings(r: HandoffResults): string[] {
  const out: string[] = [];
  const d = r.delivery;
  for (const s of d.handoff.standIns) {
    const delivered = s.runs.reduce((a, x) => a + (x.delivered ?? 0), 0);
    const ms = s.runs.reduce((a, x) => a + (x.ms ?? 0), 0);
    if (ms > 0) out.push(`${s.id} delivered ${delivered.toLocaleString('en-US')} hints in ${(ms / 1000).toFixed(2)} s of handoff (${Math.round(delivered / (ms / 1000)).toLocaleString('en-US')} hints/s; ${s.runs.length} run(s)${s.runs.some((x) => x.interrupted) ? `, interrupted: ${s.runs.filter((x) => x.interrupted).map((x) => x.interrupted).join('; ')}` : ''}).`);
  }
  const m = d.milestones;
  const first = m['first handoff started'];
  if (first !== null && first !== undefined && d.completed) out.push(`Of the ${d.seconds.toFixed(2)} s from T's restart to zero pending, ${(first / 1000).toFixed(2)} s passed before the first handoff batch (process start, listening, links, detector judging T up).`);
  if (d.target.commits > 0) out.push(`T committed ${d.target.writes.toLocaleString('en-US')} writes in ${d.target.commits.toLocaleString('en-US')} commits during delivery (${d.target.writesPerCommit} writes per commit).`);
  return out;
}

function markdown(r: HandoffResults): string {
  const out: string[] = [];
  const s = r.settings;
  const T = String(s.target);
  const cpu = (l: LoadResult): string => {
    const f = (x: number | null): string => (x === null ? '?' : x.toFixed(2));
    return `${f(l.cpu.client)} / ${f(l.cpu.servers)} / ${f(l.cpu.other)}`;
  };
  out.push(`| Foreground puts @${s.foregroundConcurrency}, W=${s.w} | window | puts/s | p50 | p99 | p99.9 | max | errors | CPU client / other nodes / other (cores) |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (name: string, l: LoadResult): void => {
    out.push(`| ${name} | ${l.seconds.toFixed(1)} s | ${l.throughput.toLocaleString('en-US')} | ${formatUs(l.latencyUs.p50)} | ${formatUs(l.latencyUs.p99)} | ${formatUs(l.latencyUs.p999)} | ${formatUs(l.latencyUs.max)} | ${l.errors} | ${cpu(l)} |`);
  };
  row(`before: every node up, nothing pending`, r.before.load);
  row(`baseline: ${T} down, no delivery`, r.baseline.load);
  row(`delivery: ${T} restart → zero pending`, r.delivery.fg.load);
  for (const [name, x] of Object.entries(r.delivery.fg.sub ?? {})) {
    if (name === 'T restart → zero pending') continue;
    out.push(`| … ${name} | ${x.seconds.toFixed(1)} s | ${x.throughput.toLocaleString('en-US')} | ${formatUs(x.latencyUs.p50)} | ${formatUs(x.latencyUs.p99)} | ${formatUs(x.latencyUs.p999)} | ${formatUs(x.latencyUs.max)} | | |`);
  }
  row(`after: ${T} up, nothing pending`, r.after.load);
  out.push('');
  const d = r.delivery;
  out.push('| Delivery | value |');
  out.push('|---|---:|');
  out.push(`| hints queued for ${T} (per stand-in) | ${r.queue.hints.toLocaleString('en-US')} (${Object.entries(r.queue.pendingPerStandIn).map(([k, v]) => `${k}: ${v.toLocaleString('en-US')}`).join(', ')}) |`);
  out.push(`| queueing: puts/s while ${T} down (@${s.loadConcurrency}) | ${r.queue.putsPerSec.toLocaleString('en-US')} |`);
  out.push(`| ${T} restart → zero pending | ${d.completed ? `${d.seconds.toFixed(2)} s` : `not done after ${d.seconds.toFixed(0)} s (${d.remaining} left)`} |`);
  out.push(`| **delivery rate (restart → zero)** | **${d.hintsPerSec.toLocaleString('en-US')} hints/s** |`);
  if (d.activeHintsPerSec !== null) out.push(`| delivery rate while handoff runs (first batch → last finished) | ${d.activeHintsPerSec.toLocaleString('en-US')} hints/s |`);
  for (const [k, v] of Object.entries(d.milestones)) out.push(`| ms after ${T}'s spawn: ${k} | ${v === null ? '–' : v.toLocaleString('en-US')} |`);
  if (Object.keys(d.cpuCores).length) out.push(`| CPU restart → zero (cores) | ${Object.entries(d.cpuCores).map(([k, v]) => `${k} ${v ?? '?'}`).join(', ')} |`);
  out.push(`| ${T}'s commits during delivery | ${d.target.commits.toLocaleString('en-US')} commits, ${d.target.writes.toLocaleString('en-US')} writes (${d.target.writesPerCommit} per commit) |`);
  out.push(`| anti-entropy during delivery (all nodes): exchanges, keys repaired, bytes sent | ${d.antiEntropy.exchanges}, ${d.antiEntropy.keysRepaired.toLocaleString('en-US')}, ${d.antiEntropy.bytesSent.toLocaleString('en-US')} |`);
  out.push('');
  out.push('| Bar | Value | Target | Result |');
  out.push('|---|---:|---:|---|');
  for (const b of r.bars) out.push(`| ${b.name} | ${b.value.toLocaleString('en-US')} | ${b.op === '>=' ? '≥' : '≤'} ${b.target.toLocaleString('en-US')} | ${b.pass ? 'PASS' : 'FAIL'} |`);
  out.push(`| (cross-check, not a bar) the same p99 ÷ the control phase's p99 (${T} up, nothing pending) | ${r.p99VsAfter} | | |`);
  out.push(`| (cross-check, not a bar) the same p99 ÷ the p99 before ${T} was stopped (every node up, no hint ever queued) | ${r.p99VsBefore} | | |`);
  out.push('');
  if (r.findings.length) {
    for (const f of r.findings) out.push(`- ${f}`);
    out.push('');
  }
  const noisy: string[] = [];
  if ((r.baseline.load.cpu.other ?? 0) > 0.5) noisy.push(`baseline (${r.baseline.load.cpu.other} cores)`);
  if ((d.cpuCores['other processes'] ?? 0) > 0.5) noisy.push(`delivery (${d.cpuCores['other processes']} cores)`);
  if ((r.after.load.cpu.other ?? 0) > 0.5) noisy.push(`after (${r.after.load.cpu.other} cores)`);
  if ((r.before.load.cpu.other ?? 0) > 0.5) noisy.push(`before (${r.before.load.cpu.other} cores)`);
  if (noisy.length) out.push(`**Noisy:** other processes were busy during ${noisy.join(', ')}; treat those figures with care.`, '');
  const m = r.machine;
  out.push(
    `Machine: ${m.cores} cores, ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}, ${m.platform}. ` +
      `Source: commit ${r.source.commit}${r.source.srcDirty ? ' with uncommitted changes in src/' : ''}. ` +
      `Cluster: ${s.nodes} local node processes, N=${s.n}, ${s.partitions} partitions, durability ${s.durability}, handoff rate ${s.handoffRate}, extra node arguments: ${s.nodeArgs}. ` +
      `${T} stopped with ${s.stop}; ${Number(s.hints).toLocaleString('en-US')} hints (${s.valueBytes}-byte values, W=${s.w}) queued for it. ` +
      `Foreground: ${s.foregroundKeys}; ${s.warmupSec} s warm-up per phase; before, baseline and after ${s.durationSec} s each; the delivery window opens with ${T}'s restart and closes when status (polled every ${s.pollMs} ms) shows no hint pending for ${T} on any node. ` +
      `"CPU … other nodes" counts the running nodes other than ${T}; during delivery, "other" includes the restarted ${T}.`,
  );
  out.push('');
  out.push(`Command: \`${r.command}\` (${r.startedAt})`);
  return out.join('\n');
}

main().then(
  () => process.exit(0), // the exit hook removes anything left; nothing may keep the process alive
  (e: unknown) => {
    process.stderr.write(`bench: failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
