// Durability and availability with real node processes: restarts (clean and kill -9) keep every
// acknowledged write, quorums behave as promised with a node down, and read repair fixes a replica
// that missed writes.

import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
});

const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

async function writeKeys(c: TestCluster, prefix: string, count: number, w: 'all' | number): Promise<void> {
  const client = c.client(undefined, { strategy: 'spread' });
  await Promise.all(Array.from({ length: count }, (_, i) => client.put(`${prefix}${i}`, `value-${i}`, { w })));
}

/** Reads every key from `id` alone: the other replicas are stopped, so R=1 is that node's own data. */
async function readAllFromOnly(c: TestCluster, id: string, prefix: string, count: number): Promise<string[]> {
  const client = c.client([id]);
  const missing: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await client.get(`${prefix}${i}`, { r: 1 });
    if (!res.found || !res.values.map(text).includes(`value-${i}`)) missing.push(`${prefix}${i}`);
  }
  return missing;
}

describe('durability across restarts', () => {
  it.each([
    ['a clean stop', 'stop'],
    ['kill -9', 'kill'],
  ] as const)('a node keeps every write it acknowledged after %s', async (_name, how) => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    await writeKeys(cluster, 'k', 300, 'all'); // W=all: n1 acknowledged every one of them
    await cluster[how]('n1');
    await cluster.restart('n1');
    await cluster.stop('n2');
    await cluster.stop('n3');
    expect(await readAllFromOnly(cluster, 'n1', 'k', 300)).toEqual([]);
  });

  it('the cluster keeps every W=2 write when a node is killed mid-load and restarted', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    const client = cluster.client(['n2', 'n3'], { strategy: 'spread' });
    const acked: number[] = [];
    const load = (async () => {
      for (let i = 0; i < 400; i++) {
        try {
          await client.put(`load${i}`, `value-${i}`, { w: 2, timeoutMs: 3000 });
          acked.push(i);
        } catch {
          // not acknowledged: no promise made
        }
      }
    })();
    await waitFor('some writes to land', () => acked.length >= 50);
    await cluster.kill('n1');
    await load;
    await cluster.restart('n1');
    await cluster.waitAllUp();
    expect(acked.length).toBeGreaterThan(300);
    const reader = cluster.client(['n1']);
    for (const i of acked) {
      const res = await reader.get(`load${i}`, { r: 2 });
      expect(res.values.map(text)).toContain(`value-${i}`);
    }
  });
});

describe('quorums with one of three nodes down', () => {
  it('W=2 and R=2 succeed, W=3 fails with a clear quorum error', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    const client = cluster.client(['n1', 'n2']);

    await client.put('avail', 'yes', { w: 2 });
    expect((await client.get('avail', { r: 2 })).values.map(text)).toEqual(['yes']);

    const err = await client.put('avail', 'all', { w: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QUORUM_NOT_MET' });
    expect((err as Error).message).toContain('2 of 3 required acks');
    expect((err as Error).message).toContain('n3');

    const cli = await cluster.cli(['put', 'avail', 'x', '--w', 'all', '--json']);
    expect(cli.code).toBe(1);
    expect(JSON.parse(cli.stdout).error.code).toBe('QUORUM_NOT_MET');

    const r3 = await client.get('avail', { r: 3 }).catch((e: unknown) => e);
    expect(r3).toMatchObject({ code: 'QUORUM_NOT_MET' });
    expect((r3 as Error).message).toContain('2 of 3 required replies');
  });
});

describe('read repair', () => {
  it('brings a replica that missed writes up to date', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    const client = cluster.client(['n1']);
    await client.put('missed', 'while-away', { w: 2 });
    const deleted = await client.put('gone', 'soon', { w: 2 });
    await client.del('gone', { context: deleted.context, w: 2 });

    await cluster.restart('n3');
    await cluster.waitAllUp();
    // R=3 waits for n3's (empty) answer, so the coordinator sees it is stale and repairs it.
    expect((await client.get('missed', { r: 3 })).values.map(text)).toEqual(['while-away']);
    expect((await client.get('gone', { r: 3 })).found).toBe(false);
    await waitFor('read repairs to be counted', async () => {
      const s = await cluster!.status('n1');
      return (s.nodes.find((n) => n.id === 'n1')?.readRepairs as number) >= 2;
    });

    // With the other two stopped, n3 answers from its own data alone.
    await cluster.stop('n1');
    await cluster.stop('n2');
    const alone = cluster.client(['n3']);
    await waitFor('n3 to hold the repaired value', async () => (await alone.get('missed', { r: 1 })).found);
    expect((await alone.get('missed', { r: 1 })).values.map(text)).toEqual(['while-away']);
    // The tombstone was repaired too: n3 must not serve the deleted value.
    const gone = await alone.get('gone', { r: 1 });
    expect(gone.found).toBe(false);
    expect(gone.siblings).toBe(1);
  });
});
