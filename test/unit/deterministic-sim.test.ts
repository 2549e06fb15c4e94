// The deterministic simulation: the real node code on a virtual clock and an in-memory network,
// one process. Hundreds of seeded runs of crashes, partitions, swizzle-clog and unreliable frames
// must each keep every promise; a seed must replay byte for byte; and a broken build must fail.

import { describe, expect, it } from 'vitest';
import { noReadStats } from '../../src/client/direct.js';
import { runDeterministic } from '../../src/sim/deterministic.js';

/**
 * Runs seeds [from, to] and returns the failures, each with the command that replays it. Also
 * checks that the seeds took every path of the clients' own read coordination (client/direct.ts):
 * reads answered by the client, reads handed to a node, repair reads for replicas still stale after
 * the grace, and stale replicas that caught up within it.
 */
async function failures(from: number, to: number, opts: { nodes: number }): Promise<string[]> {
  const out: string[] = [];
  const reads = noReadStats();
  for (let seed = from; seed <= to; seed++) {
    const run = await runDeterministic({ seed, nodes: opts.nodes, n: 3, faultSec: 2, clients: 3, keys: 5 });
    const { report } = run;
    for (const k of Object.keys(reads) as Array<keyof typeof reads>) reads[k] += run.reads[k];
    if (!report.ok)
      out.push(`seed ${seed}: lost ${report.lostWrites}, back ${report.resurrected.length}, converged ${report.convergeMs !== null} — replay: ${report.replay}`);
  }
  expect(reads.direct).toBeGreaterThan(0);
  expect(reads.fallbacks).toBeGreaterThan(0);
  expect(reads.repairs).toBeGreaterThan(0);
  expect(reads.caughtUp).toBeGreaterThan(0);
  return out;
}

describe('deterministic simulation', () => {
  // 200 seeds in all: 3-node clusters (every node a replica) and 5-node ones (stand-ins, hints).
  it('keeps every promise over seeds 1–50 (3 nodes)', async () => expect(await failures(1, 50, { nodes: 3 })).toEqual([]), 120_000);
  it('keeps every promise over seeds 51–100 (3 nodes)', async () => expect(await failures(51, 100, { nodes: 3 })).toEqual([]), 120_000);
  it('keeps every promise over seeds 101–150 (3 nodes)', async () => expect(await failures(101, 150, { nodes: 3 })).toEqual([]), 120_000);
  it('keeps every promise over seeds 151–200 (5 nodes)', async () => expect(await failures(151, 200, { nodes: 5 })).toEqual([]), 120_000);

  it('replays a seed identically', async () => {
    const a = await runDeterministic({ seed: 4242, nodes: 5, faultSec: 2 });
    const b = await runDeterministic({ seed: 4242, nodes: 5, faultSec: 2 });
    expect(a.history.length).toBeGreaterThan(100);
    expect(JSON.stringify(b.history)).toBe(JSON.stringify(a.history));
    expect(b.report.faults).toEqual(a.report.faults);
  });

  it('fails a broken build: replicas that overwrite instead of merging lose acknowledged writes', async () => {
    const runs = await Promise.all([1, 2, 3].map((seed) => runDeterministic({ seed, nodes: 3, faultSec: 2, clients: 4, keys: 3, brokenMerge: true })));
    expect(runs.some((r) => r.report.lostWrites > 0)).toBe(true);
    expect(runs.some((r) => !r.report.ok)).toBe(true);
  });
});
