// A local Nexus cluster for benchmarks: K `nexus start` processes on free ports with their data
// and logs in one temp folder. `start` returns once every node's status shows every node up;
// `stop` stops the nodes (SIGTERM, then SIGKILL) and removes the folder. Nodes that outlive an
// aborted run are killed by the exit hook in cleanup.ts.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NexusClient } from '../../src/client/client.js';
import type { NodeStatus } from '../../src/transport/protocol.js';
import { isRunning, removeDir, stopChild, trackChild, trackDir } from './cleanup.js';

export interface ClusterOptions {
  nodes: number;
  /** Path of the compiled CLI (dist/src/cli/main.js). */
  mainScript: string;
  durability: 'fsync' | 'os';
  n?: number;
  partitions?: number;
  /** Extra node.js flags for every node process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  /** Keep the data folder (and logs) after stop, e.g. to read the logs. */
  keep?: boolean;
}

/** Ports that were free a moment ago: bind port 0 on 127.0.0.1 K times at once, then release. */
export async function freePorts(k: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: k },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export class LocalCluster {
  private stopped = false;

  private constructor(
    readonly ids: string[],
    readonly urls: string[],
    readonly dir: string,
    private readonly procs: ChildProcess[],
    private readonly keep: boolean,
  ) {}

  get pids(): number[] {
    return this.procs.map((p) => p.pid!).filter((p) => p !== undefined);
  }

  static async start(o: ClusterOptions): Promise<LocalCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-cluster-'));
    if (!o.keep) trackDir(dir);
    const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
    const ports = await freePorts(o.nodes);
    const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
    const peers = ids.map((id, i) => `${id}@${urls[i]}`).join(',');
    const procs: ChildProcess[] = [];
    const cluster = new LocalCluster(ids, urls, dir, procs, o.keep ?? false);
    try {
      for (const [i, id] of ids.entries()) {
        const log = openSync(join(dir, `${id}.log`), 'a');
        const args = [
          ...(o.nodeFlags ?? []),
          o.mainScript,
          'start',
          '--id', id,
          '--port', String(ports[i]),
          '--data', join(dir, id),
          '--peers', peers,
          '--durability', o.durability,
          ...(o.n !== undefined ? ['--n', String(o.n)] : []),
          ...(o.partitions !== undefined ? ['--partitions', String(o.partitions)] : []),
        ];
        const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], env: { ...process.env, NEXUS_SECRET: '' } });
        closeSync(log); // the child holds its own descriptor
        trackChild(child);
        procs.push(child);
      }
      await cluster.waitReady(o.readyTimeoutMs ?? 30_000);
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  }

  /** Each node's own figures (commits, writes, coordinated puts…) from one node's status. */
  async nodeStats(): Promise<NodeStatus[]> {
    const client = new NexusClient({ nodes: [this.urls[0]!], timeoutMs: 5000 });
    try {
      return (await client.status()).nodes;
    } finally {
      client.close();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.procs.map((p) => stopChild(p, 10_000)));
    if (!this.keep) removeDir(this.dir);
  }

  /** Polls every node's status until each sees all nodes up; fails fast if a node exits. */
  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const [i, url] of this.urls.entries()) {
      const client = new NexusClient({ nodes: [url], timeoutMs: 1000 });
      try {
        for (;;) {
          const dead = this.procs.findIndex((p) => !isRunning(p));
          if (dead >= 0) throw new Error(`node ${this.ids[dead]} exited during start-up: ${this.logTail(dead)}`);
          try {
            const s = await client.status();
            if (s.nodes.length === this.urls.length && s.nodes.every((n) => n.state === 'up')) break;
          } catch {
            // not listening yet
          }
          if (Date.now() > deadline) throw new Error(`node ${this.ids[i]} did not see the whole cluster within ${timeoutMs} ms: ${this.logTail(i)}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      } finally {
        client.close();
      }
    }
  }

  private logTail(i: number): string {
    try {
      return readFileSync(join(this.dir, `${this.ids[i]}.log`), 'utf8').trim().split('\n').slice(-5).join(' | ');
    } catch {
      return '(no log)';
    }
  }
}
