// The client's 'spread' strategy against real node processes: the requests issued in one
// event-loop turn go to one node (one frame there, one commit on each replica), the next turn's
// to the next node, and a burst larger than SPREAD_TURN_MAX is still shared by the nodes.

import { afterEach, describe, expect, it } from 'vitest';
import { SPREAD_TURN_MAX } from '../../src/client/client.js';
import { TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
});

/** How many puts n1, n2 and n3 have each coordinated so far (their own `coordinatedPuts`). */
async function coordinated(c: TestCluster): Promise<number[]> {
  const own = await c.ownStatus();
  return ['n1', 'n2', 'n3'].map((id) => (own[id]?.coordinatedPuts as number | undefined) ?? 0);
}

async function since(c: TestCluster, before: number[]): Promise<number[]> {
  return (await coordinated(c)).map((n, i) => n - before[i]!);
}

describe("the client's spread strategy", () => {
  it('sends one turn of requests to one node, the next turn to the next, and shares a large burst', async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3 });
    const client = cluster.client(undefined, { strategy: 'spread' });

    // 30 puts issued together: one node coordinates them all.
    let before = await coordinated(cluster);
    await Promise.all(Array.from({ length: 30 }, (_, i) => client.put(`burst-${i}`, 'v')));
    expect((await since(cluster, before)).sort((a, b) => a - b)).toEqual([0, 0, 30]);

    // One put per turn: the nodes take turns.
    before = await coordinated(cluster);
    for (let i = 0; i < 6; i++) await client.put(`single-${i}`, 'v');
    expect(await since(cluster, before)).toEqual([2, 2, 2]);

    // A burst of more than SPREAD_TURN_MAX moves on every SPREAD_TURN_MAX requests.
    const burst = 2 * SPREAD_TURN_MAX + 88;
    before = await coordinated(cluster);
    const acks = await Promise.all(Array.from({ length: burst }, (_, i) => client.put(`bulk-${i}`, 'v')));
    expect(acks).toHaveLength(burst);
    expect((await since(cluster, before)).sort((a, b) => a - b)).toEqual([88, SPREAD_TURN_MAX, SPREAD_TURN_MAX]);
  });
});
