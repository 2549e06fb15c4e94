// The core benchmark's result document, its bars and its markdown table.

import type { LoadResult } from '../../src/bench/load.js';
import type { MachineInfo } from '../../src/bench/machine.js';

export interface PhasePair {
  /** Latency at 1 outstanding request. */
  c1: LoadResult;
  /** Throughput and latency at `concurrency` outstanding requests. */
  cN: LoadResult;
}

export interface Bar {
  name: string;
  ratio: number;
  op: '>=' | '<=';
  target: number;
  pass: boolean;
}

export interface CoreResults {
  benchmark: 'core';
  command: string;
  startedAt: string;
  machine: MachineInfo;
  settings: {
    durationSec: number;
    warmupSec: number;
    /** Unrecorded seconds at the loaded level before each system's first phase. */
    firstWarmupSec: number;
    concurrency: number;
    valueBytes: number;
    messageBytes: number;
    keySpace: number;
    nodes: number;
    n: number;
    partitions: number;
    r: number;
    w: number;
    durability: 'fsync';
    putKeys: string;
    clientStrategy: string;
  };
  /** The first round's phases (the only round unless --rounds was given). */
  phases: { bare: PhasePair; fsync: PhasePair; put: PhasePair; get: PhasePair };
  /** The bars: with several rounds, each ratio is the median of the rounds' ratios. */
  bars: Bar[];
  /** With --rounds k > 1: every round's phases and bars, in order. */
  rounds?: Array<{ phases: CoreResults['phases']; bars: Bar[] }>;
  /** Figures that explain the results (group commit batching, CPU use). */
  diagnostics: Record<string, unknown>;
}

export function computeBars(p: CoreResults['phases']): Bar[] {
  const bar = (name: string, ratio: number, op: Bar['op'], target: number): Bar => {
    const r = Number.isFinite(ratio) ? Math.round(ratio * 100) / 100 : ratio;
    return { name, ratio: r, op, target, pass: meets(ratio, op, target) };
  };
  return [
    bar('put throughput @64 ÷ bare ceiling throughput @64', p.put.cN.throughput / p.bare.cN.throughput, '>=', 0.5),
    bar('get throughput @64 ÷ bare ceiling throughput @64', p.get.cN.throughput / p.bare.cN.throughput, '>=', 0.7),
    bar('get p50 @1 ÷ bare ceiling p50 @1', p.get.c1.latencyUs.p50 / p.bare.c1.latencyUs.p50, '<=', 3),
    bar('put p50 @1 ÷ fsync ceiling p50 @1', p.put.c1.latencyUs.p50 / p.fsync.c1.latencyUs.p50, '<=', 2),
  ];
}

/** Whether `ratio` meets the bar (a ratio that is not a finite number never does). */
function meets(ratio: number, op: Bar['op'], target: number): boolean {
  return Number.isFinite(ratio) && (op === '>=' ? ratio >= target : ratio <= target);
}

/**
 * One bar per name whose ratio is the median of the rounds' ratios (for an even count, the middle
 * one on the failing side, so a bar never passes on an average of a pass and a fail).
 */
export function medianBars(rounds: Bar[][]): Bar[] {
  return rounds[0]!.map((first, i) => {
    const ratios = rounds.map((r) => r[i]!.ratio).sort((a, b) => a - b);
    const ratio = first.op === '>=' ? ratios[Math.floor((ratios.length - 1) / 2)]! : ratios[Math.ceil((ratios.length - 1) / 2)]!;
    return { ...first, ratio, pass: meets(ratio, first.op, first.target) };
  });
}

export function formatUs(us: number): string {
  if (us < 10_000) return `${Math.round(us).toLocaleString('en-US')} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
}

function formatOps(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

export function markdownReport(res: CoreResults): string {
  const s = res.settings;
  const c = s.concurrency;
  const rows: Array<[string, PhasePair]> = [
    ['bare ceiling: ws echo ×3, done at 2 replies', res.phases.bare],
    ['fsync ceiling: + SQLite WAL synchronous=FULL, group commit', res.phases.fsync],
    [`Nexus put, W=${s.w}, ${s.putKeys}`, res.phases.put],
    [`Nexus get, R=${s.r}, ${s.keySpace.toLocaleString('en-US')} preloaded keys`, res.phases.get],
  ];
  const out: string[] = [];
  out.push(`| Phase | ops/s @${c} | p50 @1 | p99 @1 | p50 @${c} | p99 @${c} | CPU @${c} client / servers / other (of it steal), cores |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, p] of rows) {
    const f = (x: number | null): string => (x === null ? '?' : x.toFixed(2));
    const cpu = `${f(p.cN.cpu.client)} / ${f(p.cN.cpu.servers)} / ${f(p.cN.cpu.other)} (${f(p.cN.cpu.steal ?? null)})`;
    out.push(
      `| ${name} | ${formatOps(p.cN.throughput)} | ${formatUs(p.c1.latencyUs.p50)} | ${formatUs(p.c1.latencyUs.p99)} | ` +
        `${formatUs(p.cN.latencyUs.p50)} | ${formatUs(p.cN.latencyUs.p99)} | ${cpu} |`,
    );
  }
  out.push('');
  const rounds = res.rounds ?? [];
  if (rounds.length > 1) {
    out.push(`The table above is round 1 of ${rounds.length}; every round (fresh processes each time), and the bars as the median of the rounds:`, '');
    out.push(`| Round | bare ceiling ops/s @${c} | Nexus put ops/s @${c} | ${res.bars.map((b) => b.name).join(' | ')} |`);
    out.push(`|---:|---:|---:|${res.bars.map(() => '---:').join('|')}|`);
    rounds.forEach((r, i) =>
      out.push(`| ${i + 1} | ${formatOps(r.phases.bare.cN.throughput)} | ${formatOps(r.phases.put.cN.throughput)} | ${r.bars.map((b) => b.ratio.toFixed(2)).join(' | ')} |`),
    );
    out.push('');
  }
  out.push(`| Bar | Ratio${rounds.length > 1 ? ` (median of ${rounds.length} rounds)` : ''} | Target | Result |`);
  out.push('|---|---:|---:|---|');
  for (const b of res.bars) out.push(`| ${b.name} | ${b.ratio.toFixed(2)} | ${b.op === '>=' ? '≥' : '≤'} ${b.target} | ${b.pass ? 'PASS' : 'FAIL'} |`);
  out.push('');
  // Every round's phases (round 1's alone without --rounds), named with their round when there are several.
  const allPhases = (rounds.length > 1 ? rounds : [{ phases: res.phases }]).flatMap((r, i) =>
    Object.entries(r.phases).map(([name, p]) => [rounds.length > 1 ? `round ${i + 1} ${name}` : name, p] as const),
  );
  const errs = allPhases.flatMap(([name, p]) =>
    [p.c1, p.cN].filter((r) => r.errors > 0).map((r) => `${name} @${r.concurrency}: ${r.errors} errors (first: ${r.firstError})`),
  );
  if (errs.length > 0) out.push(`**Errors:** ${errs.join('; ')}`, '');
  // Kernel work on the benchmark's behalf (loopback networking, disk flushes) shows up here too,
  // but well under half a core; more means other processes competed for the cores.
  const noisy = allPhases.flatMap(([name, p]) =>
    [p.c1, p.cN].filter((r) => (r.cpu.other ?? 0) > 0.5).map((r) => `${name} @${r.concurrency} (${r.cpu.other} cores)`),
  );
  if (noisy.length > 0) out.push(`**Noisy:** other processes were busy during ${noisy.join(', ')}; treat those figures with care.`, '');
  const m = res.machine;
  out.push(
    `Machine: ${m.cores} cores, ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}, ${m.platform}. ` +
      `Cluster: ${s.nodes} local node processes, N=${s.n}, ${s.partitions} partitions, durability ${s.durability}; ` +
      `client: one NexusClient, strategy '${s.clientStrategy}'. ${s.valueBytes}-byte values, ${s.messageBytes}-byte put frames (baselines send the same frame). ` +
      `Each system first runs ${s.firstWarmupSec} s unrecorded at ${c} outstanding (JIT warm-up); each phase: ${s.warmupSec} s warm-up, then ${s.durationSec} s measured; closed loop at ${c} outstanding requests, then at 1; ` +
      `latency from HdrHistogram (µs). CPU: cores used during the measured window by the load generator / by all server processes / by anything else on the machine (noise), and in brackets the part of that the hypervisor took for other guests (steal time in /proc/stat).`,
  );
  out.push('');
  out.push(`Command: \`${res.command}\` (${res.startedAt})`);
  return out.join('\n');
}
