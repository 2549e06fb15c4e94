// The baselines' two halves: `EchoServers` starts K echo-server processes (plain or fsync), and
// `QuorumEchoClient` sends one frame to all of them and completes when `need` echoes came back —
// the network and codec work of a quorum request with nothing of Nexus in between.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { decode } from '../transport/codec.js';
import { removeDir, stopChild, trackChild, trackDir } from '../sim/cleanup.js';

export interface EchoServersOptions {
  count: number;
  mode: 'echo' | 'fsync';
  /** Path of the compiled echo-server.js. */
  script: string;
  /** Extra node.js flags for every server process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  startTimeoutMs?: number;
}

export class EchoServers {
  /** Each server's last stderr lines, for start-up errors. */
  private readonly stderr: string[][] = [];

  private constructor(
    readonly urls: string[],
    private readonly procs: ChildProcess[],
    private readonly dir: string,
  ) {}

  get pids(): number[] {
    return this.procs.map((p) => p.pid!).filter((p) => p !== undefined);
  }

  static async start(o: EchoServersOptions): Promise<EchoServers> {
    const dir = mkdtempSync(join(tmpdir(), `nexus-bench-${o.mode}-`));
    trackDir(dir);
    const procs: ChildProcess[] = [];
    const servers = new EchoServers([], procs, dir);
    try {
      const ports = await Promise.all(
        Array.from({ length: o.count }, (_, i) => {
          const child = spawn(process.execPath, [...(o.nodeFlags ?? []), o.script, '--mode', o.mode, '--dir', join(dir, `s${i + 1}`)], {
            stdio: ['pipe', 'pipe', 'pipe'],
          });
          trackChild(child);
          procs.push(child);
          const lines: string[] = [];
          servers.stderr.push(lines);
          createInterface({ input: child.stderr! }).on('line', (l) => {
            lines.push(l);
            if (lines.length > 50) lines.shift();
          });
          return waitForPort(child, lines, o.startTimeoutMs ?? 10_000);
        }),
      );
      servers.urls.push(...ports.map((p) => `ws://127.0.0.1:${p}`));
      return servers;
    } catch (e) {
      await servers.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopChild(p)));
    removeDir(this.dir);
  }
}

function waitForPort(child: ChildProcess, stderrLines: string[], timeoutMs: number): Promise<number> {
  const stderrText = (): string => stderrLines.join(' | ');
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo server did not start within ${timeoutMs} ms: ${stderrText()}`)), timeoutMs);
    // readline keeps draining stdout after start-up too, so the child can never block on it.
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const m = /^listening (\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`echo server exited (${signal ?? code}) before listening: ${stderrText()}`));
    });
  });
}

interface Pending {
  left: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface EchoServerStats {
  writes: number;
  commits: number;
}

export class QuorumEchoClient {
  private readonly pending = new Map<number, Pending>();
  private statsWaiters: Array<(s: EchoServerStats) => void> = [];

  private constructor(
    private readonly sockets: WebSocket[],
    private readonly need: number,
    private readonly timeoutMs: number,
  ) {
    for (const ws of sockets) {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) this.receive(data);
        else this.statsWaiters.shift()?.(JSON.parse(data.toString()) as EchoServerStats);
      });
      ws.on('close', () => this.failAll(new Error('echo server connection closed')));
      ws.on('error', () => {});
    }
  }

  static async connect(urls: string[], need: number, timeoutMs = 10_000): Promise<QuorumEchoClient> {
    const sockets = await Promise.all(
      urls.map(
        (url) =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 16 << 20 });
            ws.binaryType = 'nodebuffer';
            ws.once('open', () => resolve(ws));
            ws.once('error', reject);
          }),
      ),
    );
    return new QuorumEchoClient(sockets, need, timeoutMs);
  }

  /** Sends `frame` (whose request id is `id`) to every server; resolves after `need` echoes. */
  request(id: number, frame: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no quorum of echoes within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { left: this.need, resolve, reject, timer });
      for (const ws of this.sockets) ws.send(frame, { binary: true });
    });
  }

  /** The fsync servers' rows written and transactions committed so far, summed over the servers. */
  async stats(): Promise<EchoServerStats> {
    const all = await Promise.all(
      this.sockets.map((ws) => {
        const p = new Promise<EchoServerStats>((resolve) => this.statsWaiters.push(resolve));
        ws.send('stats');
        return p;
      }),
    );
    return all.reduce((a, b) => ({ writes: a.writes + b.writes, commits: a.commits + b.commits }), { writes: 0, commits: 0 });
  }

  close(): void {
    for (const ws of this.sockets) ws.close();
    this.failAll(new Error('client closed'));
  }

  private receive(data: Buffer): void {
    // Decoded like any reply a Nexus client reads, to find its request id.
    const frame = decode(data) as [number, number];
    const p = this.pending.get(frame[1]);
    if (!p) return; // the echoes beyond the quorum
    if (--p.left > 0) return;
    this.pending.delete(frame[1]);
    clearTimeout(p.timer);
    p.resolve();
  }

  private failAll(e: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(e);
    }
  }
}
