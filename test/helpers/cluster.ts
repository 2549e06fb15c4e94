// A real cluster for integration tests: separate node processes (the built CLI), free loopback
// ports, SQLite in a temporary folder. Everything waits on conditions, never on fixed sleeps, and
// cleanup() kills every process and removes the folder.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NexusClient, type ClientOptions } from '../../src/client/client.js';
import { Ring } from '../../src/ring/index.js';
import { freePorts } from '../../src/sim/local-cluster.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** One node's entry in a status answer. */
type NodeStatusEntry = Awaited<ReturnType<NexusClient['status']>>['nodes'][number];
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const BIN = join(ROOT, 'bin/nexus');

/** A port on 127.0.0.1 that was free a moment ago (see freePorts: not from the ephemeral range). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface NodeProc {
  id: string;
  port: number;
  url: string;
  dataDir: string;
  proc: ChildProcess | null;
  stdout: string;
  stderr: string;
  /** Extra `nexus start` arguments for this node. */
  args: string[];
}

export interface ClusterOptions {
  nodes?: number;
  n?: number;
  partitions?: number;
  secret?: string;
  /** Extra `nexus start` arguments for every node. */
  args?: string[];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestCluster {
  readonly nodes: NodeProc[] = [];
  readonly dir: string;
  private readonly clients: NexusClient[] = [];

  private constructor(readonly opts: Required<Omit<ClusterOptions, 'args'>> & { args: string[] }) {
    this.dir = mkdtempSync(join(tmpdir(), 'nexus-it-'));
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster({ nodes: 3, n: 3, partitions: 64, secret: '', args: [], ...opts });
    const ports = await freePorts(c.opts.nodes); // one draw: no port twice
    for (let i = 0; i < c.opts.nodes; i++) {
      const port = ports[i]!;
      const id = `n${i + 1}`;
      c.nodes.push({ id, port, url: `ws://127.0.0.1:${port}`, dataDir: join(c.dir, id), proc: null, stdout: '', stderr: '', args: [] });
    }
    try {
      await Promise.all(c.nodes.map((n) => c.launch(n)));
      await c.waitAllUp();
    } catch (e) {
      await c.cleanup();
      throw e;
    }
    return c;
  }

  get peers(): string {
    return this.nodes.map((n) => `${n.id}@${n.url}`).join(',');
  }

  /** The ring every node computes from these settings. */
  ring(): Ring {
    return new Ring({ members: this.nodes.map((n) => ({ id: n.id, url: n.url })), partitions: this.opts.partitions, n: this.opts.n });
  }

  /** A key's preference list: its N primaries, then the stand-ins in order. */
  preference(key: string): { primaries: string[]; fallbacks: string[] } {
    const ring = this.ring();
    const pref = ring.preferenceList(ring.partitionOf(key)).map((e) => e.node);
    return { primaries: pref.slice(0, this.opts.n), fallbacks: pref.slice(this.opts.n) };
  }

  /** Each running node's own entry in its own status, by node id. */
  async ownStatus(): Promise<Record<string, NodeStatusEntry>> {
    const out: Record<string, NodeStatusEntry> = {};
    for (const n of this.nodes.filter((x) => x.proc)) {
      const s = await this.status(n.id);
      out[n.id] = s.nodes.find((x) => x.id === n.id)!;
    }
    return out;
  }

  /** Live keys each running node stores, from each node's own status. */
  async keysHeld(): Promise<Record<string, number>> {
    const own = await this.ownStatus();
    return Object.fromEntries(Object.entries(own).map(([id, e]) => [id, e.keys ?? -1]));
  }

  /** Hints held by each running node, from each node's own status. */
  async hintsHeld(): Promise<Record<string, number>> {
    const own = await this.ownStatus();
    return Object.fromEntries(Object.entries(own).map(([id, e]) => [id, e.hintsPending]));
  }

  node(id: string): NodeProc {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts a node process and waits for its "ready" line. `override` replaces settings for this start only. */
  async launch(n: NodeProc, override: { secret?: string; args?: string[]; dataDir?: string } = {}): Promise<void> {
    const args = [
      MAIN, 'start', '--id', n.id, '--port', String(n.port), '--data', override.dataDir ?? n.dataDir, '--peers', this.peers,
      '--n', String(this.opts.n), '--partitions', String(this.opts.partitions), ...this.opts.args, ...n.args, ...(override.args ?? []),
    ];
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NEXUS_SECRET: override.secret ?? this.opts.secret, NEXUS_LOG_LEVEL: 'info' },
    });
    n.proc = proc;
    n.stdout = '';
    n.stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (n.stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (n.stderr += d.toString()));
    await new Promise<void>((res, rej) => {
      const onExit = (code: number | null): void => rej(new Error(`node ${n.id} exited (${code}) before ready: ${n.stderr.slice(-500)}`));
      proc.once('exit', onExit);
      const check = (): void => {
        if (n.stdout.includes('ready')) {
          proc.off('exit', onExit);
          proc.stdout!.off('data', check);
          res();
        }
      };
      proc.stdout!.on('data', check);
    });
  }

  /** Every running node sees every other running node up. */
  async waitAllUp(timeoutMs = 20_000): Promise<void> {
    const running = this.nodes.filter((n) => n.proc);
    await waitFor(
      'every node to see the others up',
      async () => {
        for (const n of running) {
          const s = await this.status(n.id);
          for (const other of running) if (s.nodes.find((x) => x.id === other.id)?.state !== 'up') return false;
        }
        return true;
      },
      timeoutMs,
    );
  }

  /** Waits until `observer` sees `id` in the given state. */
  async waitState(observer: string, id: string, state: 'up' | 'down', timeoutMs = 20_000): Promise<void> {
    await waitFor(`${observer} to see ${id} ${state}`, async () => {
      const s = await this.status(observer);
      return s.nodes.find((x) => x.id === id)?.state === state;
    }, timeoutMs);
  }

  /** `status` as one node answers it (a short-lived client). */
  async status(id: string): Promise<Awaited<ReturnType<NexusClient['status']>>> {
    const c = new NexusClient({ nodes: [this.node(id).url], secret: this.opts.secret, timeoutMs: 3000 });
    try {
      return await c.status();
    } finally {
      c.close();
    }
  }

  /** A client for the given nodes (default all, failing over in order); closed by cleanup(). */
  client(ids?: string[], opts: Partial<ClientOptions> = {}): NexusClient {
    const urls = (ids ?? this.nodes.map((n) => n.id)).map((id) => this.node(id).url);
    const c = new NexusClient({ nodes: urls, secret: this.opts.secret, timeoutMs: 5000, ...opts });
    this.clients.push(c);
    return c;
  }

  /** Graceful stop (SIGTERM) and wait for exit. */
  async stop(id: string): Promise<void> {
    await this.signal(id, 'SIGTERM');
  }

  /** kill -9 and wait for exit. */
  async kill(id: string): Promise<void> {
    await this.signal(id, 'SIGKILL');
  }

  async restart(id: string): Promise<void> {
    await this.launch(this.node(id));
  }

  private async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const n = this.node(id);
    const p = n.proc;
    if (!p) return;
    n.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((res) => {
      p.once('exit', () => res());
      p.kill(sig);
    });
  }

  /** Runs the real `nexus` binary; `--node` defaults to the first node. */
  cli(args: string[], opts: { input?: string | Buffer; node?: string; secret?: string } = {}): Promise<CliResult> {
    const nodeUrl = this.node(opts.node ?? this.nodes[0]!.id).url;
    return runCli([...args, '--node', nodeUrl], { ...opts, secret: opts.secret ?? this.opts.secret });
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.all(this.nodes.map((n) => this.kill(n.id)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function runCli(args: string[], opts: { input?: string | Buffer; secret?: string } = {}): Promise<CliResult> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NEXUS_SECRET: opts.secret ?? '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => res({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.input ?? '');
  });
}
