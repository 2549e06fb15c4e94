// `nexus sim` end to end: each scenario on a real 5-node cluster (short runs) passes every check —
// and a deliberately broken build (replicas overwrite instead of merging) is caught as lost writes,
// because a checker that never fails proves nothing.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'nexus');
const out = mkdtempSync(join(tmpdir(), 'nexus-sim-test-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

function sim(args: string[], env: Record<string, string> = {}): Promise<{ code: number; report: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'sim', '--json', '--out', out, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => {
      let report: Record<string, unknown> = {};
      try {
        report = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        report = { unparsable: stdout };
      }
      resolve({ code: code ?? -1, report, stderr });
    });
  });
}

describe('nexus sim', () => {
  for (const scenario of ['crash', 'pause', 'partition', 'mixed']) {
    it(`${scenario}: no acknowledged write lost, nothing deleted comes back, replicas converge`, async () => {
      const { code, report, stderr } = await sim(['--scenario', scenario, '--seed', '42', '--duration', '4']);
      expect(report, stderr).toMatchObject({ ok: true, seed: 42, scenario, lostWrites: 0, converged: true });
      expect(report.resurrected).toEqual([]);
      expect(report.acknowledgedWrites as number).toBeGreaterThan(100);
      expect((report.faults as unknown[]).length).toBeGreaterThan(0);
      const files = report.files as Record<string, string>;
      for (const f of Object.values(files)) expect(existsSync(f)).toBe(true);
      expect(code).toBe(0);
    });
  }

  it('catches a broken build: replicas that overwrite instead of merging lose acknowledged writes', async () => {
    // Few keys, so concurrent writes to one key (siblings) are common.
    const { code, report, stderr } = await sim(['--scenario', 'crash', '--seed', '5', '--duration', '4', '--keys', '8'], { NEXUS_BREAK: 'no-merge' });
    expect(report, stderr).toMatchObject({ ok: false });
    expect(report.lostWrites as number).toBeGreaterThan(0);
    expect(code).toBe(1);
  });

  it('takes its faults from a schedule file', async () => {
    const file = join(out, 'schedule.json');
    writeFileSync(
      file,
      JSON.stringify([
        { at: 0, fault: 'kill', nodes: ['n2'], holdMs: 800 },
        { at: 1500, fault: 'partition', groups: [['n1', 'n2'], ['n3', 'n4', 'n5']], holdMs: 800 },
        { at: 3000, fault: 'pause', nodes: ['n5'], holdMs: 800 },
        { at: 4500, fault: 'slow', nodes: ['n1'], delayMs: 50, holdMs: 500 },
      ]),
    );
    const { code, report, stderr } = await sim(['--schedule', file, '--seed', '1', '--duration', '1']);
    expect(report, stderr).toMatchObject({ ok: true, scenario: 'file', lostWrites: 0, converged: true });
    const actions = (report.faults as Array<{ action: string; nodes: string[] }>).map((f) => `${f.action} ${f.nodes.join(',')}`);
    expect(actions).toEqual(expect.arrayContaining(['kill n2', 'restart n2', 'pause n5', 'resume n5', 'slow n1']));
    expect(actions.some((a) => a.startsWith('partition'))).toBe(true);
    expect(code).toBe(0);

    writeFileSync(file, JSON.stringify([{ at: 0, fault: 'kill', nodes: ['n9'], holdMs: 10 }]));
    const bad = await sim(['--schedule', file]);
    expect(bad.code).toBe(2);
    expect((bad.report.error as { message: string }).message).toContain('unknown node "n9"');
  });

  it('refuses an unknown scenario and a run against an existing cluster, with a clear reason', async () => {
    const bad = await sim(['--scenario', 'meteor']);
    expect(bad.code).toBe(2);
    expect(bad.report).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    expect((bad.report.error as { message: string }).message).toContain('unknown scenario "meteor"');
    const existing = await sim(['--node', 'ws://127.0.0.1:1']);
    expect(existing.code).toBe(2);
  });
});
