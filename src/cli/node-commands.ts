// start / cluster: run one node in the foreground, or a local cluster of separate node processes.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { NexusClient } from '../client/client.js';
import { defaultNodeConfig, DEFAULT_N, DEFAULT_PARTITIONS, parsePeers, type Durability, type NodeConfig } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { NexusNode } from '../node.js';
import { reportError } from './output.js';
import type { Storage } from '../storage/types.js';

interface StartOptions {
  config?: string;
  id?: string;
  port?: string;
  host?: string;
  data?: string;
  peers?: string;
  n?: string;
  partitions?: string;
  secret?: string;
  durability?: string;
  maxValueBytes?: string;
  maxDataBytes?: string;
  phiThreshold?: string;
  heartbeatMs?: string;
  handoffRate?: string;
  hintWindowMs?: string;
  aeIntervalMs?: string;
  tombstoneGraceMs?: string;
  checkSegments?: boolean;
  segments?: string;
}

function int(v: string | number | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${what} must be an integer, got "${v}"`);
  return n;
}

/** Merges a JSON config file (if any) with command-line options; the command line wins. */
export function nodeConfigFrom(o: StartOptions): { cfg: NodeConfig; maxDataBytes: number } {
  let file: Record<string, unknown> = {};
  if (o.config) {
    try {
      file = JSON.parse(readFileSync(o.config, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `cannot read config file ${o.config}: ${(e as Error).message}`);
    }
  }
  const pick = <T>(cli: T | undefined, key: string): T | undefined => cli ?? (file[key] as T | undefined);
  const id = pick(o.id, 'id');
  const port = int(pick<string | number>(o.port, 'port'), '--port');
  const data = pick(o.data, 'data') ?? pick(undefined, 'dataDir');
  const peersSpec = pick(o.peers, 'peers');
  if (!id) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--id is required');
  if (port === undefined) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--port is required');
  if (!data) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--data is required');
  if (!peersSpec) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--peers is required (ID@URL,… including this node)');
  const members = Array.isArray(peersSpec) ? (peersSpec as NodeConfig['cluster']['members']) : parsePeers(String(peersSpec));
  const cfg = defaultNodeConfig({
    id,
    port,
    dataDir: data,
    cluster: {
      members,
      n: int(pick<string | number>(o.n, 'n'), '--n') ?? DEFAULT_N,
      partitions: int(pick<string | number>(o.partitions, 'partitions'), '--partitions') ?? DEFAULT_PARTITIONS,
    },
  });
  const host = pick(o.host, 'host');
  if (host) cfg.host = host;
  cfg.secret = pick(o.secret, 'secret') ?? process.env.NEXUS_SECRET ?? '';
  const durability = pick(o.durability, 'durability');
  if (durability) cfg.durability = durability as Durability;
  const mvb = int(pick<string | number>(o.maxValueBytes, 'maxValueBytes'), '--max-value-bytes');
  if (mvb !== undefined) cfg.maxValueBytes = mvb;
  for (const k of ['maxSiblings', 'requestTimeoutMs', 'defaultR', 'defaultW', 'maxInFlightPerLink', 'maxBufferedBytesPerLink', 'phiThreshold', 'heartbeatMs', 'handoffRatePerSec', 'hintWindowMs', 'antiEntropyIntervalMs', 'tombstoneGraceMs', 'checkSegments', 'segments'] as const)
    if (file[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = file[k];
  const num = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${what} must be a number, got "${v}"`);
    return x;
  };
  cfg.phiThreshold = num(o.phiThreshold, '--phi-threshold') ?? cfg.phiThreshold;
  cfg.heartbeatMs = num(o.heartbeatMs, '--heartbeat-ms') ?? cfg.heartbeatMs;
  cfg.handoffRatePerSec = num(o.handoffRate, '--handoff-rate') ?? cfg.handoffRatePerSec;
  cfg.hintWindowMs = num(o.hintWindowMs, '--hint-window-ms') ?? cfg.hintWindowMs;
  cfg.antiEntropyIntervalMs = num(o.aeIntervalMs, '--ae-interval-ms') ?? cfg.antiEntropyIntervalMs;
  cfg.tombstoneGraceMs = num(o.tombstoneGraceMs, '--tombstone-grace-ms') ?? cfg.tombstoneGraceMs;
  if (o.checkSegments) cfg.checkSegments = true;
  cfg.segments = int(o.segments, '--segments') ?? cfg.segments;
  const maxDataBytes = int(pick<string | number>(o.maxDataBytes, 'maxDataBytes'), '--max-data-bytes') ?? 0;
  return { cfg, maxDataBytes };
}

export function registerNodeCommands(program: Command): void {
  registerStartCommand(program);

  program
    .command('cluster')
    .description('run a local cluster of separate node processes until SIGINT/SIGTERM')
    .option('--nodes <k>', 'number of nodes', '3')
    .option('--n <n>', 'replicas per key', String(DEFAULT_N))
    .option('--partitions <q>', 'partitions, a power of two', String(DEFAULT_PARTITIONS))
    .option('--base-port <port>', 'first node\'s port; the others follow', '7070')
    .option('--data <dir>', 'folder for the nodes\' data folders and logs', '.nexus')
    .option('--secret <secret>', 'cluster secret (default $NEXUS_SECRET or none)')
    .option('--durability <mode>', 'fsync or os', 'fsync')
    .action(async (o: { nodes: string; n: string; partitions: string; basePort: string; data: string; secret?: string; durability: string }) => {
      try {
        await runCluster(o);
      } catch (e) {
        process.exitCode = reportError(e, { json: false });
      }
    });
}

/**
 * `start`: one node in the foreground. `variant` swaps its storage (bench/lib/memory-node.ts runs
 * the shipped node on memory storage with these same options); `name` begins its ready line.
 */
export function registerStartCommand(program: Command, variant: { name: string; storage?: (cfg: NodeConfig) => Storage } = { name: 'node' }): void {
  program
    .command('start')
    .description('run one node in the foreground (stops cleanly on SIGINT/SIGTERM)')
    .option('--config <file>', 'JSON file with the same settings (command-line options win)')
    .option('--id <id>', 'this node\'s id (must be in --peers)')
    .option('--port <port>', 'port to listen on')
    .option('--host <host>', 'address to listen on', undefined)
    .option('--data <dir>', 'data folder (SQLite file inside)')
    .option('--peers <list>', 'every member, this node included: ID@ws://host:port,…')
    .option('--n <n>', `replicas per key (default ${DEFAULT_N})`)
    .option('--partitions <q>', `partitions, a power of two (default ${DEFAULT_PARTITIONS})`)
    .option('--secret <secret>', 'cluster secret (default $NEXUS_SECRET; none for a local dev cluster)')
    .option('--durability <mode>', 'fsync (default: survives power loss) or os (survives a process crash)')
    .option('--max-value-bytes <bytes>', 'largest value accepted (default 1 MiB)')
    .option('--max-data-bytes <bytes>', 'cap on the database size; writes past it fail as "disk full"')
    .option('--phi-threshold <phi>', 'failure-detector suspicion at which a peer is judged down (default 8)')
    .option('--heartbeat-ms <ms>', 'heartbeat interval (default 200)')
    .option('--handoff-rate <hints/s>', 'most hints delivered per second (default 10000)')
    .option('--hint-window-ms <ms>', 'age past which a hint is dropped once a primary holds it (default 3 h)')
    .option('--ae-interval-ms <ms>', 'time between background anti-entropy rounds (default 10000)')
    .option('--tombstone-grace-ms <ms>', 'age after which a tombstone every replica holds is collected (default 6 h; > hint window)')
    .option('--segments <k>', 'anti-entropy segments per partition, a power of two (default 1024; 0 = anti-entropy off, for benchmarks)')
    .option('--check-segments', 'at start, rebuild the anti-entropy segment hashes from the data and correct any that differ')
    .action(async (o: StartOptions) => {
      let node: NexusNode;
      try {
        const { cfg, maxDataBytes } = nodeConfigFrom(o);
        node = await NexusNode.start(cfg, variant.storage ? { storage: variant.storage(cfg) } : { maxDataBytes });
        process.stdout.write(`${variant.name} ${cfg.id} listening on ws://${cfg.host}:${cfg.port} (pid ${process.pid}) ready\n`);
      } catch (e) {
        process.exitCode = reportError(e, { json: false });
        return;
      }
      const shutdown = (): void => {
        node.stop().then(
          () => process.exit(0),
          (e) => {
            process.stderr.write(`error: stop failed: ${(e as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
}

function quoteArg(a: string): string {
  return /^[\w@:/.,=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

async function runCluster(o: { nodes: string; n: string; partitions: string; basePort: string; data: string; secret?: string; durability: string }): Promise<void> {
  const k = int(o.nodes, '--nodes')!;
  const basePort = int(o.basePort, '--base-port')!;
  if (k < 1 || k > 64) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--nodes must be between 1 and 64, got ${k}`);
  const secret = o.secret ?? process.env.NEXUS_SECRET ?? '';
  const ids = Array.from({ length: k }, (_, i) => `n${i + 1}`);
  const urls = ids.map((_, i) => `ws://127.0.0.1:${basePort + i}`);
  const peers = ids.map((id, i) => `${id}@${urls[i]}`).join(',');
  const dataRoot = resolvePath(o.data);
  mkdirSync(dataRoot, { recursive: true });

  const children: ChildProcess[] = [];
  let stopping = false;
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
    if (left === 0) process.exit(code);
    for (const c of children) {
      c.once('exit', () => --left === 0 && process.exit(code));
      c.kill('SIGTERM');
    }
  };
  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));

  for (const [i, id] of ids.entries()) {
    const log = openSync(`${dataRoot}/${id}.log`, 'a');
    const args = [MAIN, 'start', '--id', id, '--port', String(basePort + i), '--data', `${dataRoot}/${id}`, '--peers', peers, '--n', o.n, '--partitions', o.partitions, '--durability', o.durability];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', log], env: { ...process.env, NEXUS_SECRET: secret } });
    children.push(child);
    child.stdout!.on('data', (d: Buffer) => process.stdout.write(d));
    child.once('exit', (code, signal) => {
      if (stopping) return;
      // One node going away is a failure to observe, not a reason to stop the others.
      process.stderr.write(`node ${id} exited (${signal ?? code}); the others keep running. Its log: ${dataRoot}/${id}.log\n`);
      process.stderr.write(`restart it with: npx nexus start ${args.slice(2).map(quoteArg).join(' ')}\n`);
      if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) stopAll(1);
    });
  }

  // Ready when every node answers status and sees every other node up.
  const deadline = Date.now() + 30_000;
  for (const url of urls) {
    const client = new NexusClient({ nodes: [url], secret, timeoutMs: 2000 });
    try {
      for (;;) {
        if (stopping) return;
        try {
          const s = await client.status();
          if (s.nodes.every((n) => n.state === 'up')) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new NexusError(ErrorCodes.UNREACHABLE, `node at ${url} did not see the whole cluster within 30 s; see the logs in ${dataRoot}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      client.close();
    }
  }
  process.stdout.write(`cluster of ${k} nodes (N=${o.n}, ${o.partitions} partitions), data and logs in ${dataRoot}\n`);
  for (const [i, id] of ids.entries()) process.stdout.write(`  ${id}  ${urls[i]}\n`);
  process.stdout.write(`cluster ready — try: npx nexus put hello world; npx nexus get hello  (Ctrl-C stops every node)\n`);
}
