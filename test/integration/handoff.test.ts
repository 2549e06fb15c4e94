// Staying writable through failures, with real processes: the failure detector skips down nodes,
// stand-ins take writes as durable hints (sloppy quorum), --strict counts only primaries, and
// hinted handoff brings returning nodes up to date without anyone running a command.

import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = undefined;
});

const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

async function allHintsDelivered(c: TestCluster): Promise<void> {
  await waitFor('every hint to be delivered', async () => Object.values(await c.hintsHeld()).every((n) => n === 0), 30_000);
}

describe('sloppy quorum and hinted handoff', () => {
  it('keeps a key writable with two of its three primaries killed, and hands the writes back', async () => {
    cluster = await TestCluster.start({ nodes: 5, n: 3 });
    const key = 'survivor';
    const { primaries, fallbacks } = cluster.preference(key);
    const [alive, down1, down2] = primaries as [string, string, string];
    await cluster.kill(down1);
    await cluster.kill(down2);
    await cluster.waitState(alive, down1, 'down');
    await cluster.waitState(alive, down2, 'down');

    const client = cluster.client([alive]);
    await client.put(key, 'written-while-down', { w: 2 });

    const strict = await client.put(key, 'strict', { w: 2, strict: true }).catch((e: unknown) => e);
    expect(strict).toMatchObject({ code: 'QUORUM_NOT_MET' });
    expect((strict as Error).message).toContain('strict quorum not met: 1 of 3 primaries up');
    const cli = await cluster.cli(['put', key, 'x', '--strict', '--json'], { node: alive });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('strict quorum not met');

    // The stand-ins hold the writes as hints for the two down primaries.
    const held = await cluster.hintsHeld();
    expect(held[fallbacks[0]!]! + held[fallbacks[1]!]!).toBeGreaterThanOrEqual(2);

    await cluster.restart(down1);
    await cluster.restart(down2);
    await allHintsDelivered(cluster);
    await cluster.waitState(alive, down1, 'up');
    await cluster.waitState(alive, down2, 'up');
    const read = await client.get(key, { r: 3, strict: true });
    expect(read.values.map(text)).toEqual(['written-while-down']);

    // Status shows handoff figures.
    const s = await cluster.status(fallbacks[0]!);
    const self = s.nodes.find((n) => n.id === fallbacks[0]);
    expect(self).toMatchObject({ hintsPending: 0, hintsDelivered: expect.any(Number), handoffInProgress: [] });
  });

  it('delivers hints that survived a kill -9 of the stand-in holding them', async () => {
    cluster = await TestCluster.start({ nodes: 4, n: 3 });
    const key = 'hinted';
    const { primaries, fallbacks } = cluster.preference(key);
    const [p1, p2, p3] = primaries as [string, string, string];
    const standIn = fallbacks[0]!;
    await cluster.kill(p3);
    await cluster.waitState(p1, p3, 'down');
    await cluster.client([p1]).put(key, 'only-a-hint-for-p3', { w: 3 }); // W=3 needs the stand-in's ack
    expect((await cluster.hintsHeld())[standIn]).toBe(1);

    await cluster.kill(standIn);
    await cluster.restart(standIn);
    expect((await cluster.hintsHeld())[standIn]).toBe(1);

    await cluster.restart(p3);
    await allHintsDelivered(cluster);
    // p3 alone: the value reached it through the hint.
    await cluster.stop(p1);
    await cluster.stop(p2);
    const alone = await cluster.client([p3]).get(key, { r: 1, strict: true });
    expect(alone.values.map(text)).toEqual(['only-a-hint-for-p3']);
  });

  it('loses no acknowledged W=2 write while nodes are killed and restarted under load', async () => {
    cluster = await TestCluster.start({ nodes: 5, n: 3 });
    const ids = cluster.nodes.map((n) => n.id);
    const client = cluster.client(ids, { strategy: 'spread', timeoutMs: 3000 });
    const acked: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `loop${i}`;
        try {
          await client.put(key, `v${i}`, { w: 2 });
          acked.push(key);
        } catch {
          // not acknowledged: nothing promised
        }
      }
    })();
    // A fixed, seeded-by-hand sequence of victims so the run is repeatable.
    for (const victim of ['n2', 'n4', 'n1', 'n5', 'n3']) {
      const before = acked.length;
      await cluster.kill(victim);
      await waitFor('writes to continue with a node down', () => acked.length >= before + 30, 30_000);
      await cluster.restart(victim);
      await cluster.waitAllUp();
    }
    stop = true;
    await writer;
    await allHintsDelivered(cluster);
    expect(acked.length).toBeGreaterThan(150);
    const reader = cluster.client(ids);
    const lost: string[] = [];
    for (const key of acked) {
      const res = await reader.get(key, { r: 3 });
      if (!res.values.map(text).includes(`v${key.slice(4)}`)) lost.push(key);
    }
    expect(lost).toEqual([]);
  });
});

describe('hint window', () => {
  it('drops overdue hints a primary already holds, keeps the only copy and delivers it later', async () => {
    cluster = await TestCluster.start({ nodes: 5, n: 3, args: ['--hint-window-ms', '1500'] });
    // 1) A hint whose object a live primary holds: dropped once overdue, and counted.
    const k1 = 'covered';
    const pref1 = cluster.preference(k1);
    const [a1, , c1] = pref1.primaries as [string, string, string];
    await cluster.kill(c1);
    await cluster.waitState(a1, c1, 'down');
    await cluster.client([a1]).put(k1, 'on-two-primaries', { w: 3 });
    const holder = pref1.fallbacks[0]!;
    await waitFor('the covered hint to be dropped', async () => {
      const s = await cluster!.status(holder);
      const me = s.nodes.find((n) => n.id === holder)!;
      return me.hintsPending === 0 && (me.hintsDropped as number) >= 1;
    }, 20_000);
    await cluster.restart(c1);
    await cluster.waitAllUp();

    // 2) Hints that are the only copies (every primary down): kept past the window, then delivered.
    const k2 = 'only-copy';
    const pref2 = cluster.preference(k2);
    const [a2, b2, c2] = pref2.primaries as [string, string, string];
    const [f1, f2] = pref2.fallbacks as [string, string];
    for (const p of [a2, b2, c2]) await cluster.kill(p);
    await cluster.waitState(f1, a2, 'down');
    await cluster.waitState(f1, b2, 'down');
    await cluster.waitState(f1, c2, 'down');
    await cluster.client([f1, f2]).put(k2, 'precious', { w: 2 });
    await waitFor('the overdue hints to be reported as kept', async () => {
      const s = await cluster!.status(f1);
      return ((s.nodes.find((n) => n.id === f1)!.hintsOverdueKept as number) ?? 0) >= 1;
    }, 20_000);
    expect((await cluster.hintsHeld())[f1]).toBe(1);
    for (const p of [a2, b2, c2]) await cluster.restart(p);
    await allHintsDelivered(cluster);
    const read = await cluster.client([a2]).get(k2, { r: 2, strict: true });
    expect(read.values.map(text)).toEqual(['precious']);
  });
});
