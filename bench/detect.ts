// The failure-detection benchmark (issue 3, "Performance"): on a local 3-node cluster at the
// default detector settings (heartbeat 200 ms, phi threshold 8), on this machine,
//   1. SIGSTOP → "down", K times: one node is frozen (its links stay open, so only the phi-accrual
//      path can notice) and the other two nodes' status is polled every 20 ms until it shows the
//      node down; the node's `since` timestamp gives the exact moment. Then SIGCONT and wait until
//      it is up again;
//   2. kill -9 → "down", K times: the link-close path; then restart the node;
//   3. a soak on a fresh cluster: write load (64 outstanding puts, W=2, fsync) for --soak seconds
//      while every node's status is polled every 500 ms; any transition to "down" is a false down
//      (nothing was stopped), counted from the polls and from the nodes' own logs; the largest phi
//      status showed per pair, and how long status took to answer.
// Aims: median SIGSTOP → down ≤ 3 s; no false down in the soak.
//
//   npm run bench:detect [-- --trials 7 --soak 600 --json --out bench/results]

import { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NexusClient } from '../src/client/client.js';
import type { NodeStatus } from '../src/transport/protocol.js';
import { LocalCluster } from '../src/sim/local-cluster.js';
import { runClosedLoop, type LoadResult } from '../src/bench/load.js';
import { readLog } from './lib/logs.js';
import { cpuSecondsOf, machineBusySeconds, machineInfo, sourceVersion, waitForQuiet, type MachineInfo } from '../src/bench/machine.js';
import { NodeClients } from './lib/nodes.js';
import { formatUs } from './lib/report.js';
import { medianMax, summarize, type LatencySummary } from './lib/stats.js';
import { CLI_MAIN, commandLine, positive, progress, ROOT, round2, sleep } from './lib/args.js';

const NODES = 3;
const N = 3;
const PARTITIONS = 64;
const W = 2;
const REQUEST_TIMEOUT_MS = 10_000;
const SIGSTOP_AIM_MS = 3000;
const DETECT_TIMEOUT_MS = 30_000;

interface Options {
  trials: number;
  soak: number;
  soakConcurrency: number;
  pollMs: number;
  soakPollMs: number;
  settle: number;
  outageTrial: number;
  valueBytes: number;
  quietTimeout: number;
  json: boolean;
  out: string;
  keepData: boolean;
}

function parseArgs(): Options {
  const program = new Command()
    .name('bench:detect')
    .description('Nexus failure-detection benchmark: SIGSTOP → down and kill -9 → down times, then a soak under write load counting false downs')
    .option('--trials <k>', 'trials of each kind (SIGSTOP, kill -9)', positive('--trials', true), 7)
    .option('--soak <sec>', 'seconds of write load while watching for false downs (0: no soak)', positive('--soak', false, true), 600)
    .option('--soak-concurrency <c>', 'outstanding puts during the soak', positive('--soak-concurrency', true), 64)
    .option('--poll-ms <ms>', 'status poll interval while waiting for "down"', positive('--poll-ms', false), 20)
    .option('--soak-poll-ms <ms>', 'status poll interval of every node during the soak', positive('--soak-poll-ms', false), 500)
    .option('--settle <sec>', 'seconds every node must have been up before a trial starts', positive('--settle', false, true), 2)
    .option('--outage-trial <sec>', 'after the trials, once: kill -9 the node, restart it after SEC s, and time a SIGSTOP right after it is back (0: skip)', positive('--outage-trial', false, true), 20)
    .option('--value-bytes <b>', 'value size', positive('--value-bytes', true), 100)
    .option('--quiet-timeout <sec>', 'before each part, wait up to this long for the machine to be idle', positive('--quiet-timeout', false), 30)
    .option('--json', 'print one JSON document on stdout instead of the tables', false)
    .option('--out <dir>', 'folder for the results JSON and markdown', join(ROOT, 'bench', 'results'))
    .option('--keep-data', 'keep the clusters\' temp folders (data and node logs) after the run', false)
    .showHelpAfterError();
  program.parse(process.argv);
  return program.opts<Options>();
}


interface ObserverSeen {
  observer: string;
  /** `since` of the observer's down judgement − the moment the signal was sent (exact). */
  sinceMs: number;
  /** When a status poll first showed "down" − the signal (includes the poll's own latency). */
  seenMs: number;
  /** Largest phi the observer's status showed for the victim before "down". */
  maxPhiBefore: number;
  /** The slowest status answer while waiting (a frozen peer makes status wait for its info). */
  slowestStatusMs: number;
}

interface Trial {
  kind: 'SIGSTOP' | 'kill -9' | 'SIGSTOP after an outage';
  trial: number;
  victim: string;
  observers: ObserverSeen[];
  /** SIGCONT (or the restart) → every observer's status shows the victim up again. */
  backUpMs: number;
  /** Transitions to down the victim logged about its peers right after SIGCONT. */
  victimJudgedPeersDown: number;
}

interface PairStats {
  maxPhi: number;
  downs: number;
}

export interface DetectResults {
  benchmark: 'detect';
  command: string;
  startedAt: string;
  machine: MachineInfo;
  source: { commit: string; srcDirty: boolean | null };
  settings: Record<string, unknown>;
  trials: Trial[];
  summary: Record<string, { median: number; min: number; max: number; n: number }>;
  soak: null | {
    seconds: number;
    load: LoadResult;
    polls: number;
    pollFailures: number;
    falseDownsPolled: number;
    falseDownsLogged: number;
    downEvents: Array<{ observer: string; peer: string; at: string; reason: string }>;
    linkDrops: number;
    pairs: Record<string, PairStats>;
    statusLatencyUs: Record<string, LatencySummary>;
    /** phi values seen (all pairs, all polls), to show how close to the threshold they came. */
    phiDistribution: { p50: number; p99: number; p999: number; max: number; count: number };
    counters: Record<string, number>;
    cpuCores: { nodes: number | null; machine: number | null };
  };
  bars: Array<{ name: string; value: number; op: '<=' | '='; target: number; pass: boolean }>;
  findings: string[];
}

async function main(): Promise<void> {
  const o = parseArgs();
  const startedAt = new Date().toISOString();
  const stamp = startedAt.replace(/[:.]/g, '-');
  const machine = machineInfo();
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; ${o.trials} trials of each kind; soak ${o.soak} s`);

  const trials: Trial[] = [];
  await quiet(o, 'trials');
  progress(`starting a ${NODES}-node cluster (N=${N}, ${PARTITIONS} partitions, durability fsync, detector defaults) …`);
  let cluster = await LocalCluster.start({ nodes: NODES, n: N, partitions: PARTITIONS, durability: 'fsync', mainScript: CLI_MAIN, keep: o.keepData });
  if (o.keepData) progress(`trial cluster data and logs kept in ${cluster.dir}`);
  let clients = new NodeClients(cluster.urls, 5000);
  try {
    const vIdx = NODES - 1;
    const victim = cluster.ids[vIdx]!;
    const observers = cluster.ids.map((_, i) => i).filter((i) => i !== vIdx);
    for (const kind of ['SIGSTOP', 'kill -9'] as const) {
      for (let t = 1; t <= o.trials; t++) {
        await cluster.waitAllUp();
        await sleep(o.settle * 1000);
        const signalledAt = Date.now();
        if (kind === 'SIGSTOP') await cluster.signal(vIdx, 'SIGSTOP');
        else await cluster.signal(vIdx, 'SIGKILL');
        const seen = await Promise.all(observers.map((i) => waitDown(clients, i, cluster.ids[i]!, victim, signalledAt, o.pollMs)));
        const resumedAt = Date.now();
        if (kind === 'SIGSTOP') await cluster.signal(vIdx, 'SIGCONT');
        else cluster.restart(vIdx);
        await Promise.all(observers.map((i) => waitState(clients, i, victim, 'up', DETECT_TIMEOUT_MS)));
        const backUpMs = Date.now() - resumedAt;
        await cluster.waitAllUp();
        await sleep(200); // let pino flush
        // What the victim concluded about its peers once it ran again (it missed their heartbeats).
        const victimDowns = kind === 'SIGSTOP' ? readLog(cluster.logPath(vIdx)).filter((e) => e.time >= resumedAt && e.state === 'down').length : 0;
        trials.push({ kind, trial: t, victim, observers: seen, backUpMs, victimJudgedPeersDown: victimDowns });
        progress(
          `${kind} #${t}: down after ${seen.map((s) => `${s.observer} ${s.sinceMs} ms (seen ${s.seenMs} ms, max phi before ${s.maxPhiBefore})`).join(', ')}; ` +
            `up again ${backUpMs} ms after ${kind === 'SIGSTOP' ? 'SIGCONT' : 'restart'}${victimDowns ? `; the victim judged ${victimDowns} peer(s) down after SIGCONT` : ''}`,
        );
      }
    }
    if (o.outageTrial > 0) {
      // The detectors keep their interval history across a peer's outage: time a SIGSTOP of a node
      // that has just come back from a longer outage.
      progress(`outage trial: kill -9 ${victim}, restart it after ${o.outageTrial} s, SIGSTOP it ${o.settle} s after every node sees it up …`);
      await cluster.waitAllUp();
      await cluster.signal(vIdx, 'SIGKILL');
      await sleep(o.outageTrial * 1000);
      cluster.restart(vIdx);
      await cluster.waitAllUp();
      await sleep(o.settle * 1000);
      const signalledAt = Date.now();
      await cluster.signal(vIdx, 'SIGSTOP');
      const seen = await Promise.all(observers.map((i) => waitDown(clients, i, cluster.ids[i]!, victim, signalledAt, o.pollMs, 120_000)));
      const resumedAt = Date.now();
      await cluster.signal(vIdx, 'SIGCONT');
      await Promise.all(observers.map((i) => waitState(clients, i, victim, 'up', DETECT_TIMEOUT_MS)));
      trials.push({ kind: 'SIGSTOP after an outage', trial: 1, victim, observers: seen, backUpMs: Date.now() - resumedAt, victimJudgedPeersDown: 0 });
      progress(`outage trial: down after ${seen.map((x) => `${x.observer} ${x.sinceMs} ms`).join(', ')}`);
    }
  } finally {
    clients.close();
    await cluster.stop();
  }

  // The soak, on a fresh cluster (the trials' outages sit in the detectors' interval history).
  let soak: DetectResults['soak'] = null;
  if (o.soak > 0) {
    await quiet(o, 'soak');
    progress(`soak: fresh ${NODES}-node cluster, ${o.soakConcurrency} outstanding puts (W=${W}), ${o.soak} s, status of every node every ${o.soakPollMs} ms …`);
    cluster = await LocalCluster.start({ nodes: NODES, n: N, partitions: PARTITIONS, durability: 'fsync', mainScript: CLI_MAIN, keep: o.keepData });
    if (o.keepData) progress(`soak cluster data and logs kept in ${cluster.dir}`);
    clients = new NodeClients(cluster.urls, 10_000);
    const writer = new NexusClient({ nodes: cluster.urls, strategy: 'spread', timeoutMs: REQUEST_TIMEOUT_MS });
    try {
      soak = await runSoak(o, cluster, clients, writer);
    } finally {
      writer.close();
      clients.close();
      await cluster.stop();
    }
  }

  const results = assemble(o, startedAt, machine, trials, soak);
  const table = markdown(results);
  mkdirSync(o.out, { recursive: true });
  const base = join(o.out, `detect-${stamp}`);
  writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n');
  writeFileSync(`${base}.md`, `# Nexus failure-detection benchmark\n\n${table}\n`);
  progress(`results written to ${base}.json and ${base}.md`);
  if (o.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else process.stdout.write(`\n${table}\n`);
}

async function quiet(o: Options, label: string): Promise<void> {
  const q = await waitForQuiet(0.25, o.quietTimeout * 1000);
  if (q && q.busyCores > 0.25) progress(`${label}: machine still ${q.busyCores} cores busy after waiting ${o.quietTimeout} s`);
}

function peerView(s: { nodes: NodeStatus[] }, id: string): NodeStatus | undefined {
  return s.nodes.find((n) => n.id === id);
}

/** Polls observer i's status until it shows `victim` down with a `since` after the signal. */
async function waitDown(clients: NodeClients, i: number, observer: string, victim: string, signalledAt: number, pollMs: number, timeoutMs = DETECT_TIMEOUT_MS): Promise<ObserverSeen> {
  let maxPhi = 0;
  let slowest = 0;
  for (;;) {
    const t0 = Date.now();
    let v: NodeStatus | undefined;
    try {
      v = peerView(await clients.status(i), victim);
    } catch {
      // the observer is busy; poll again
    }
    const t1 = Date.now();
    slowest = Math.max(slowest, t1 - t0);
    if (v) {
      const since = Date.parse(String(v.since));
      if (v.state === 'down' && since >= signalledAt)
        return { observer, sinceMs: since - signalledAt, seenMs: t1 - signalledAt, maxPhiBefore: maxPhi, slowestStatusMs: slowest };
      if (typeof v.phi === 'number') maxPhi = Math.max(maxPhi, v.phi);
    }
    if (t1 - signalledAt > timeoutMs) throw new Error(`${observer} did not judge ${victim} down within ${timeoutMs} ms`);
    const wait = pollMs - (Date.now() - t0);
    if (wait > 0) await sleep(wait);
  }
}

async function waitState(clients: NodeClients, i: number, victim: string, state: 'up' | 'down', timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (peerView(await clients.status(i), victim)?.state === state) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`node ${i + 1} does not see ${victim} ${state} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function runSoak(o: Options, cluster: LocalCluster, clients: NodeClients, writer: NexusClient): Promise<NonNullable<DetectResults['soak']>> {
  const value = randomBytes(o.valueBytes);
  const ids = cluster.ids;
  const pairs: Record<string, PairStats> = {};
  const last = new Map<string, { state: string; since: string }>();
  const statusUs: number[][] = ids.map(() => []);
  const phis: number[] = [];
  const downEvents: Array<{ observer: string; peer: string; at: string; reason: string }> = [];
  let polls = 0;
  let pollFailures = 0;
  let falseDownsPolled = 0;
  const before = await Promise.all(ids.map((id, i) => clients.self(i, id)));
  const cpu0 = cluster.pids.map((p) => cpuSecondsOf(p));
  const m0 = machineBusySeconds();
  const startedAt = Date.now();
  let stop = false;
  const pollNode = async (i: number): Promise<void> => {
    while (!stop) {
      const t0 = performance.now();
      try {
        const s = await clients.status(i);
        statusUs[i]!.push((performance.now() - t0) * 1000);
        polls++;
        for (const v of s.nodes) {
          if (v.id === ids[i]) continue;
          const key = `${ids[i]}→${v.id}`;
          const p = (pairs[key] ??= { maxPhi: 0, downs: 0 });
          if (typeof v.phi === 'number') {
            p.maxPhi = Math.max(p.maxPhi, v.phi);
            phis.push(v.phi);
          }
          const prev = last.get(key);
          const cur = { state: String(v.state), since: String(v.since) };
          // A new `since` means at least one transition since the last poll: a down, or a down
          // and back up between two polls.
          if (prev && (prev.since !== cur.since || prev.state !== cur.state)) {
            if (cur.state === 'down' || prev.state === 'up') {
              p.downs++;
              falseDownsPolled++;
            }
          }
          last.set(key, cur);
        }
      } catch {
        pollFailures++;
        statusUs[i]!.push((performance.now() - t0) * 1000);
      }
      const wait = o.soakPollMs - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  };
  const pollers = ids.map((_, i) => pollNode(i));
  let seq = 0;
  const soakKey = (): string => `soak-${String(seq++).padStart(10, '0')}`;
  let load: LoadResult;
  try {
    load = await runClosedLoop(() => writer.put(soakKey(), value, { w: W }), {
      concurrency: o.soakConcurrency,
      durationMs: o.soak * 1000,
      warmupMs: 1000,
      serverPids: cluster.pids,
      maxErrors: Number.MAX_SAFE_INTEGER,
      onMeasureStart: () => progress('soak: measuring …'),
    });
  } finally {
    stop = true;
    await Promise.all(pollers);
  }
  const endedAt = Date.now();
  const cpu1 = cluster.pids.map((p) => cpuSecondsOf(p));
  const m1 = machineBusySeconds();
  const after = await Promise.all(ids.map((id, i) => clients.self(i, id)));
  await sleep(300);
  let linkDrops = 0;
  for (const [i, id] of ids.entries()) {
    for (const e of readLog(cluster.logPath(i))) {
      if (e.time < startedAt || e.time > endedAt) continue;
      if (e.state === 'down') downEvents.push({ observer: id, peer: String(e.peer), at: new Date(e.time).toISOString(), reason: String(e.reason ?? '') });
      if (e.up === false) linkDrops++;
    }
  }
  const counter = (f: string): number =>
    after.reduce((a, n) => a + (typeof n[f] === 'number' ? (n[f] as number) : 0), 0) - before.reduce((a, n) => a + (typeof n[f] === 'number' ? (n[f] as number) : 0), 0);
  const seconds = (endedAt - startedAt) / 1000;
  const nodesCpu = cpu0.every((x) => x !== undefined) && cpu1.every((x) => x !== undefined) ? round2(cpu1.reduce((a, x, k) => a + x! - cpu0[k]!, 0) / seconds) : null;
  const phiSum = summarize(phis.map((p) => Math.round(p * 100))); // hundredths, through the histogram
  const statusLatencyUs: Record<string, LatencySummary> = {};
  for (const [i, id] of ids.entries()) statusLatencyUs[id] = summarize(statusUs[i]!);
  return {
    seconds: round2(seconds),
    load: load!,
    polls,
    pollFailures,
    falseDownsPolled,
    falseDownsLogged: downEvents.length,
    downEvents,
    linkDrops,
    pairs,
    statusLatencyUs,
    phiDistribution: { p50: phiSum.p50 / 100, p99: phiSum.p99 / 100, p999: phiSum.p999 / 100, max: phiSum.max / 100, count: phiSum.count },
    counters: {
      coordinatedPuts: counter('coordinatedPuts'),
      commits: counter('commits'),
      writes: counter('writes'),
      hintedWrites: counter('hintedWrites'),
      standInPuts: counter('standInPuts'),
      hintsPendingAtEnd: after.reduce((a, n) => a + (n.hintsPending ?? 0), 0),
      aeExchanges: counter('aeExchanges'),
      aeKeysRepaired: counter('aeKeysRepaired'),
    },
    cpuCores: { nodes: nodesCpu, machine: m0 !== undefined && m1 !== undefined ? round2((m1 - m0) / seconds) : null },
  };
}

function assemble(o: Options, startedAt: string, machine: MachineInfo, trials: Trial[], soak: DetectResults['soak']): DetectResults {
  const pick = (kind: Trial['kind'], f: (s: ObserverSeen) => number): number[] => trials.filter((t) => t.kind === kind).flatMap((t) => t.observers.map(f));
  const mm = (xs: number[]) => {
    const r = medianMax(xs);
    return { median: Math.round(r.median), min: Math.round(r.min), max: Math.round(r.max), n: r.n };
  };
  const summary: Record<string, ReturnType<typeof mm>> = {
    'SIGSTOP → down (since)': mm(pick('SIGSTOP', (s) => s.sinceMs)),
    'SIGSTOP → down seen by a 20 ms status poll': mm(pick('SIGSTOP', (s) => s.seenMs)),
    'kill -9 → down (since)': mm(pick('kill -9', (s) => s.sinceMs)),
    'kill -9 → down seen by a 20 ms status poll': mm(pick('kill -9', (s) => s.seenMs)),
    'SIGCONT → up at both observers': mm(trials.filter((t) => t.kind === 'SIGSTOP').map((t) => t.backUpMs)),
    'restart (spawn) → up at both observers': mm(trials.filter((t) => t.kind === 'kill -9').map((t) => t.backUpMs)),
    'status answer time while the victim is frozen (slowest per wait)': mm(pick('SIGSTOP', (s) => s.slowestStatusMs)),
  };
  if (o.outageTrial > 0) summary[`SIGSTOP → down, ${o.settle} s after a ${o.outageTrial} s outage (not in the bar)`] = mm(pick('SIGSTOP after an outage', (s) => s.sinceMs));
  const stopMedian = summary['SIGSTOP → down (since)'].median;
  const bars: DetectResults['bars'] = [{ name: 'median SIGSTOP → down (phi-accrual path), ms', value: stopMedian, op: '<=', target: SIGSTOP_AIM_MS, pass: stopMedian <= SIGSTOP_AIM_MS }];
  if (soak) bars.push({ name: `false "down" transitions during the ${o.soak} s soak (node logs)`, value: soak.falseDownsLogged, op: '=', target: 0, pass: soak.falseDownsLogged === 0 && soak.falseDownsPolled === 0 });
  const findings: string[] = [];
  const stops = trials.filter((t) => t.kind === 'SIGSTOP');
  if (stops.length >= 2) {
    const first = medianMax(stops[0]!.observers.map((s) => s.sinceMs)).median;
    const lastT = medianMax(stops[stops.length - 1]!.observers.map((s) => s.sinceMs)).median;
    findings.push(`SIGSTOP → down: first trial ${Math.round(first)} ms, last trial ${Math.round(lastT)} ms (trials ${o.settle} s apart; per-trial times in the JSON).`);
  }
  const outage = trials.find((t) => t.kind === 'SIGSTOP after an outage');
  if (outage)
    findings.push(
      `A node back from a ${o.outageTrial} s outage: SIGSTOP → down took ${outage.observers.map((x) => `${x.sinceMs} ms (${x.observer})`).join(', ')} ` +
        `(compare with the trials above: a detector that learned the outage as a heartbeat interval would be far slower here).`,
    );
  const victimDowns = stops.reduce((a, t) => a + t.victimJudgedPeersDown, 0);
  if (victimDowns > 0) findings.push(`After SIGCONT the frozen node judged its peers down ${victimDowns} time(s) in ${stops.length} trials (it missed their heartbeats while frozen, and re-judges on its first tick before reading the queued heartbeats).`);
  if (soak && soak.falseDownsLogged > 0) findings.push(`False downs during the soak: ${soak.downEvents.map((e) => `${e.observer} judged ${e.peer} down at ${e.at} (${e.reason})`).join('; ')}.`);
  return {
    benchmark: 'detect',
    command: commandLine('detect'),
    startedAt,
    machine,
    source: sourceVersion(ROOT),
    settings: {
      nodes: NODES,
      n: N,
      partitions: PARTITIONS,
      durability: 'fsync',
      detector: 'defaults: heartbeat 200 ms, phi threshold 8 (acceptable pause 500 ms, min std 100 ms)',
      trials: o.trials,
      pollMs: o.pollMs,
      settleSec: o.settle,
      soakSec: o.soak,
      soakConcurrency: o.soakConcurrency,
      soakPollMs: o.soakPollMs,
      w: W,
      valueBytes: o.valueBytes,
    },
    trials,
    summary,
    soak,
    bars,
    findings,
  };
}

function markdown(r: DetectResults): string {
  const out: string[] = [];
  const s = r.settings;
  out.push(`| Detection (${s.trials} trials × 2 observers) | median | min | max |`);
  out.push('|---|---:|---:|---:|');
  for (const [name, x] of Object.entries(r.summary)) out.push(`| ${name} | ${x.n ? `${x.median.toLocaleString('en-US')} ms` : '–'} | ${x.n ? `${x.min.toLocaleString('en-US')} ms` : '–'} | ${x.n ? `${x.max.toLocaleString('en-US')} ms` : '–'} |`);
  out.push('');
  const perTrial = (kind: Trial['kind']): string =>
    r.trials
      .filter((t) => t.kind === kind)
      .map((t) => t.observers.map((o) => o.sinceMs).join('/'))
      .join(', ');
  out.push(`Per trial (ms, observer n1/n2): SIGSTOP ${perTrial('SIGSTOP')}; kill -9 ${perTrial('kill -9')}.`);
  out.push('');
  const k = r.soak;
  if (k) {
    const l = k.load;
    out.push(`| Soak: ${k.seconds.toFixed(0)} s, ${s.soakConcurrency} outstanding puts, W=${s.w}, fsync | value |`);
    out.push('|---|---:|');
    out.push(`| puts/s (ops) | ${l.throughput.toLocaleString('en-US')} (${l.ops.toLocaleString('en-US')}) |`);
    out.push(`| put p50 / p99 / p99.9 / max | ${formatUs(l.latencyUs.p50)} / ${formatUs(l.latencyUs.p99)} / ${formatUs(l.latencyUs.p999)} / ${formatUs(l.latencyUs.max)} |`);
    out.push(`| put errors | ${l.errors}${l.firstError ? ` (first: ${l.firstError})` : ''} |`);
    out.push(`| **false "down" transitions** (node logs / status polls) | **${k.falseDownsLogged} / ${k.falseDownsPolled}** |`);
    out.push(`| link drops (node logs) | ${k.linkDrops} |`);
    out.push(`| max phi seen in status, per observer→peer | ${Object.entries(k.pairs).map(([p, x]) => `${p} ${x.maxPhi}`).join(', ')} |`);
    out.push(`| phi over all polls: p50 / p99 / p99.9 / max (threshold 8) | ${k.phiDistribution.p50} / ${k.phiDistribution.p99} / ${k.phiDistribution.p999} / ${k.phiDistribution.max} |`);
    out.push(`| status answer time p50 / p99 / max, per node | ${Object.entries(k.statusLatencyUs).map(([id, x]) => `${id} ${formatUs(x.p50)} / ${formatUs(x.p99)} / ${formatUs(x.max)}`).join('; ')} |`);
    out.push(`| status polls (failed) | ${k.polls.toLocaleString('en-US')} (${k.pollFailures}) |`);
    out.push(`| hinted writes / stand-in puts during the soak | ${k.counters.hintedWrites} / ${k.counters.standInPuts} |`);
    if (k.counters.aeExchanges !== undefined) out.push(`| anti-entropy exchanges / keys repaired during the soak | ${k.counters.aeExchanges} / ${k.counters.aeKeysRepaired} |`);
    out.push(`| commits, writes per commit | ${k.counters.commits.toLocaleString('en-US')}, ${k.counters.commits ? round2(k.counters.writes / k.counters.commits) : 0} |`);
    out.push(`| CPU (cores): nodes / whole machine | ${k.cpuCores.nodes ?? '?'} / ${k.cpuCores.machine ?? '?'} |`);
    out.push('');
  }
  out.push('| Bar | Value | Target | Result |');
  out.push('|---|---:|---:|---|');
  for (const b of r.bars) out.push(`| ${b.name} | ${b.value.toLocaleString('en-US')} | ${b.op === '<=' ? '≤' : '='} ${b.target.toLocaleString('en-US')} | ${b.pass ? 'PASS' : 'FAIL'} |`);
  out.push('');
  for (const f of r.findings) out.push(`- ${f}`);
  if (r.findings.length) out.push('');
  const m = r.machine;
  out.push(
    `Machine: ${m.cores} cores, ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}, ${m.platform}. ` +
      `Source: commit ${r.source.commit}${r.source.srcDirty ? ' with uncommitted changes in src/' : ''}. ` +
      `Cluster: ${s.nodes} local node processes, N=${s.n}, ${s.partitions} partitions, durability ${s.durability}, detector ${s.detector}. ` +
      `Trials: the victim is n3, the observers n1 and n2; each trial starts once every node has seen every node up for ${s.settleSec} s; "since" is the observer's own timestamp of its down judgement minus the moment the signal was sent; "seen" is when a status poll (every ${s.pollMs} ms) first showed it. ` +
      `Soak: a fresh cluster; status of every node polled every ${s.soakPollMs} ms; false downs counted from the nodes' logs (every transition) and from changes of state/since between polls.`,
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
