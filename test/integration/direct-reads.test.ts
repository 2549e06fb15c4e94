// Client-coordinated reads (client/direct.ts) against real node processes: a client with every
// node's URL reads from the key's primaries itself, with the same answers, contexts and errors as
// a node coordinator; it hands a read to a node when it lacks a primary's URL or R is out of reach,
// and has a stale replica repaired.

import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
});

const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

/** Reads coordinated by the nodes, over the whole cluster (the `gets` counters in status). */
async function coordinatedGets(c: TestCluster, via: string): Promise<number> {
  const s = await c.status(via);
  return s.nodes.reduce((sum, n) => sum + ((n.gets as number | undefined) ?? 0), 0);
}

describe('direct reads', () => {
  it('answer from the replicas with the values, siblings and context a coordinator would give', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    const client = cluster.client();
    const before = await coordinatedGets(cluster, 'n1');

    expect((await client.get('absent', { r: 2 })).found).toBe(false);
    await client.put('k', 'one', { w: 'all' });
    await client.put('k', 'two', { w: 'all' }); // no context: a sibling of 'one'
    const read = await client.get('k', { r: 2 });
    expect(read.siblings).toBe(2);
    expect(read.values.map(text).sort()).toEqual(['one', 'two']);

    // The context covers exactly what was read: writing with it resolves both siblings.
    await client.put('k', 'resolved', { context: read.context, w: 'all' });
    const after = await client.get('k', { r: 'all' });
    expect(after.values.map(text)).toEqual(['resolved']);
    await client.del('k', { w: 'all' }); // reads first (directly), then deletes what it saw
    expect((await client.get('k', { r: 'quorum' })).found).toBe(false);

    expect(client.readStats).toMatchObject({ direct: 5, fallbacks: 0 });
    expect(await coordinatedGets(cluster, 'n1')).toBe(before); // no node coordinated any of them
  });

  it('refuse a bad key or an impossible R before asking anyone, with the errors a node gives', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    const client = cluster.client();
    await expect(client.get('x'.repeat(2000))).rejects.toMatchObject({ code: 'KEY_TOO_LARGE', message: expect.stringContaining('limit is 1024 bytes') });
    await expect(client.get('k', { r: 4 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('R=4 is impossible') });
    await expect(client.get('k', { r: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(client.readStats).toMatchObject({ direct: 0, fallbacks: 0 });
  });

  it('leave the read to a node when the client lacks a primary\'s URL', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    await cluster.client().put('k', 'v', { w: 'all' });
    const partial = cluster.client(['n1', 'n2']);
    expect((await partial.get('k', { r: 2 })).values.map(text)).toEqual(['v']);
    expect(partial.readStats).toMatchObject({ direct: 0, fallbacks: 1 });
  });

  it('stay direct with a primary down, and give the coordinator\'s quorum error when R is out of reach', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    const client = cluster.client();
    await client.put('k', 'v', { w: 'all' });
    await client.get('k'); // the client learns the ring while every node is up
    await cluster.stop('n3');

    expect((await client.get('k', { r: 2 })).values.map(text)).toEqual(['v']);
    expect(client.readStats).toMatchObject({ direct: 2, fallbacks: 0 });

    const err = await client.get('k', { r: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QUORUM_NOT_MET', message: expect.stringContaining('2 of 3 required replies') });
    expect(client.readStats.fallbacks).toBe(1);
  });

  it('hand a read held up by a paused primary to a node, which answers with a stand-in', async () => {
    cluster = await TestCluster.start({ nodes: 4, n: 3 });
    const client = cluster.client(undefined, { patienceMs: 300 });
    const key = 'held-up';
    const { primaries } = cluster.preference(key);
    await client.put(key, 'v', { w: 'all' });
    await client.get(key); // learn the ring
    const paused = primaries[0]!;
    const observer = cluster.nodes.map((n) => n.id).find((id) => id !== paused)!;
    cluster.node(paused).proc!.kill('SIGSTOP');
    try {
      for (const id of cluster.nodes.map((n) => n.id).filter((id) => id !== paused)) await cluster.waitState(id, paused, 'down');
      // R=3: two primaries answer at once, the third never; a coordinator counts a stand-in.
      const res = await client.get(key, { r: 3, timeoutMs: 5000 });
      expect(res.values.map(text)).toEqual(['v']);
      expect(client.readStats).toMatchObject({ direct: 1, fallbacks: 1 });
      expect(await coordinatedGets(cluster, observer)).toBeGreaterThan(0);
    } finally {
      cluster.node(paused).proc?.kill('SIGCONT');
    }
  });

  it('have a replica that missed a write repaired through a node', async () => {
    // Anti-entropy is slowed down so that only read repair can fix the replica in time.
    cluster = await TestCluster.start({ nodes: 3, n: 3, args: ['--ae-interval-ms', '600000'] });
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    await cluster.client(['n1']).put('missed', 'while-away', { w: 2 });
    await cluster.restart('n3');
    await cluster.waitAllUp();

    const client = cluster.client();
    expect((await client.get('missed', { r: 2 })).values.map(text)).toEqual(['while-away']);
    await waitFor('the client to ask for a repair', () => client.readStats.repairs >= 1);
    await waitFor('n3 to count a read repair', async () => ((await cluster!.status('n3')).nodes.find((n) => n.id === 'n3')?.readRepairs as number) >= 1);

    await cluster.stop('n1');
    await cluster.stop('n2');
    expect((await cluster.client(['n3']).get('missed', { r: 1 })).values.map(text)).toEqual(['while-away']);
  });
});
