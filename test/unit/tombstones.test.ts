// Tombstone collection, and the reuse of exchange trees, between two in-memory nodes on the
// virtual clock of the deterministic simulation: the same NexusNode code, no processes, no timing
// left to chance.
import { afterEach, describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../src/core/config.js';
import { emptyObject, update } from '../../src/core/version.js';
import { silentLogger } from '../../src/core/log.js';
import { HintMirror } from '../../src/handoff/mirror.js';
import { NexusNode } from '../../src/node.js';
import { Scheduler } from '../../src/sim/deterministic.js';
import { partitionOf } from '../../src/ring/index.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Request } from '../../src/transport/protocol.js';
import { MemoryNetwork } from '../../src/transport/memory.js';

const GRACE = 5_000;

async function pair() {
  const sched = new Scheduler();
  const net = new MemoryNetwork({ clock: sched, defer: sched.defer, delayMs: () => 1 });
  const ids = ['n1', 'n2'];
  const cluster = { members: ids.map((id, i) => ({ id, url: `ws://127.0.0.1:${7000 + i}` })), n: 2, partitions: 8 };
  const nodes = new Map<string, { node: NexusNode; storage: MemoryStorage }>();
  for (const [i, id] of ids.entries()) {
    const storage = new MemoryStorage({ segments: 16, now: () => sched.now(), defer: sched.defer });
    const cfg = defaultNodeConfig({ id, port: 7000 + i, dataDir: 'memory', cluster });
    cfg.antiEntropyIntervalMs = 500;
    cfg.hintWindowMs = 1_000;
    cfg.tombstoneGraceMs = GRACE;
    const hints = new HintMirror({ persist: () => Promise.resolve() }, [], sched.defer);
    const node = await NexusNode.start(cfg, { clock: sched, log: silentLogger(), storage, transport: net.transport(id, ids), hints });
    nodes.set(id, { node, storage });
  }
  await sched.runUntil(sched.now() + 1_000);
  // Runs the virtual clock until `p` settles.
  const drive = async <T>(p: Promise<T>): Promise<T> => {
    let out: { v?: T; e?: unknown } | undefined;
    p.then((v) => (out = { v }), (e: unknown) => (out = { e }));
    while (!out) await sched.runUntil(sched.now() + 10);
    if ('e' in out) throw out.e;
    return out.v as T;
  };
  const ask = <T>(id: string, m: Request): Promise<T> => drive(nodes.get(id)!.node.handle({ kind: 'client', addr: 'test' }, m, 2_000) as Promise<T>);
  return { sched, nodes, ask, drive, stop: () => Promise.all([...nodes.values()].map((n) => n.node.stop())) };
}

/** The pair a test started, stopped after it whatever happened. */
let stop: (() => Promise<unknown>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe('tombstone collection', () => {
  it('never ships a reaped record to a replica that has collected and forgotten the same tombstone', async () => {
    const c = await pair();
    stop = c.stop;
    const enc = new TextEncoder();
    for (let i = 0; i < 20; i++) await c.ask('n2', { t: 'put', key: `k${i}`, value: enc.encode('v'), w: 2, timeoutMs: 2_000 });
    for (let i = 0; i < 20; i++) {
      const { ctx } = await c.ask<{ ctx: string }>('n1', { t: 'get', key: `k${i}`, r: 2, timeoutMs: 2_000 });
      await c.ask('n1', { t: 'put', key: `k${i}`, value: null, ctx, w: 2, timeoutMs: 2_000 });
    }
    // Background rounds run until both replicas have collected every tombstone.
    const n1 = c.nodes.get('n1')!.storage;
    const n2 = c.nodes.get('n2')!.storage;
    for (let t = 0; t < 120 && (n1.reapedCount() < 20 || n2.reapedCount() < 20); t++) await c.sched.runUntil(c.sched.now() + 500);
    expect([n1.reapedCount(), n2.reapedCount()]).toEqual([20, 20]);

    // n1 forgets its reaped records before n2 does (each forgets one grace period after its own
    // collection). Then keys that only n2 holds make every segment differ, so the exchanges list
    // their keys: the new keys must move, the reaped ones must not come back to n1.
    expect(await n1.forgetReaped(c.sched.now() + 1)).toBe(20);
    const extra = Array.from({ length: 64 }, (_, i) => `x${i}`);
    await c.drive(Promise.all(extra.map((k, i) => n2.put(k, partitionOf(k, 8), update(emptyObject(), {}, 'n2', 1000 + i, enc.encode('only-n2'))))));
    const r1 = await c.ask<{ keysRepaired: number; segmentsCompared: number }>('n1', { t: 'repair' } as Request);
    expect(r1.keysRepaired).toBe(extra.length);
    const r2 = await c.ask<{ keysRepaired: number }>('n2', { t: 'repair' } as Request);
    expect(r2.keysRepaired).toBe(0);
    const held = [...Array(8).keys()].flatMap((p) => n1.scanPartition(p).map(([k]) => k));
    expect(held.sort()).toEqual([...extra].sort());
    expect(n2.reapedCount()).toBe(20);
    for (let i = 0; i < 20; i++) expect(n1.reaped(`k${i}`)).toBeUndefined();
  });
});

describe('exchange trees', () => {
  it('are rebuilt only for partitions whose segment hashes changed, and still find every difference', async () => {
    const c = await pair();
    stop = c.stop;
    const enc = new TextEncoder();
    const builds = async (id: string): Promise<number> => (await c.ask<{ aeTreesBuilt: number }>(id, { t: 'info' } as Request)).aeTreesBuilt;
    const repair = (id: string): Promise<{ keysRepaired: number; exchanges: number }> => c.ask(id, { t: 'repair' } as Request);
    for (let i = 0; i < 20; i++) await c.ask('n1', { t: 'put', key: `k${i}`, value: enc.encode('v'), w: 2, timeoutMs: 2_000 });
    await repair('n1');
    const before = [await builds('n1'), await builds('n2')];
    expect(before[0]).toBeGreaterThan(0);

    // Nothing written: every partition (8) is compared again, on both sides, from the kept trees.
    expect(await repair('n1')).toMatchObject({ keysRepaired: 0, exchanges: 8 });
    expect(await repair('n2')).toMatchObject({ keysRepaired: 0, exchanges: 8 });
    expect([await builds('n1'), await builds('n2')]).toEqual(before);

    // A key only n2 holds (written to its storage directly, so no replication): n2 rebuilds that
    // partition's tree (n1's hashes did not change) and the key moves; the kept trees hide nothing.
    const key = 'only-on-n2';
    await c.drive(c.nodes.get('n2')!.storage.put(key, partitionOf(key, 8), update(emptyObject(), {}, 'n2', 5000, enc.encode('x'))));
    expect(await repair('n1')).toMatchObject({ keysRepaired: 1 });
    expect(c.nodes.get('n1')!.storage.get(key)).toBeDefined();
    expect([await builds('n1'), await builds('n2')]).toEqual([before[0], before[1]! + 1]);
    // The repair changed n1's hashes: the next round rebuilds that one tree there, and agrees.
    expect(await repair('n1')).toMatchObject({ keysRepaired: 0, exchanges: 8 });
    expect([await builds('n1'), await builds('n2')]).toEqual([before[0]! + 1, before[1]! + 1]);
  });
});
