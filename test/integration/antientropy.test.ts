// Anti-entropy with real processes: a node back on an empty disk is refilled in the background, a
// write that reached one replica spreads to all, deletes stay deleted, and concurrent siblings end
// up identical everywhere — with no reads to trigger read repair.

import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
});

const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

async function everyNodeHolds(c: TestCluster, count: number): Promise<void> {
  await waitFor(`every node to hold ${count} live keys`, async () => Object.values(await c.keysHeld()).every((k) => k === count), 60_000, 200);
}

describe('anti-entropy', () => {
  it('refills a node that came back on an empty disk, then finds nothing to repair', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3, args: ['--ae-interval-ms', '300'] });
    const client = cluster.client(undefined, { strategy: 'spread' });
    await Promise.all(Array.from({ length: 1000 }, (_, i) => client.put(`key${i}`, `value-${i}`, { w: 'all' })));
    await cluster.stop('n3');
    rmSync(cluster.node('n3').dataDir, { recursive: true, force: true });
    await cluster.restart('n3');
    await cluster.waitAllUp();
    await everyNodeHolds(cluster, 1000);

    // The exchanges that refilled n3 say so (n1 and n2 start them: the smaller id of a pair does).
    const before = await cluster.status('n1');
    expect(before.nodes.reduce((a, n) => a + ((n.aeKeysRepaired as number) ?? 0), 0)).toBeGreaterThanOrEqual(1000);

    // Idle and identical: a full round repairs nothing.
    const idle = await cluster.cli(['repair', '--json'], { node: 'n3' });
    expect(idle.code).toBe(0);
    expect(JSON.parse(idle.stdout)).toMatchObject({ ok: true, keysRepaired: 0 });
    expect(JSON.parse(idle.stdout).exchanges).toBeGreaterThan(0);

    // n3 alone answers every key from its own data.
    await cluster.stop('n1');
    await cluster.stop('n2');
    const alone = cluster.client(['n3']);
    for (let i = 0; i < 1000; i += 37) expect((await alone.get(`key${i}`, { r: 1 })).values.map(text)).toEqual([`value-${i}`]);
  });

  it('spreads a write that reached a single replica, and keeps deleted keys deleted', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3, args: ['--ae-interval-ms', '60000'] });
    const c1 = cluster.client(['n1']);
    await c1.put('doomed', 'old', { w: 'all' });
    await cluster.stop('n2');
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n2', 'down');
    await cluster.waitState('n1', 'n3', 'down');
    await c1.put('lonely', 'only-on-n1', { w: 1 });
    await c1.del('doomed', { w: 1, r: 1 });
    await cluster.restart('n2');
    await cluster.restart('n3');
    await cluster.waitAllUp();
    expect(await cluster.keysHeld()).toEqual({ n1: 1, n2: 1, n3: 1 }); // n1: lonely; n2, n3: doomed

    const report = await cluster.client(['n1']).repair();
    expect(report.keysRepaired).toBeGreaterThanOrEqual(4);
    expect(await cluster.keysHeld()).toEqual({ n1: 1, n2: 1, n3: 1 }); // lonely everywhere, doomed nowhere
    expect((await cluster.client(['n2']).repair()).keysRepaired).toBe(0);
    const read = await cluster.client(['n3']).get('doomed', { r: 3 });
    expect(read.found).toBe(false);
    expect((await cluster.client(['n2']).get('lonely', { r: 3 })).values.map(text)).toEqual(['only-on-n1']);
  });

  it('leaves concurrent siblings written on different replicas identical everywhere', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3, args: ['--ae-interval-ms', '300'] });
    await cluster.stop('n2');
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    await cluster.client(['n1']).put('split', 'from-n1', { w: 1 });
    await cluster.stop('n1');
    await cluster.restart('n2');
    await cluster.client(['n2']).put('split', 'from-n2', { w: 1 });
    await cluster.restart('n1');
    await cluster.restart('n3');
    await cluster.waitAllUp();
    // No reads: only the background exchanges may bring the replicas together.
    await waitFor('the exchanges to converge', async () => {
      const r = await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster!.client([id]).repair()));
      return r.every((x) => x.keysRepaired === 0);
    }, 30_000, 300);
    const read = await cluster.client(['n3']).get('split', { r: 3 });
    expect(read.values.map(text).sort()).toEqual(['from-n1', 'from-n2']);
  });

  it('collects tombstones only once every replica holds them, and never brings a deleted value back', async () => {
    const grace = 1500;
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: ['--ae-interval-ms', '300', '--hint-window-ms', '1000', '--tombstone-grace-ms', String(grace)],
    });
    const all = cluster.client();
    await Promise.all(Array.from({ length: 60 }, (_, i) => all.put(`key${i}`, `value-${i}`, { w: 'all' })));
    await all.put('zombie', 'old', { w: 'all' });
    const field = async (id: string, name: string): Promise<number> =>
      ((await cluster!.status(id)).nodes.find((n) => n.id === id)?.[name] as number | undefined) ?? 0;

    // n3 misses the delete of "zombie" and keeps the old value.
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    const deletedAt = Date.now();
    await cluster.client(['n1']).del('zombie', { w: 2, r: 2 });
    // n1 and n2 exchange past the grace period, but n3 has not confirmed: nothing is collected.
    await waitFor('n1 to finish a round after the grace period', async () => {
      const at = (await cluster!.status('n1')).nodes.find((n) => n.id === 'n1')?.aeLastRoundAt as string | null;
      return at !== null && at !== undefined && Date.parse(at) > deletedAt + grace + 600;
    }, 30_000, 200);
    expect(await field('n1', 'tombstonesCollected')).toBe(0);
    expect(await field('n2', 'tombstonesCollected')).toBe(0);

    // Everyone up: delete half the keys with every replica answering, then wait for collection.
    await cluster.restart('n3');
    await cluster.waitAllUp();
    await Promise.all(Array.from({ length: 30 }, (_, i) => all.del(`key${i}`, { w: 'all', r: 'all' })));
    for (const id of ['n1', 'n2', 'n3'])
      await waitFor(`${id} to collect 31 tombstones`, async () => (await field(id, 'tombstonesCollected')) >= 31, 60_000, 300);
    for (const id of ['n1', 'n2', 'n3']) {
      // Each tombstone collected once; its reaped record is kept for one grace period, then forgotten.
      expect(await field(id, 'tombstonesCollected')).toBe(31);
      // One status answer for both: a record forgotten between two answers would count twice.
      const st = (await cluster.status(id)).nodes.find((n) => n.id === id)!;
      expect((st.reapedKept as number) + (st.reapedForgotten as number)).toBe(31);
    }

    // Gone everywhere and staying gone: no replica holds a stale value, and a full round between
    // nodes that all collected them ships nothing either way.
    expect((await all.get('zombie', { r: 'all' })).found).toBe(false);
    for (let i = 0; i < 30; i++) expect((await all.get(`key${i}`, { r: 'all' })).found).toBe(false);
    expect(await cluster.keysHeld()).toEqual({ n1: 30, n2: 30, n3: 30 });
    for (const id of ['n1', 'n2', 'n3']) expect((await cluster.client([id]).repair()).keysRepaired).toBe(0);

    // And through a restart: reaped records and segment hashes come back from disk.
    await cluster.kill('n2');
    await cluster.restart('n2');
    await cluster.waitAllUp();
    for (const id of ['n1', 'n2', 'n3']) expect((await cluster.client([id]).repair()).keysRepaired).toBe(0);
    expect((await all.get('zombie', { r: 'all' })).found).toBe(false);
    expect((await all.get('key0', { r: 'all' })).found).toBe(false);

    // A new write without a context is never hidden by the collected tombstone.
    await all.put('zombie', 'new', { w: 'all' });
    expect((await all.get('zombie', { r: 'all' })).values.map(text)).toEqual(['new']);
  });
});
