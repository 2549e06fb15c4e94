// What each node's storage costs in issue 6's headline point (workload A, zipfian, 64 clients,
// N=3, R=W=2): in every round, on this machine,
//   bare    — the bare ceiling (plain ws echo servers, send to 3, wait for 2), the bar's yardstick;
//   fsync   — Nexus as shipped: SQLite, each commit's WAL synced before its writes are acknowledged;
//   os      — the same nodes with durability os (no WAL sync: survives a process crash, not a power loss);
//   memory  — the same nodes with their storage in memory (bench/lib/memory-node.ts): staging,
//             group commit, read cache and segment hashes as shipped, no SQLite at all;
// each as throughput ÷ the same round's bare ceiling and as CPU per operation. Rounds rotate the
// order so that the machine's drift does not favour one variant; the summary is the median per
// variant. The Nexus variants run through `nexus bench`'s own code (runBench), one point each.
//
//   npm run bench:storage [-- --rounds 3 --duration 10 --json]

import { Command } from 'commander';
import { join } from 'node:path';
import { runBaseline, type BaselineResult } from '../src/bench/baselines.js';
import { machineInfo } from '../src/bench/machine.js';
import { baselineOptions, runBench, type BenchOptions, type PointResult } from '../src/bench/ycsb.js';
import { commandLine, positive, progress, ROOT } from './lib/args.js';
import { medianMax } from './lib/stats.js';

const MEMORY_NODE = join(ROOT, 'dist', 'bench', 'lib', 'memory-node.js');

type Variant = 'fsync' | 'os' | 'memory';
const VARIANTS: Variant[] = ['fsync', 'os', 'memory'];

interface Options {
  rounds: number;
  duration: number;
  warmup: number;
  clients: number;
  records: number;
  valueBytes: number;
  json: boolean;
}

interface Run {
  round: number;
  system: 'bare' | Variant;
  throughput: number;
  p99Us: number;
  /** µs per operation: servers (nodes or echo servers) and the benchmark process. */
  cpuServersUs: number | null;
  cpuClientUs: number | null;
  errors: number;
}

function parseArgs(): Options {
  const program = new Command()
    .name('bench:storage')
    .description("issue 6's R=W=2 workload-A point with the nodes' storage as shipped (fsync), without WAL syncs (os) and in memory, against the bare ceiling")
    .option('--rounds <k>', 'rounds; each runs the bare ceiling and every variant once', positive('--rounds', true), 3)
    .option('--duration <sec>', 'measured seconds per run', positive('--duration', true), 10)
    .option('--warmup <sec>', 'unrecorded seconds before each run', positive('--warmup', true, true), 1)
    .option('--clients <c>', 'concurrent clients', positive('--clients', true), 64)
    .option('--records <n>', 'records loaded before each Nexus run', positive('--records', true), 10_000)
    .option('--value-bytes <b>', 'value size', positive('--value-bytes', true), 100)
    .option('--json', 'print one JSON document instead of the table', false);
  program.parse();
  return program.opts<Options>();
}

function benchOptions(o: Options, variant: Variant): BenchOptions {
  return {
    workload: 'A',
    distribution: 'zipfian',
    records: o.records,
    valueBytes: o.valueBytes,
    clients: o.clients,
    durationSec: o.duration,
    warmupSec: o.warmup,
    points: [[2, 2]],
    probesPerT: 0,
    probeDelaysMs: [],
    probeVersions: 1,
    replicaDelay: 'none',
    probeReads: 'coordinated',
    modelTrials: 0,
    baselines: [],
    faultPhase: false,
    nodes: 3,
    n: 3,
    seed: 1,
    sweepCluster: variant === 'memory' ? { durability: 'fsync', mainScript: MEMORY_NODE } : { durability: variant },
  };
}

function runOf(round: number, system: Run['system'], r: PointResult | BaselineResult): Run {
  return {
    round,
    system,
    throughput: Math.round(r.throughput),
    p99Us: r.latency.p99,
    cpuServersUs: r.cpuPerOp?.servers ?? null,
    cpuClientUs: r.cpuPerOp?.client ?? null,
    errors: r.errors,
  };
}

async function main(): Promise<void> {
  const o = parseArgs();
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; ${o.rounds} rounds of bare, ${VARIANTS.join(', ')} …`);
  const runs: Run[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    // Rotate, so each system runs first, in the middle and last across rounds.
    const order: Run['system'][] = ['bare', ...VARIANTS];
    for (let i = 0; i < (round - 1) % order.length; i++) order.push(order.shift()!);
    for (const system of order) {
      let run: Run;
      if (system === 'bare') {
        // Configured exactly as `nexus bench` configures its bare ceiling for this workload.
        const b = await runBaseline('bareCeiling', baselineOptions(benchOptions(o, 'fsync')));
        if ('skipped' in b) throw new Error(`the bare ceiling did not run: ${b.skipped}`);
        run = runOf(round, system, b);
      } else {
        const report = await runBench(benchOptions(o, system));
        run = runOf(round, system, report.points[0]!);
      }
      runs.push(run);
      progress(`round ${round} ${system}: ${run.throughput.toLocaleString('en-US')} ops/s, CPU per op ${run.cpuServersUs ?? '?'} + ${run.cpuClientUs ?? '?'} µs, ${run.errors} errors`);
    }
  }

  // Each Nexus run against the bare ceiling of its own round.
  const bareOf = (round: number): number => runs.find((r) => r.round === round && r.system === 'bare')!.throughput;
  const summary = (['bare', ...VARIANTS] as const).map((system) => {
    const mine = runs.filter((r) => r.system === system);
    const med = (xs: Array<number | null>): number | null => (xs.some((x) => x === null) ? null : medianMax(xs as number[]).median);
    return {
      system,
      throughput: med(mine.map((r) => r.throughput))!,
      vsBare: Math.round(medianMax(mine.map((r) => r.throughput / bareOf(r.round))).median * 100) / 100,
      vsBareRounds: mine.map((r) => Math.round((r.throughput / bareOf(r.round)) * 100) / 100),
      p99Us: med(mine.map((r) => r.p99Us))!,
      cpuServersUs: med(mine.map((r) => r.cpuServersUs)),
      cpuClientUs: med(mine.map((r) => r.cpuClientUs)),
      errors: mine.reduce((a, r) => a + r.errors, 0),
    };
  });

  const command = commandLine('storage');
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ benchmark: 'storage', command, startedAt, machine, settings: o, runs, summary }, null, 2)}\n`);
    return;
  }
  const what: Record<Run['system'], string> = {
    bare: 'bare ceiling (echo servers)',
    fsync: 'Nexus as shipped (SQLite, fsync)',
    os: 'Nexus, durability os',
    memory: 'Nexus, storage in memory',
  };
  const us = (x: number | null): string => (x === null ? '?' : String(Math.round(x)));
  const lines = [
    '| system | ops/s (median) | ÷ bare ceiling (median; per round) | p99 | CPU per op: servers + client | errors |',
    '|---|---:|---:|---:|---:|---:|',
    ...summary.map(
      (s) =>
        `| ${what[s.system]} | ${s.throughput.toLocaleString('en-US')} | ${s.vsBare.toFixed(2)} (${s.vsBareRounds.map((x) => x.toFixed(2)).join(', ')}) | ${(s.p99Us / 1000).toFixed(1)} ms | ${us(s.cpuServersUs)} + ${us(s.cpuClientUs)} µs | ${s.errors} |`,
    ),
    '',
    `Machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}. Workload A, zipfian over ${o.records.toLocaleString('en-US')} records of ${o.valueBytes} B, ${o.clients} clients, R=W=2 on 3 local nodes (N=3); ${o.duration} s per run after ${o.warmup} s warm-up; ${o.rounds} rounds.`,
    `Command: \`${command}\` (${startedAt})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:storage failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
