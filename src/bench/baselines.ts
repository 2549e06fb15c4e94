// The baselines `nexus bench` measures in the same run as Nexus, with the same value size, client
// concurrency and read/update mix:
//   - bareCeiling:  one frame the size of a Nexus put sent to 3 plain `ws` echo servers, done when
//                   2 echoes are back — the network and codec cost of a quorum, nothing more;
//   - fsyncCeiling: the same, each server committing the key to SQLite (synchronous=FULL, group
//                   commit) before echoing;
//   - etcd:         a 3-member etcd cluster on loopback (Debian's etcd-server), through its JSON
//                   gateway over keep-alive HTTP, requests spread over the members;
//   - redis:        a Redis primary with two replicas on loopback (Debian's redis-server), append-
//                   only file fsynced on every write, each SET followed by WAIT 1.
// (The single node with N = 1 is a Nexus point, run by ycsb.ts.) A baseline that cannot run — its
// server is not installed, or it fails to start — is reported as skipped with the reason.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { removeDir, stopChild, trackChild, trackDir } from '../sim/cleanup.js';
import { freePorts } from '../sim/local-cluster.js';
import { Random } from '../sim/random.js';
import { encodeRequest } from '../transport/codec.js';
import { EchoServers, QuorumEchoClient } from './echo.js';
import type { Latency } from './hdr.js';
import { scrambledZipfian, uniform, type KeyChooser } from './keys.js';
import { runClosedLoop, type LoadResult } from './load.js';
import type { CpuPerOp } from './machine.js';

export type BaselineName = 'bareCeiling' | 'fsyncCeiling' | 'etcd' | 'redis';
export const BASELINES: BaselineName[] = ['bareCeiling', 'fsyncCeiling', 'etcd', 'redis'];

export interface BaselineResult {
  what: string;
  throughput: number;
  latency: Omit<Latency, 'count'> & { count: number };
  errors: number;
  firstError?: string;
  /** CPU per operation in the measured window, µs: the baseline's servers and the benchmark process. */
  cpuPerOp?: CpuPerOp;
}

export type Baseline = BaselineResult | { skipped: string };

export interface BaselineOptions {
  clients: number;
  durationSec: number;
  warmupSec: number;
  valueBytes: number;
  records: number;
  /** Fraction of operations that are reads (the rest are updates). */
  readFraction: number;
  distribution: 'zipfian' | 'uniform';
  seed: number;
}

const ECHO_SERVER = join(dirname(fileURLToPath(import.meta.url)), 'echo-server.js');
const TIMEOUT_MS = 10_000;

export async function runBaseline(name: BaselineName, o: BaselineOptions): Promise<Baseline> {
  try {
    switch (name) {
      case 'bareCeiling':
        return await ceiling('echo', o);
      case 'fsyncCeiling':
        return await ceiling('fsync', o);
      case 'etcd':
        return await etcd(o);
      case 'redis':
        return await redis(o);
    }
  } catch (e) {
    return { skipped: `failed: ${(e as Error).message}` };
  }
}

function result(what: string, r: LoadResult): BaselineResult {
  const l = r.latencyUs;
  const out: BaselineResult = { what, throughput: r.throughput, latency: { count: r.ops, p50: l.p50, p95: l.p95, p99: l.p99, p999: l.p999, max: l.max, mean: Math.round(l.mean) }, errors: r.errors };
  if (r.firstError !== undefined) out.firstError = r.firstError;
  if (r.cpuPerOp !== undefined) out.cpuPerOp = r.cpuPerOp;
  return out;
}

function loop(o: BaselineOptions, serverPids: number[], op: (i: number) => Promise<unknown>): Promise<LoadResult> {
  return runClosedLoop(op, { concurrency: o.clients, durationMs: o.durationSec * 1000, warmupMs: o.warmupSec * 1000, serverPids });
}

const pidsOf = (children: ChildProcess[]): number[] => children.map((c) => c.pid).filter((p): p is number => p !== undefined);

/** The workload's mix over the same key choice as the Nexus points: read or update record k. */
function mixer(o: BaselineOptions): () => { read: boolean; key: string } {
  const rnd = new Random(o.seed);
  const keys: KeyChooser = o.distribution === 'zipfian' ? scrambledZipfian(o.records, rnd.fork()) : uniform(o.records, rnd.fork());
  return () => ({ read: rnd.next() < o.readFraction, key: `user${keys.next()}` });
}

async function ceiling(mode: 'echo' | 'fsync', o: BaselineOptions): Promise<Baseline> {
  const servers = await EchoServers.start({ count: 3, mode, script: ECHO_SERVER });
  let client: QuorumEchoClient | undefined;
  try {
    client = await QuorumEchoClient.connect(servers.urls, 2, TIMEOUT_MS);
    const c = client;
    const value = Buffer.alloc(o.valueBytes, 0x61);
    const next = mixer(o);
    let id = 0;
    const r = await loop(o, servers.pids, () => {
      const i = ++id;
      // Reads and updates alike: one frame the size of a put, to 3, done at 2 echoes.
      return c.request(i, encodeRequest(i, { t: 'put', key: next().key, value, w: 2, timeoutMs: TIMEOUT_MS }, TIMEOUT_MS));
    });
    return result(mode === 'echo' ? '3 ws echo servers, wait for 2' : '3 ws echo servers committing to SQLite (synchronous=FULL), wait for 2', r);
  } finally {
    client?.close();
    await servers.stop();
  }
}

/** Starts `cmd` and resolves once `ready()` does (polled), or rejects with its stderr. */
async function startServers(procs: Array<{ cmd: string; args: string[] }>, ready: () => Promise<boolean>, what: string): Promise<ChildProcess[]> {
  const children: ChildProcess[] = [];
  const errs: string[] = [];
  for (const p of procs) {
    const child = spawn(p.cmd, p.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    child.stderr!.on('data', (d: Buffer) => {
      errs.push(d.toString());
      if (errs.length > 20) errs.shift();
    });
    children.push(child);
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    const exited = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (exited) throw new Error(`${what} exited at start: ${errs.join('').slice(-400)}`);
    if (await ready().catch(() => false)) return children;
    if (Date.now() > deadline) {
      await Promise.all(children.map((c) => stopChild(c)));
      throw new Error(`${what} not ready within 30 s: ${errs.join('').slice(-400)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function installed(cmd: string, pkg: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return found.status === 0 ? null : `${cmd} is not installed (Debian: apt-get install ${pkg})`;
}

async function etcd(o: BaselineOptions): Promise<Baseline> {
  const missing = installed('etcd', 'etcd-server');
  if (missing) return { skipped: missing };
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-etcd-'));
  trackDir(dir);
  const [c1, c2, c3, p1, p2, p3] = await freePorts(6);
  const clientPorts = [c1!, c2!, c3!];
  const peerPorts = [p1!, p2!, p3!];
  const initial = peerPorts.map((p, i) => `e${i + 1}=http://127.0.0.1:${p}`).join(',');
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients });
  const post = (port: number, path: string, body: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, timeout: TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`etcd answered ${res.statusCode}: ${text.slice(0, 200)}`));
          else resolve(JSON.parse(text));
        });
      });
      req.on('timeout', () => req.destroy(new Error('etcd request timed out')));
      req.on('error', reject);
      req.end(data);
    });
  let children: ChildProcess[] = [];
  try {
    children = await startServers(
      clientPorts.map((port, i) => ({
        cmd: 'etcd',
        args: [
          '--name', `e${i + 1}`,
          '--data-dir', join(dir, `e${i + 1}`),
          '--listen-client-urls', `http://127.0.0.1:${port}`,
          '--advertise-client-urls', `http://127.0.0.1:${port}`,
          '--listen-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
          '--initial-cluster', initial,
          '--initial-cluster-state', 'new',
          '--initial-cluster-token', 'nexus-bench',
          '--log-level', 'error',
        ],
      })),
      async () => {
        // Ready once every member serves a linearizable write.
        for (const port of clientPorts) await post(port, '/v3/kv/put', { key: b64('ready'), value: b64('1') });
        return true;
      },
      'etcd',
    );
    const value = b64('a'.repeat(o.valueBytes));
    const next = mixer(o);
    const r = await loop(o, pidsOf(children), (i) => {
      const port = clientPorts[i % clientPorts.length]!;
      const { read, key } = next();
      return read ? post(port, '/v3/kv/range', { key: b64(key) }) : post(port, '/v3/kv/put', { key: b64(key), value });
    });
    return result('3-member etcd cluster (linearizable reads, fsync), JSON gateway, requests spread over members', r);
  } finally {
    agent.destroy();
    await Promise.all(children.map((c) => stopChild(c)));
    removeDir(dir);
  }
}

async function redis(o: BaselineOptions): Promise<Baseline> {
  const missing = installed('redis-server', 'redis-server');
  if (missing) return { skipped: missing };
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-redis-'));
  trackDir(dir);
  const ports = await freePorts(3);
  const args = (port: number, i: number): string[] => {
    const d = join(dir, `r${i + 1}`);
    mkdirSync(d, { recursive: true });
    return ['--port', String(port), '--bind', '127.0.0.1', '--dir', d, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no', ...(i > 0 ? ['--replicaof', '127.0.0.1', String(ports[0])] : [])];
  };
  let children: ChildProcess[] = [];
  const conns: Redis[] = [];
  try {
    const probe = new Redis({ port: ports[0]!, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    conns.push(probe);
    children = await startServers(
      ports.map((port, i) => ({ cmd: 'redis-server', args: args(port, i) })),
      async () => {
        if (probe.status !== 'ready') await probe.connect().catch(() => {});
        const info = await probe.info('replication');
        return /connected_slaves:2/.test(info) && (info.match(/state=online/g) ?? []).length === 2;
      },
      'redis',
    );
    // One connection per client: WAIT blocks its connection until a replica has the write.
    for (let i = 0; i < o.clients; i++) {
      const c = new Redis({ port: ports[0]!, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      conns.push(c);
    }
    const value = 'a'.repeat(o.valueBytes);
    const next = mixer(o);
    const free = conns.slice(1);
    const r = await loop(o, pidsOf(children), async () => {
      const c = free.pop()!; // as many connections as clients: one is always free
      try {
        const { read, key } = next();
        if (read) return await c.get(key);
        await c.set(key, value);
        const acked = await c.wait(1, TIMEOUT_MS);
        if (acked < 1) throw new Error('WAIT 1 timed out: no replica acknowledged');
        return acked;
      } finally {
        free.push(c);
      }
    });
    return result('Redis primary + 2 replicas, appendfsync always, WAIT 1 after each SET, reads from the primary', r);
  } finally {
    for (const c of conns) c.disconnect();
    await Promise.all(children.map((c) => stopChild(c)));
    removeDir(dir);
  }
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
