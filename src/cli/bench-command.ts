// `nexus bench`: the tunable-consistency benchmark (src/bench/ycsb.ts). A progress bar per sweep
// point and baseline on stderr, a summary table (or one JSON document with --json), and in --out:
// the JSON, a markdown table, an HTML report with charts, and the charts as SVG files.

import { MultiBar } from 'cli-progress';
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { BASELINES, type BaselineName } from '../bench/baselines.js';
import { htmlReport, latencyChart, markdown, throughputChart, visibilityChart } from '../bench/report.js';
import { DEFAULT_POINTS, runBench, WORKLOADS, type WorkloadName } from '../bench/ycsb.js';
import { parseDelaySpec } from '../core/timings.js';
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
  probeDelays: string;
  probeVersions: string;
  replicaDelay: string;
  probeReads: string;
  modelTrials: string;
  baselines: string;
  faultPhase: boolean;
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
    .option('--probe-delays <list>', 'the delays t (ms) after the ack at which probes read', '0,1,2,5,10,20')
    .option('--probe-versions <v>', 'versions each probe writes before reading (k-staleness)', '3')
    .option('--replica-delay <dist>', 'delay injected before each replica write during the probes: exp:MEAN, const:MS, uniform:LO-HI (ms) or none', 'exp:5')
    .option('--probe-reads <who>', 'who coordinates the probes\' reads: coordinated (another node) or direct (the client, as the workload\'s reads)', 'coordinated')
    .option('--model-trials <k>', 'PBS Monte Carlo trials per t (0: no prediction)', '20000')
    .option('--baselines <list>', `baselines after the sweep: singleNode,${BASELINES.join(',')} (or none)`, `singleNode,${BASELINES.join(',')}`)
    .option('--no-fault-phase', 'skip the points run again, sloppy and strict, with one node cut off')
    .option('--nodes <k>', 'nodes of the cluster the bench starts (N = min(3, k))', '3')
    .option('--node <urls>', 'benchmark an existing cluster instead (comma-separated node URLs)')
    .option('--out <dir>', 'folder for the results (JSON, markdown, HTML, SVG charts)', '.nexus/bench')
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
        try {
          parseDelaySpec(o.replicaDelay);
        } catch (e) {
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--replica-delay: ${(e as Error).message}`);
        }
        const known = ['singleNode', ...BASELINES];
        const baselines = o.baselines === 'none' ? [] : o.baselines.split(',').map((b) => b.trim()).filter(Boolean);
        for (const b of baselines) if (!known.includes(b)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `unknown baseline "${b}": use ${known.join(', ')} or none`);
        if (o.probeReads !== 'coordinated' && o.probeReads !== 'direct')
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--probe-reads must be coordinated or direct, got "${o.probeReads}"`);
        const probeDelaysMs = o.probeDelays.split(',').map((t) => whole(t.trim(), '--probe-delays', 0, 60_000));
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
          probeDelaysMs,
          probeVersions: whole(o.probeVersions, '--probe-versions', 1, 10),
          replicaDelay: o.replicaDelay,
          probeReads: o.probeReads,
          modelTrials: whole(o.modelTrials, '--model-trials', 0, 10_000_000),
          baselines: baselines as Array<BaselineName | 'singleNode'>,
          faultPhase: o.faultPhase,
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
        const files = { json: `${base}.json`, markdown: `${base}.md`, html: `${base}.html`, charts: [`${base}-throughput.svg`, `${base}-latency.svg`, `${base}-visibility.svg`] };
        writeFileSync(files.json, JSON.stringify(report, null, 2));
        writeFileSync(files.markdown, markdown(report));
        writeFileSync(files.html, htmlReport(report));
        writeFileSync(files.charts[0]!, throughputChart(report));
        writeFileSync(files.charts[1]!, latencyChart(report));
        writeFileSync(files.charts[2]!, visibilityChart(report));
        if (json) printJson({ ...report, files });
        else process.stdout.write(markdown(report) + `\nresults: ${files.json}, ${files.markdown}, ${files.html}\n`);
        process.exitCode = report.ok ? 0 : 1;
      } catch (e) {
        process.exitCode = reportError(e, { json });
      }
    });
}
