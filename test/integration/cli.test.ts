// The CLI against a real 3-node cluster: the round trip CLI.md promises, siblings and their
// resolution, exit statuses and JSON output.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, n: 3 });
});

afterAll(async () => {
  await cluster?.cleanup();
});

describe('nexus CLI', () => {
  it('puts, gets and deletes a key', async () => {
    const put = await cluster.cli(['put', 'greeting', 'hello', '--json']);
    expect(put.code).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true, context: expect.any(String) });

    const get = await cluster.cli(['get', 'greeting', '--json'], { node: 'n2' });
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ ok: true, found: true, values: ['hello'] });

    const del = await cluster.cli(['del', 'greeting', '--json'], { node: 'n3' });
    expect(del.code).toBe(0);
    expect(JSON.parse(del.stdout)).toEqual({ ok: true });

    const gone = await cluster.cli(['get', 'greeting', '--json']);
    expect(gone.code).toBe(0);
    expect(JSON.parse(gone.stdout)).toMatchObject({ ok: true, found: false, values: [] });
  });

  it('reads the value from stdin with "-" and reports binary values as base64', async () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x01]);
    expect((await cluster.cli(['put', 'bin', '-'], { input: bytes })).code).toBe(0);
    const get = JSON.parse((await cluster.cli(['get', 'bin', '--json'])).stdout);
    expect(get.values).toEqual([{ base64: bytes.toString('base64') }]);
  });

  it('keeps concurrent blind writes as siblings and resolves them with the read context', async () => {
    await Promise.all([
      cluster.cli(['put', 'cart', 'apples'], { node: 'n1' }),
      cluster.cli(['put', 'cart', 'pears'], { node: 'n2' }),
    ]);
    const read = JSON.parse((await cluster.cli(['get', 'cart', '--json', '--r', 'all'])).stdout);
    expect(read.values.sort()).toEqual(['apples', 'pears']);

    const human = await cluster.cli(['get', 'cart']);
    expect(human.stdout).toContain('2 siblings');

    const resolved = await cluster.cli(['put', 'cart', 'apples+pears', '--context', read.context, '--json'], { node: 'n3' });
    expect(resolved.code).toBe(0);
    const after = JSON.parse((await cluster.cli(['get', 'cart', '--json', '--r', 'all'])).stdout);
    expect(after.values).toEqual(['apples+pears']);
  });

  it('a write with an old context keeps the sibling it did not see', async () => {
    const first = JSON.parse((await cluster.cli(['put', 'doc', 'v1', '--json'])).stdout);
    await cluster.cli(['put', 'doc', 'v2-blind']); // concurrent with what the next writer saw
    await cluster.cli(['put', 'doc', 'v1-edited', '--context', first.context]);
    const after = JSON.parse((await cluster.cli(['get', 'doc', '--json', '--r', 'all'])).stdout);
    expect(after.values.sort()).toEqual(['v1-edited', 'v2-blind']);
  });

  it('shows every node, its partitions and keys in status', async () => {
    const res = await cluster.cli(['status', '--json']);
    expect(res.code).toBe(0);
    const s = JSON.parse(res.stdout);
    expect(s).toMatchObject({ ok: true, node: 'n1', n: 3, partitions: 64, ringEpoch: expect.any(Number) });
    expect(s.nodes.map((n: { id: string }) => n.id)).toEqual(['n1', 'n2', 'n3']);
    expect(s.nodes.reduce((a: number, n: { partitions: number }) => a + n.partitions, 0)).toBe(64);
    for (const n of s.nodes) {
      expect(n.state).toBe('up');
      expect(n.keys).toBeGreaterThanOrEqual(1);
      expect(n.hintsPending).toBe(0);
    }
    const human = await cluster.cli(['status']);
    expect(human.stdout).toContain('n2');
  });

  it('refuses bad input with exit status 2 and a clear reason', async () => {
    const badW = await cluster.cli(['put', 'k', 'v', '--w', 'lots', '--json']);
    expect(badW.code).toBe(2);
    expect(JSON.parse(badW.stdout)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });

    const impossible = await cluster.cli(['put', 'k', 'v', '--w', '4']);
    expect(impossible.code).toBe(2);
    expect(impossible.stderr).toContain('W=4 is impossible');

    const longKey = await cluster.cli(['put', 'k'.repeat(1025), 'v']);
    expect(longKey.code).toBe(2);
    expect(longKey.stderr).toContain('limit is 1024 bytes');

    const badCtx = await cluster.cli(['put', 'k', 'v', '--context', 'not-a-context']);
    expect(badCtx.code).toBe(2);
    expect(badCtx.stderr).toContain('causal context');

    const unknown = await cluster.cli(['frobnicate']);
    expect(unknown.code).toBe(2);
  });

  it('fails with exit status 1 and a JSON error when no node is reachable', async () => {
    const port = await freePort();
    const res = await runCli(['get', 'x', '--node', `ws://127.0.0.1:${port}`, '--json']);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout)).toMatchObject({ ok: false, error: { code: 'UNREACHABLE' } });
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
  });
});
