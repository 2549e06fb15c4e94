// Membership and authentication with real processes: a node with the wrong secret or other
// cluster settings cannot join, a client with the wrong secret is refused, and a node refuses to
// start on data made with other settings.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, n: 3, secret: 'right-secret' });
});

afterAll(async () => {
  await cluster?.cleanup();
});

describe('cluster secret', () => {
  it('refuses a client with the wrong secret with "authentication failed"', async () => {
    const res = await cluster.cli(['get', 'x', '--json'], { secret: 'wrong-secret' });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout).error).toMatchObject({ code: 'AUTH_FAILED' });
    expect(res.stderr).toContain('authentication failed');
    const ok = await cluster.cli(['put', 'x', 'y']);
    expect(ok.code).toBe(0);
  });

  it('refuses a node that does not know the secret', async () => {
    await cluster.stop('n3');
    await cluster.waitState('n1', 'n3', 'down');
    await cluster.launch(cluster.node('n3'), { secret: 'wrong-secret' });
    // n1 and n2 dial n3 (the smaller id dials); n3 refuses them and logs why.
    await waitFor('n3 to refuse its peers', () => cluster.node('n3').stderr.includes('authentication failed'));
    expect((await cluster.status('n1')).nodes.find((n) => n.id === 'n3')?.state).toBe('down');
    // The cluster keeps working with the two good nodes.
    expect((await cluster.cli(['put', 'still', 'works', '--w', '2'])).code).toBe(0);
    await cluster.stop('n3');
    await cluster.restart('n3');
    await cluster.waitAllUp();
  });
});

describe('cluster settings', () => {
  it('refuses to start a node on data made with other settings', async () => {
    await cluster.stop('n3');
    const err = await cluster.launch(cluster.node('n3'), { args: ['--partitions', '128'] }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(cluster.node('n3').stderr).toContain('other cluster settings');
  });

  it('refuses links between nodes whose settings differ', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'nexus-other-'));
    try {
      await cluster.launch(cluster.node('n3'), { args: ['--partitions', '128'], dataDir: fresh });
      await waitFor('the fingerprint refusal', () => /fingerprint/.test(cluster.node('n3').stderr));
      expect((await cluster.status('n1')).nodes.find((n) => n.id === 'n3')?.state).toBe('down');
      expect((await cluster.status('n3')).nodes.filter((n) => n.state === 'up').map((n) => n.id)).toEqual(['n3']);
    } finally {
      await cluster.stop('n3');
      rmSync(fresh, { recursive: true, force: true });
    }
    await cluster.restart('n3');
    await cluster.waitAllUp();
  });
});
