// A local Nexus cluster for benchmarks and the simulation: K `nexus start` processes on free ports with their data
// and logs in one temp folder. `start` returns once every node's status shows every node up;
// `stop` stops the nodes (SIGTERM, then SIGKILL) and removes the folder. Nodes that outlive an
// aborted run are killed by the exit hook in cleanup.ts. Single nodes can be signalled (kill -9,
// SIGTERM, SIGSTOP/SIGCONT) and restarted on the same port and data folder, for the failure
// benchmarks and `nexus sim`.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NexusClient } from '../client/client.js';
import type { NodeStatus } from '../transport/protocol.js';
import { isRunning, removeDir, stopChild, trackChild, trackDir } from './cleanup.js';

export interface ClusterOptions {
  nodes: number;
  /** Path of the compiled CLI (default: dist/src/cli/main.js next to this module). */
  mainScript?: string;
  /** Extra environment for every node process. */
  env?: Record<string, string>;
  durability: 'fsync' | 'os';
  n?: number;
  partitions?: number;
  /** Extra node.js flags for every node process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Extra `nexus start` arguments for every node (e.g. --handoff-rate 20000). */
  nodeArgs?: string[];
  readyTimeoutMs?: number;
  /** Keep the data folder (and logs) after stop, e.g. to read the logs. */
  keep?: boolean;
}

/**
 * K distinct ports on 127.0.0.1 that were free a moment ago (each was bound, then released).
 *
 * They are drawn at random from below the kernel's ephemeral range, not by binding port 0: a port
 * from that range can be taken, between our release and the node's listen, as the local end of
 * any outgoing connection on the machine — which made a test fail with EADDRINUSE. Below the
 * range only another listener asking for that very port can collide.
 */
export async function freePorts(k: number): Promise<number[]> {
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralStart()) - 1;
  const held: Array<ReturnType<typeof createServer>> = [];
  try {
    for (let attempts = 0; held.length < k; attempts++) {
      if (attempts >= 200 * k) throw new Error(`found only ${held.length} of ${k} free ports in ${low}–${high}`);
      const port = low + Math.floor(Math.random() * (high - low + 1));
      const s = await new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(undefined));
        srv.listen(port, '127.0.0.1', () => resolve(srv));
      });
      if (s !== undefined) held.push(s); // held until all are found, so no port is drawn twice
    }
    return held.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** The first port of the kernel's ephemeral range (Linux), or the IANA default elsewhere. */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 1024) return first;
  } catch {
    // not Linux: fall through
  }
  return 49_152;
}

export class LocalCluster {
  private stopped = false;
  private readonly ports: number[] = [];
  private options: ClusterOptions | undefined;

  private constructor(
    readonly ids: string[],
    readonly urls: string[],
    readonly dir: string,
    private readonly procs: ChildProcess[],
    private readonly keep: boolean,
  ) {}

  /** The pids of the current node processes (a restarted node's new pid; a stopped node's last). */
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
    cluster.ports.push(...ports);
    cluster.options = o;
    try {
      for (const i of ids.keys()) procs.push(cluster.spawnNode(i, peers));
      await cluster.waitReady(o.readyTimeoutMs ?? 30_000);
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  }

  private spawnNode(i: number, peers = this.ids.map((id, j) => `${id}@${this.urls[j]}`).join(',')): ChildProcess {
    const o = this.options!;
    const id = this.ids[i]!;
    const log = openSync(this.logPath(i), 'a');
    const args = [
      ...(o.nodeFlags ?? []),
      o.mainScript ?? fileURLToPath(new URL('../cli/main.js', import.meta.url)),
      'start',
      '--id', id,
      '--port', String(this.ports[i]),
      '--data', join(this.dir, id),
      '--peers', peers,
      '--durability', o.durability,
      ...(o.n !== undefined ? ['--n', String(o.n)] : []),
      ...(o.partitions !== undefined ? ['--partitions', String(o.partitions)] : []),
      ...(o.nodeArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], env: { ...process.env, NEXUS_SECRET: '', ...(o.env ?? {}) } });
    closeSync(log); // the child holds its own descriptor
    trackChild(child);
    return child;
  }

  /** Index of a node id. */
  indexOf(id: string): number {
    const i = this.ids.indexOf(id);
    if (i < 0) throw new Error(`no node ${id}`);
    return i;
  }

  /** The node's log file (its stdout and stderr, pino JSON lines). */
  logPath(i: number): string {
    return join(this.dir, `${this.ids[i]}.log`);
  }

  /** The current process of node i. */
  pidOf(i: number): number {
    return this.procs[i]!.pid!;
  }

  isRunning(i: number): boolean {
    return isRunning(this.procs[i]!);
  }

  /** Sends a signal to node i. SIGKILL and SIGTERM resolve once the process exited; others at once. */
  async signal(i: number, sig: NodeJS.Signals): Promise<void> {
    const p = this.procs[i]!;
    if (!isRunning(p)) return;
    if (sig !== 'SIGKILL' && sig !== 'SIGTERM') {
      p.kill(sig);
      return;
    }
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      if (sig === 'SIGTERM') p.kill('SIGCONT'); // a stopped process could not act on SIGTERM
      p.kill(sig);
    });
  }

  /**
   * Starts node i again (same port, data folder and log) after it exited. Returns at once, with the
   * time the process was spawned (Date.now()); `waitServing` waits for it to answer.
   */
  restart(i: number): number {
    if (isRunning(this.procs[i]!)) throw new Error(`node ${this.ids[i]} is still running`);
    const spawnedAt = Date.now();
    this.procs[i] = this.spawnNode(i);
    return spawnedAt;
  }

  /** Waits until node i answers status (and, with `allUp`, sees every node up). */
  async waitServing(i: number, timeoutMs = 30_000, allUp = false): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const client = new NexusClient({ nodes: [this.urls[i]!], timeoutMs: 1000 });
    try {
      for (;;) {
        if (!isRunning(this.procs[i]!)) throw new Error(`node ${this.ids[i]} exited: ${this.logTail(i)}`);
        try {
          const s = await client.status();
          if (!allUp || s.nodes.every((n) => n.state === 'up')) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`node ${this.ids[i]} not serving within ${timeoutMs} ms: ${this.logTail(i)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      client.close();
    }
  }

  /** Waits until every running node sees every node up (after a restart). */
  async waitAllUp(timeoutMs = 30_000): Promise<void> {
    for (const i of this.ids.keys()) await this.waitServing(i, timeoutMs, true);
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
    for (const p of this.procs) if (isRunning(p)) p.kill('SIGCONT'); // a SIGSTOPped node could not act on SIGTERM
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
