// `nexus bench`: the tunable-consistency benchmark (src/bench/ycsb.ts). A progress bar per sweep
// point on stderr, a summary table (or one JSON document with --json), and the JSON and a markdown
// table in --out.

import { MultiBar } from 'cli-progress';
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { DEFAULT_POINTS, runBench, WORKLOADS, type BenchReport, type WorkloadName } from '../bench/ycsb.js';
import { printJson, reportError } from './output.js';

interface BenchCliOptions {
  workload: string;
  duration: string;
  warmup: string;
  clients: string;
  records: string;
  valueBytes: string;
  distribution: string;
  points?: string;
  probes: string;
  nodes: string;
  node?: string;
  out: string;
  json?: boolean;
}

function whole(v: string, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${what} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

/** "1,1 2,2" or "1,1;2,2" → [[1,1],[2,2]], each R and W from 1 to n. */
function parsePoints(spec: string, n: number): Array<[number, number]> {
  const pts = spec
    .split(/[\s;]+/)
    .filter(Boolean)
    .map((p) => {
      const m = /^(\d+),(\d+)$/.exec(p);
      if (!m) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--points takes R,W pairs like "1,1 2,2", got "${p}"`);
      const r = Number(m[1]);
      const w = Number(m[2]);
      if (r < 1 || w < 1 || r > n || w > n) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--points: R and W must be from 1 to N=${n}, got R=${r} W=${w}`);
      return [r, w] as [number, number];
    });
  if (pts.length === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--points needs at least one R,W pair');
  return pts;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('tunable-consistency benchmark: a YCSB workload over a sweep of R/W settings on a local cluster (or --node)')
    .option('--workload <w>', 'A (50/50 read/update), B (95/5), C (read only), F (read-modify-write)', 'A')
    .option('--duration <sec>', 'measured seconds per R/W point', '10')
    .option('--warmup <sec>', 'unrecorded seconds before each point', '1')
    .option('--clients <c>', 'concurrent clients', '64')
    .option('--records <n>', 'records loaded before the sweep', '10000')
    .option('--value-bytes <b>', 'value size', '100')
    .option('--distribution <d>', 'zipfian (θ = 0.99) or uniform key choice', 'zipfian')
    .option('--points <list>', 'R,W pairs to run (default for N=3: "1,1 1,2 2,1 2,2 1,3 3,1 3,3")')
    .option('--probes <k>', 'staleness probes per delay t and point (0: none)', '2000')
    .option('--nodes <k>', 'nodes of the cluster the bench starts (N = min(3, k))', '3')
    .option('--node <urls>', 'benchmark an existing cluster instead (comma-separated node URLs)')
    .option('--out <dir>', 'folder for the results (JSON, markdown)', '.nexus/bench')
    .option('--json', 'print one JSON document instead of the table')
    .action(async (o: BenchCliOptions) => {
      const json = o.json === true;
      try {
        const workload = o.workload.toUpperCase();
        if (!(workload in WORKLOADS)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `unknown workload "${o.workload}": use A, B, C or F`);
        if (o.distribution !== 'zipfian' && o.distribution !== 'uniform')
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--distribution must be zipfian or uniform, got "${o.distribution}"`);
        const nodes = whole(o.nodes, '--nodes', 1, 16);
        const n = Math.min(3, nodes);
        const points = o.points !== undefined ? parsePoints(o.points, n) : DEFAULT_POINTS.filter(([r, w]) => r <= n && w <= n);
        const bars = new MultiBar({ format: 'nexus bench {label} [{bar}] {percentage}%', hideCursor: true, stream: process.stderr }, undefined);
        const shown: Array<ReturnType<MultiBar['create']>> = [];
        const report = await runBench({
          workload: workload as WorkloadName,
          distribution: o.distribution,
          records: whole(o.records, '--records', 1, 100_000_000),
          valueBytes: whole(o.valueBytes, '--value-bytes', 1, 1 << 20),
          clients: whole(o.clients, '--clients', 1, 4096),
          durationSec: whole(o.duration, '--duration', 1, 24 * 3600),
          warmupSec: whole(o.warmup, '--warmup', 0, 600),
          points,
          probesPerT: whole(o.probes, '--probes', 0, 1_000_000),
          probeDelaysMs: [0, 1, 5],
          nodes,
          n,
          ...(o.node !== undefined ? { urls: o.node.split(',').map((u) => u.trim()).filter(Boolean) } : {}),
          seed: 1,
          progress: (i, _total, fraction, label) => {
            if (!process.stderr.isTTY) return;
            shown[i] ??= bars.create(100, 0, { label });
            shown[i].update(Math.round(fraction * 100), { label });
          },
        });
        bars.stop();
        const dir = resolve(o.out);
        mkdirSync(dir, { recursive: true });
        const base = join(dir, `bench-${workload}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
        writeFileSync(`${base}.json`, JSON.stringify(report, null, 2));
        writeFileSync(`${base}.md`, markdown(report));
        if (json) printJson({ ...report, files: { json: `${base}.json`, markdown: `${base}.md` } });
        else process.stdout.write(markdown(report) + `\nresults: ${base}.json, ${base}.md\n`);
        process.exitCode = report.ok ? 0 : 1;
      } catch (e) {
        process.exitCode = reportError(e, { json });
      }
    });
}

function markdown(r: BenchReport): string {
  const s = r.settings;
  const ms = (us: number): string => (us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us} µs`);
  const lines = [
    `Workload ${s.workload} (${WORKLOADS[s.workload].what}), ${s.distribution} over ${s.records.toLocaleString('en-US')} records of ${s.valueBytes} B, ${s.clients} clients, ${s.durationSec} s per point; ${s.urls ? `cluster ${s.urls.join(',')}` : `${s.nodes} local nodes, N=${s.n}, fsync`}. Machine: ${r.machine.cores} cores, ${r.machine.cpuModel}, Node ${r.machine.node}.`,
    '',
    '| R | W | ops/s | p50 | p95 | p99 | p99.9 | errors | most siblings | stale reads / probes |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.points.map(
      (p) =>
        `| ${p.r} | ${p.w} | ${p.throughput.toLocaleString('en-US')} | ${ms(p.latency.p50)} | ${ms(p.latency.p95)} | ${ms(p.latency.p99)} | ${ms(p.latency.p999)} | ${p.errors} | ${p.siblings.max} | ${p.staleReads} / ${p.probes} |`,
    ),
    '',
    `Baselines: ${Object.entries(r.baselines)
      .map(([k, v]) => `${k} ${'skipped' in v ? `skipped (${String(v.skipped)})` : 'measured'}`)
      .join('; ')}. Probes read 0, 1 and 5 ms after the write's ack, through another node. PBS prediction and injected replica delay: not built yet.`,
  ];
  return lines.join('\n') + '\n';
}
