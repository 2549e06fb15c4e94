// A tiny end-to-end `nexus bench`: it starts its own cluster, loads, sweeps two R/W points, and
// writes a report whose points carry throughput, latency percentiles and errors.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'nexus');
const out = mkdtempSync(join(tmpdir(), 'nexus-bench-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'bench', '--out', out, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('nexus bench', () => {
  it('runs workload F over two R/W points and reports each, with no stale probe read when R + W > N', async () => {
    const { code, stdout, stderr } = await bench(['--workload', 'F', '--duration', '1', '--warmup', '0', '--clients', '4', '--records', '50', '--points', '1,1 2,2', '--probes', '30', '--json']);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      machine: { cores: number; node: string };
      points: Array<{
        r: number;
        w: number;
        throughput: number;
        latency: Record<string, number>;
        byOp: Record<string, unknown>;
        errors: number;
        staleReads: number;
        probes: number;
        visibility: Array<{ t: number; probes: number; consistent: number }>;
      }>;
      baselines: Record<string, unknown>;
      files: { json: string; markdown: string };
    };
    expect(report.ok).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.points.map((p) => [p.r, p.w])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    for (const p of report.points) {
      expect(p.throughput).toBeGreaterThan(0);
      expect(p.errors).toBe(0);
      for (const f of ['p50', 'p95', 'p99', 'p999', 'max']) expect(p.latency[f]).toBeGreaterThan(0);
      expect(Object.keys(p.byOp).sort()).toEqual(['read', 'rmw']);
      expect(p.probes).toBe(90); // 30 per delay t, 3 delays
      expect(p.visibility.map((v) => v.t)).toEqual([0, 1, 5]);
    }
    const quorum = report.points.find((p) => p.r === 2 && p.w === 2)!;
    expect(quorum.staleReads).toBe(0);
    expect(quorum.visibility.every((v) => v.consistent === v.probes)).toBe(true);
    expect(report.baselines.etcd).toMatchObject({ skipped: expect.any(String) });
    expect(existsSync(report.files.json)).toBe(true);
    expect(readFileSync(report.files.markdown, 'utf8')).toContain('| R | W | ops/s |');
  });

  it('refuses impossible settings with a clear reason', async () => {
    const bad = await bench(['--points', '4,1', '--json']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toContain('R and W must be from 1 to N=3');
    const workload = await bench(['--workload', 'Z']);
    expect(workload.code).toBe(2);
    expect(workload.stderr).toContain('unknown workload "Z"');
  });
});
