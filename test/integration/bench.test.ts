// A tiny end-to-end `nexus bench`: it starts its own cluster, loads, sweeps two R/W points with
// staleness probes (replica writes delayed through the fault layer) and the PBS prediction, runs
// the bare ceiling, runs the points again sloppy and strict with a node cut off, and writes every
// report file.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NexusClient } from '../../src/client/client.js';
import { LocalCluster } from '../../src/sim/local-cluster.js';
import { DB_FILE_NAME } from '../../src/storage/sqlite.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'nexus');
const out = mkdtempSync(join(tmpdir(), 'nexus-bench-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runNode([BIN, 'bench', '--out', out, ...args]);
}

function runNode(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

interface Staleness {
  probes: number;
  staleReads: number;
  versions: number;
  maxGapPp?: number;
  visibility: Array<{ t: number; probes: number; consistent: number; behind: number[]; predicted?: { consistent: number; withinK: number[] } }>;
}

describe('nexus bench', () => {
  it('runs workload F over two R/W points with staleness measured and predicted, a baseline, and writes every report file', async () => {
    const { code, stdout, stderr } = await bench([
      '--workload', 'F', '--duration', '1', '--warmup', '0', '--clients', '4', '--records', '50', '--points', '1,1 2,2',
      '--probes', '30', '--probe-delays', '0,1,5', '--probe-versions', '2', '--replica-delay', 'exp:2', '--model-trials', '2000',
      '--baselines', 'bareCeiling', '--json',
    ]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      machine: { cores: number; node: string };
      settings: { replicaDelay: string; clients: number };
      points: Array<{
        r: number;
        w: number;
        throughput: number;
        latency: Record<string, number>;
        byOp: Record<string, unknown>;
        errors: number;
        siblings: { max: number };
        staleReads: number;
        probes: number;
        staleness: Staleness;
        cpuPerOp: { servers: number | null; client: number };
      }>;
      baselines: Record<string, { throughput?: number; latency?: Record<string, number>; skipped?: string; cpuPerOp?: { servers: number | null; client: number } }>;
      underFault: { what: string; nodes: number; points: Array<{ r: number; w: number; strict: boolean; availability: number; throughput: number }> };
      files: { json: string; markdown: string; html: string; charts: string[] };
    };
    expect(report.ok).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.settings).toMatchObject({ replicaDelay: 'exp:2', clients: 4 });
    expect(report.points.map((p) => [p.r, p.w])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    for (const p of report.points) {
      expect(p.throughput).toBeGreaterThan(0);
      expect(p.errors).toBe(0);
      for (const f of ['p50', 'p95', 'p99', 'p999', 'max']) expect(p.latency[f]).toBeGreaterThan(0);
      expect(Object.keys(p.byOp).sort()).toEqual(['read', 'rmw']);
      expect(p.siblings.max).toBeGreaterThanOrEqual(1);
      expect(p.staleness.probes).toBe(90); // 30 per delay t, 3 delays
      expect([p.probes, p.staleReads]).toEqual([p.staleness.probes, p.staleness.staleReads]); // as CLI.md promises
      expect(p.staleness.versions).toBe(2);
      expect(p.staleness.visibility.map((v) => v.t)).toEqual([0, 1, 5]);
      for (const v of p.staleness.visibility) {
        // behind[k]: reads k versions behind; they add up to the probes.
        expect(v.behind.reduce((a, b) => a + b, 0)).toBe(v.probes);
        expect(v.behind[0]).toBe(v.consistent);
        expect(v.predicted!.consistent).toBeGreaterThanOrEqual(0);
        expect(v.predicted!.withinK).toHaveLength(2);
      }
      expect(p.staleness.maxGapPp).toBeGreaterThanOrEqual(0);
      // CPU per operation, µs: the cluster's node processes (read from /proc) and the bench itself.
      expect(p.cpuPerOp.servers).toBeGreaterThanOrEqual(0);
      expect(p.cpuPerOp.client).toBeGreaterThan(0);
    }
    // R + W > N: no stale read, and the model says so too.
    const quorum = report.points.find((p) => p.r === 2 && p.w === 2)!;
    expect(quorum.staleness.staleReads).toBe(0);
    expect(quorum.staleness.visibility.every((v) => v.consistent === v.probes && v.predicted!.consistent === 1)).toBe(true);
    expect(report.baselines.bareCeiling!.throughput).toBeGreaterThan(0);
    expect(report.baselines.bareCeiling!.cpuPerOp!.servers).toBeGreaterThanOrEqual(0); // the echo servers' pids were read
    expect(report.baselines.bareCeiling!.cpuPerOp!.client).toBeGreaterThan(0);
    // Under a fault (4 nodes, one cut off): every point sloppy and strict; with 2 of 3 primaries
    // up, R and W up to 2 are met either way.
    expect(report.underFault.nodes).toBe(4);
    expect(report.underFault.points.map((p) => [p.r, p.w, p.strict])).toEqual([
      [1, 1, false],
      [1, 1, true],
      [2, 2, false],
      [2, 2, true],
    ]);
    for (const p of report.underFault.points) {
      expect(p.availability).toBe(1);
      expect(p.throughput).toBeGreaterThan(0);
    }
    expect(Object.keys(report.baselines)).toEqual(['bareCeiling']);
    for (const f of [report.files.json, report.files.html, ...report.files.charts]) expect(existsSync(f), f).toBe(true);
    const md = readFileSync(report.files.markdown, 'utf8');
    expect(md).toContain('| R | W | ops/s |');
    expect(md).toMatch(/\| \d+ \+ \d+ µs \|/); // the CPU-per-operation column
    const html = readFileSync(report.files.html, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('t-visibility');
  });

  it('probes reads coordinated by the client too, measured and predicted', async () => {
    const { code, stdout, stderr } = await bench([
      '--workload', 'C', '--duration', '1', '--warmup', '0', '--clients', '4', '--records', '50', '--points', '1,1 2,2',
      '--probes', '30', '--probe-delays', '0,5', '--probe-versions', '2', '--replica-delay', 'exp:2', '--model-trials', '2000',
      '--probe-reads', 'direct', '--baselines', 'none', '--no-fault-phase', '--json',
    ]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as { settings: { probeReads: string }; points: Array<{ r: number; w: number; staleness: Staleness & { reads: string } }> };
    expect(report.settings.probeReads).toBe('direct');
    for (const p of report.points) {
      expect(p.staleness.reads).toBe('direct');
      expect(p.staleness.probes).toBe(60);
      for (const v of p.staleness.visibility) expect(v.predicted!.consistent).toBeGreaterThanOrEqual(0);
    }
    const quorum = report.points.find((p) => p.r === 2 && p.w === 2)!;
    expect(quorum.staleness.staleReads).toBe(0);
    expect(quorum.staleness.visibility.every((v) => v.predicted!.consistent === 1)).toBe(true);
  });

  it('refuses impossible settings with a clear reason', async () => {
    const bad = await bench(['--points', '4,1', '--json']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toContain('R and W must be from 1 to N=3');
    const workload = await bench(['--workload', 'Z']);
    expect(workload.code).toBe(2);
    expect(workload.stderr).toContain('unknown workload "Z"');
    const delay = await bench(['--replica-delay', 'gauss:3']);
    expect(delay.code).toBe(2);
    expect(delay.stderr).toContain('--replica-delay: bad delay "gauss:3"');
    const baseline = await bench(['--baselines', 'mongo']);
    expect(baseline.code).toBe(2);
    expect(baseline.stderr).toContain('unknown baseline "mongo"');
    const reads = await bench(['--probe-reads', 'psychic']);
    expect(reads.code).toBe(2);
    expect(reads.stderr).toContain('--probe-reads must be coordinated or direct, got "psychic"');
  });
});

// bench/storage.ts: issue 6's R=W=2 point with the nodes' storage as shipped, without WAL syncs and
// in memory (bench/lib/memory-node.ts), each against the same round's bare ceiling.
describe('bench:storage', () => {
  it('runs the bare ceiling and every storage variant, and reports each against the bare ceiling', async () => {
    const script = join(import.meta.dirname, '..', '..', 'dist', 'bench', 'storage.js');
    const { code, stdout, stderr } = await runNode([script, '--rounds', '1', '--duration', '1', '--warmup', '0', '--clients', '4', '--records', '50', '--json']);
    expect(code, stderr).toBe(0);
    type Row = { system: string; throughput: number; errors: number; cpuServersUs: number | null; cpuClientUs: number | null };
    const report = JSON.parse(stdout) as {
      machine: { cores: number };
      runs: Array<Row & { round: number }>;
      summary: Array<Row & { vsBare: number; vsBareRounds: number[] }>;
    };
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.runs.map((r) => r.system).sort()).toEqual(['bare', 'fsync', 'memory', 'os']);
    for (const r of report.runs) {
      expect(r.round).toBe(1);
      expect(r.throughput, r.system).toBeGreaterThan(0);
      expect(r.errors, r.system).toBe(0);
      expect(r.cpuServersUs, r.system).toBeGreaterThan(0);
      expect(r.cpuClientUs, r.system).toBeGreaterThan(0);
    }
    const bare = report.runs.find((r) => r.system === 'bare')!.throughput;
    for (const s of report.summary) {
      const run = report.runs.find((r) => r.system === s.system)!;
      expect(s.vsBareRounds).toEqual([Math.round((run.throughput / bare) * 100) / 100]);
    }
    expect(report.summary.find((s) => s.system === 'bare')!.vsBare).toBe(1);
  });

  it("runs the memory variant's nodes on memory storage: they serve reads and writes and create no database", async () => {
    const mainScript = join(import.meta.dirname, '..', '..', 'dist', 'bench', 'lib', 'memory-node.js');
    const cluster = await LocalCluster.start({ nodes: 3, n: 3, durability: 'fsync', mainScript });
    const client = new NexusClient({ nodes: cluster.urls, timeoutMs: 10_000 });
    try {
      await client.put('k', Buffer.from('v'), { w: 3 });
      const got = await client.get('k', { r: 3 });
      expect(got.values.map((v) => Buffer.from(v).toString())).toEqual(['v']);
      for (let i = 0; i < 3; i++) {
        expect(readFileSync(cluster.logPath(i), 'utf8')).toContain('memory node');
        expect(existsSync(join(cluster.dir, cluster.ids[i]!, DB_FILE_NAME))).toBe(false);
      }
    } finally {
      client.close();
      await cluster.stop();
    }
  });
});
