// Bad input against real processes: oversized keys and values, too many siblings, garbage frames
// and a full disk get clear errors, and the node keeps serving what it stored.

import WebSocket from 'ws';
import { encode, splitFrames } from '../../src/transport/codec.js';
import { dial } from '../../src/transport/handshake.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster;
const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, n: 3 });
  await cluster.client().put('precious', 'keep-me', { w: 'all' });
});

afterAll(async () => {
  await cluster?.cleanup();
});

async function stillServing(): Promise<void> {
  expect((await cluster.client(['n1']).get('precious')).values.map(text)).toEqual(['keep-me']);
}

describe('limits', () => {
  it('refuses an oversized key and value, naming the limit', async () => {
    const client = cluster.client();
    await expect(client.put('k'.repeat(1025), 'v')).rejects.toMatchObject({ code: 'KEY_TOO_LARGE', message: expect.stringContaining('1024') });
    await expect(client.put('', 'v')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.put('big', new Uint8Array(1024 * 1024 + 1))).rejects.toMatchObject({
      code: 'VALUE_TOO_LARGE',
      message: expect.stringContaining('limit is 1048576 bytes'),
    });
    // Exactly at the limit is fine.
    await client.put('big', new Uint8Array(1024 * 1024));
    await stillServing();
  });

  it('refuses the write past 100 siblings and tells the client to read and resolve', async () => {
    const client = cluster.client(['n1']);
    for (let i = 0; i < 100; i++) await client.put('crowded', `v${i}`);
    const err = await client.put('crowded', 'one-too-many').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOO_MANY_SIBLINGS' });
    expect((err as Error).message).toContain('read the key and write with its context');
    const read = await client.get('crowded', { r: 'all' });
    expect(read.values).toHaveLength(100);
    await client.put('crowded', 'resolved', { context: read.context });
    expect((await client.get('crowded')).values.map(text)).toEqual(['resolved']);
  });

  it('closes a link that sends garbage, and keeps serving', async () => {
    // Garbage instead of a handshake.
    const raw = new WebSocket(cluster.node('n1').url);
    const closed = new Promise<number>((res) => raw.on('close', (code) => res(code)));
    raw.on('error', () => {});
    raw.on('open', () => raw.send(Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37])));
    expect(await closed).toBeGreaterThan(0);

    // Unknown types, peer-only messages and garbage after an authenticated handshake.
    const { ws, attach } = await dial({ url: cluster.node('n1').url, role: 'client', secret: '', maxPayload: 1 << 20 });
    const replies: unknown[] = [];
    attach((m: Buffer) => replies.push(...splitFrames(m))); // a message may carry several frames
    const wsClosed = new Promise<void>((res) => ws.on('close', () => res()));
    ws.send(encode([0, 1, { t: 'frobnicate' }, 1000]));
    ws.send(encode([0, 2, { t: 'rput', key: 'precious', partition: 0, obj: Buffer.from('junk') }, 1000]));
    ws.send(encode([0, 3, { t: 'put', key: 42, value: 'not-bytes' }, 1000]));
    ws.send(encode([0, 4, { t: 'rget', key: 'x'.repeat(2000) }, 1000])); // clients may rget, within the key limit
    await waitFor('four error replies', () => replies.length >= 4);
    // Replies may come in any order: sort by request id.
    expect((replies as [number, number][]).sort((a, b) => a[1] - b[1])).toEqual([
      [2, 1, { code: 'BAD_FRAME', message: expect.stringContaining('unknown message type "frobnicate"') }],
      [2, 2, { code: 'BAD_FRAME', message: expect.stringContaining('only for cluster members') }],
      [2, 3, { code: 'BAD_FRAME', message: expect.stringContaining('string key') }],
      [2, 4, { code: 'KEY_TOO_LARGE', message: expect.stringContaining('2000 bytes') }],
    ]);
    ws.send(Buffer.from([0xc1, 0xc1, 0xc1]));
    await wsClosed;
    await stillServing();
  });
});

describe('full disk', () => {
  it('fails writes with a clear "disk full" error and keeps serving reads', async () => {
    const small = await TestCluster.start({ nodes: 3, n: 3, args: ['--max-data-bytes', String(256 * 1024)] });
    try {
      const client = small.client(['n1']);
      await client.put('early', 'safe', { w: 'all' });
      const blob = new Uint8Array(32 * 1024).fill(7);
      let err: unknown;
      await waitFor('the disk to fill', async () => {
        try {
          for (let i = 0; i < 4; i++) await client.put(`fill${Math.random()}`, blob, { w: 'all' });
          return false;
        } catch (e) {
          err = e;
          return true;
        }
      }, 30_000, 1);
      expect(err).toMatchObject({ code: 'QUORUM_NOT_MET' });
      expect((err as Error).message).toContain('disk full');
      expect((await client.get('early', { r: 'all' })).values.map(text)).toEqual(['safe']);
      expect((await small.status('n1')).nodes.every((n) => n.state === 'up')).toBe(true);
    } finally {
      await small.cleanup();
    }
  });
});
