// The anti-entropy benchmark (issue 4, "Performance"), in one run on this machine:
//
//   1. Exchange cost. Two replicas of the same n keys (100-byte values) in a 2-node cluster
//      (N=2, background rounds off). For d = 0, 10, 1000 differing keys — made by writing with
//      W=1 while the other node is down, half on each side: new keys, overwrites and deletes — one
//      `nexus repair` round on n1 compares all 64 partitions with n2 and repairs both ways. We
//      report its payload bytes (keys, hashes, objects: the exchange's own count), the bytes on
//      the peer link (frames, heartbeats included), the time to converge, and bytes ÷ (d × object
//      size); a second round must repair nothing. The base data is written straight into each
//      node's SQLite file through the storage layer (the same code the node runs), which is far
//      quicker than a million puts through the cluster.
//   2. Maintenance cost, alternating with segment hashes kept (1024 segments) and turned off
//      (`--segments 0`): Nexus put throughput on a 3-node cluster (N=3, W=2, fsync, 64
//      outstanding, client spreading over all nodes) — the figure the bar is about — and, more
//      severe, the storage layer alone (64 writers doing the replica's get-then-put on fresh keys,
//      no network), with each durability mode.
//
//   npm run bench:antientropy [-- --sizes 100000,1000000 --diffs 0,10,1000 --json]

import { Command, InvalidArgumentError } from 'commander';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NexusClient } from '../src/client/client.js';
import { emptyObject, encodeObject, update, type VersionedObject } from '../src/core/version.js';
import { Ring } from '../src/ring/index.js';
import { SqliteStorage } from '../src/storage/sqlite.js';
import { CLI_MAIN, commandLine, positive, progress, ROOT } from './lib/args.js';
import { removeDir, trackDir } from '../src/sim/cleanup.js';
import { LocalCluster } from '../src/sim/local-cluster.js';
import { runClosedLoop } from '../src/bench/load.js';
import { machineInfo, sourceVersion } from '../src/bench/machine.js';
import { medianMax } from './lib/stats.js';

const PARTITIONS = 64;
const LOAD_BATCH = 5000;

interface Options {
  sizes: number[];
  diffs: number[];
  valueBytes: number;
  maintenanceSeconds: number;
  maintenanceRounds: number;
  json: boolean;
  out: string;
}

function list(what: string) {
  return (v: string): number[] => {
    const xs = v.split(',').map(Number);
    if (xs.some((x) => !Number.isInteger(x) || x < 0)) throw new InvalidArgumentError(`${what} must be a comma-separated list of whole numbers`);
    return xs;
  };
}

function parseArgs(): Options {
  return new Command()
    .name('bench:antientropy')
    .description('anti-entropy: bytes and time to converge for n keys with d differences, and the put cost of keeping segment hashes')
    .option('--sizes <n,...>', 'keys per replica', list('--sizes'), [100_000, 1_000_000])
    .option('--diffs <d,...>', 'differing keys per measurement', list('--diffs'), [0, 10, 1000])
    .option('--value-bytes <b>', 'value size', positive('--value-bytes', true), 100)
    .option('--maintenance-seconds <s>', 'seconds per maintenance-cost sample (≥ 10 includes a segment checkpoint)', positive('--maintenance-seconds', false), 12)
    .option('--maintenance-rounds <k>', 'on/off sample pairs per durability mode', positive('--maintenance-rounds', true), 3)
    .option('--json', 'print one JSON document on stdout instead of the tables', false)
    .option('--out <dir>', 'folder for the results JSON and markdown', join(ROOT, 'bench', 'results'))
    .showHelpAfterError()
    .parse(process.argv)
    .opts<Options>();
}

/** The value of key i: deterministic, so both replicas get identical objects. */
function valueOf(i: number, bytes: number, salt = ''): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(`${salt}${i}`).digest();
  for (let off = 0; off < bytes; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

const keyOf = (i: number): string => `key${i}`;
const baseObject = (i: number, valueBytes: number): VersionedObject => update(emptyObject(), {}, 'loader~1', i + 1, valueOf(i, valueBytes));

/** Writes n identical objects into a stopped node's data folder, through the storage layer. */
async function load(dir: string, n: number, ring: Ring, valueBytes: number): Promise<void> {
  const storage = SqliteStorage.open({ dir, durability: 'os' });
  try {
    for (let start = 0; start < n; start += LOAD_BATCH) {
      const puts: Promise<void>[] = [];
      for (let i = start; i < Math.min(n, start + LOAD_BATCH); i++) puts.push(storage.put(keyOf(i), ring.partitionOf(keyOf(i)), baseObject(i, valueBytes)));
      await Promise.all(puts);
    }
  } finally {
    await storage.close();
  }
}

interface ExchangeResult {
  n: number;
  d: number;
  payloadBytes: number;
  wireBytes: number;
  ms: number;
  keysRepaired: number;
  exchanges: number;
  /** payload ÷ (d × object size); null for d = 0. */
  overPhysical: number | null;
  perPartitionBytes: number;
  secondRoundRepaired: number;
}

async function peerBytes(c: LocalCluster): Promise<number> {
  const stats = await c.nodeStats();
  return stats.reduce((a, s) => a + ((s.peerBytesSent as number) ?? 0), 0);
}

/**
 * Makes d keys differ between the replicas: half written on n1 while n2 is down, half on n2 while
 * n1 is down; by thirds new keys, overwrites (with the read context) and deletes.
 */
async function makeDifferences(c: LocalCluster, d: number, n: number, round: number, valueBytes: number): Promise<void> {
  const sides: Array<[writer: number, down: number, count: number]> = [
    [0, 1, Math.ceil(d / 2)],
    [1, 0, Math.floor(d / 2)],
  ];
  let j = 0;
  for (const [writer, down, count] of sides) {
    if (count === 0) continue;
    await c.signal(down, 'SIGTERM');
    const client = new NexusClient({ nodes: [c.urls[writer]!], timeoutMs: 10_000 });
    try {
      for (let k = 0; k < count; k++, j++) {
        // Distinct existing keys per round and per difference, spread over the key space.
        const existing = keyOf((round * 7919 + j * 104_729) % n);
        if (j % 3 === 0) await client.put(`new-${round}-${j}`, valueOf(j, valueBytes, `new${round}`), { w: 1 });
        else if (j % 3 === 1) {
          const cur = await client.get(existing, { r: 1 });
          await client.put(existing, valueOf(j, valueBytes, `over${round}`), { w: 1, context: cur.context });
        } else await client.del(existing, { w: 1, r: 1 });
      }
    } finally {
      client.close();
    }
    c.restart(down);
    await c.waitAllUp(60_000);
  }
}

async function exchangeCost(o: Options, n: number): Promise<ExchangeResult[]> {
  progress(`n = ${n.toLocaleString('en-US')}: starting 2 nodes to create their data folders`);
  const cluster = await LocalCluster.start({
    nodes: 2,
    n: 2,
    partitions: PARTITIONS,
    mainScript: CLI_MAIN,
    durability: 'fsync',
    nodeArgs: ['--ae-interval-ms', String(24 * 3600_000)], // only the measured rounds run
  });
  const results: ExchangeResult[] = [];
  try {
    const ring = new Ring({ members: cluster.ids.map((id, i) => ({ id, url: cluster.urls[i]! })), n: 2, partitions: PARTITIONS });
    for (const i of cluster.ids.keys()) await cluster.signal(i, 'SIGTERM');
    for (const id of cluster.ids) {
      const t = Date.now();
      await load(join(cluster.dir, id), n, ring, o.valueBytes);
      progress(`  loaded ${n.toLocaleString('en-US')} keys into ${id} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    for (const i of cluster.ids.keys()) cluster.restart(i);
    await cluster.waitAllUp(120_000);
    const objectBytes = encodeObject(baseObject(0, o.valueBytes)).length + Buffer.byteLength(keyOf(n - 1));
    for (const [round, d] of o.diffs.entries()) {
      if (d > 0) await makeDifferences(cluster, d, n, round, o.valueBytes);
      const client = new NexusClient({ nodes: [cluster.urls[0]!], timeoutMs: 600_000 });
      try {
        const before = await peerBytes(cluster);
        const t0 = performance.now();
        const r = await client.repair();
        const ms = performance.now() - t0;
        const wire = (await peerBytes(cluster)) - before;
        const again = await client.repair();
        const payload = r.bytesSent + r.bytesReceived;
        const res: ExchangeResult = {
          n,
          d,
          payloadBytes: payload,
          wireBytes: wire,
          ms: Math.round(ms),
          keysRepaired: r.keysRepaired,
          exchanges: r.exchanges,
          overPhysical: d > 0 ? Math.round((payload / (d * objectBytes)) * 100) / 100 : null,
          perPartitionBytes: Math.round(payload / Math.max(1, r.exchanges)),
          secondRoundRepaired: again.keysRepaired,
        };
        results.push(res);
        progress(`  d = ${d}: ${payload.toLocaleString('en-US')} B payload, ${wire.toLocaleString('en-US')} B on the link, ${res.ms} ms, ${r.keysRepaired} keys repaired, then ${again.keysRepaired}`);
      } finally {
        client.close();
      }
    }
  } finally {
    await cluster.stop();
  }
  return results;
}

interface MaintenanceResult {
  /** 'cluster': Nexus puts through 3 node processes; otherwise the storage layer alone. */
  layer: 'cluster' | 'storage';
  durability: 'fsync' | 'os';
  withHashes: number[];
  without: number[];
  /** 1 − median(with) ÷ median(without). */
  cost: number;
}

/** Puts per second through the storage layer: 64 writers, get-then-put of fresh keys. */
async function storagePuts(durability: 'fsync' | 'os', segments: number, seconds: number, valueBytes: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-segments-'));
  trackDir(dir);
  const storage = SqliteStorage.open({ dir, durability, segments });
  let next = 0;
  const value = valueOf(0, valueBytes);
  const warmUntil = performance.now() + 500;
  const endAt = warmUntil + seconds * 1000;
  let counted = 0;
  const writer = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const key = `w${next++}`;
      const local = storage.get(key) ?? emptyObject();
      await storage.put(key, next % PARTITIONS, update(local, local.vv, 'bench~1', next, value));
      if (performance.now() >= warmUntil) counted++;
    }
  };
  await Promise.all(Array.from({ length: 64 }, writer));
  await storage.close();
  removeDir(dir);
  return Math.round(counted / seconds);
}

/** Nexus puts per second on a fresh 3-node cluster started with `--segments <segments>`. */
async function clusterPuts(segments: number, seconds: number, valueBytes: number): Promise<number> {
  const cluster = await LocalCluster.start({
    nodes: 3,
    n: 3,
    partitions: PARTITIONS,
    mainScript: CLI_MAIN,
    durability: 'fsync',
    nodeArgs: ['--segments', String(segments)],
  });
  const client = new NexusClient({ nodes: cluster.urls, strategy: 'spread', timeoutMs: 10_000 });
  try {
    const value = valueOf(0, valueBytes);
    const r = await runClosedLoop((i) => client.put(`p${i}`, value, { w: 2 }), {
      concurrency: 64,
      durationMs: seconds * 1000,
      warmupMs: 1000,
      serverPids: cluster.pids,
    });
    if (r.errors > 0) throw new Error(`${r.errors} puts failed: ${r.firstError}`);
    return Math.round(r.throughput);
  } finally {
    client.close();
    await cluster.stop();
  }
}

async function maintenanceCost(o: Options): Promise<MaintenanceResult[]> {
  const out: MaintenanceResult[] = [];
  const variants: Array<[MaintenanceResult['layer'], 'fsync' | 'os']> = [
    ['cluster', 'fsync'],
    ['storage', 'fsync'],
    ['storage', 'os'],
  ];
  for (const [layer, durability] of variants) {
    const withHashes: number[] = [];
    const without: number[] = [];
    for (let r = 0; r < o.maintenanceRounds; r++) {
      // Alternate the order so drift on the machine does not favour one side.
      for (const segments of r % 2 === 0 ? [1024, 0] : [0, 1024]) {
        const puts = layer === 'cluster' ? await clusterPuts(segments, o.maintenanceSeconds, o.valueBytes) : await storagePuts(durability, segments, o.maintenanceSeconds, o.valueBytes);
        (segments === 0 ? without : withHashes).push(puts);
      }
    }
    const cost = 1 - medianMax(withHashes).median / medianMax(without).median;
    out.push({ layer, durability, withHashes, without, cost: Math.round(cost * 1000) / 1000 });
    progress(`maintenance (${layer}, ${durability}): with hashes ${withHashes.join(', ')} puts/s; without ${without.join(', ')}; cost ${(cost * 100).toFixed(1)}%`);
  }
  return out;
}

function markdown(machine: ReturnType<typeof machineInfo>, ex: ExchangeResult[], mt: MaintenanceResult[], command: string): string {
  const kb = (b: number): string => (b >= 10_000 ? `${(b / 1000).toFixed(1)} kB` : `${b} B`);
  const lines = [
    `Measured ${new Date().toISOString()} on ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}: \`${command}\``,
    '',
    '| n | d | payload | on the link | per partition pair | ÷ (d × object) | converged in | keys repaired | next round repairs |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...ex.map((r) =>
      `| ${r.n.toLocaleString('en-US')} | ${r.d} | ${kb(r.payloadBytes)} | ${kb(r.wireBytes)} | ${kb(r.perPartitionBytes)} | ${r.overPhysical ?? '–'} | ${r.ms} ms | ${r.keysRepaired} | ${r.secondRoundRepaired} |`,
    ),
    '',
    '| puts through | durability | puts/s with segment hashes | without | cost |',
    '|---|---|---:|---:|---:|',
    ...mt.map((m) => `| ${m.layer === 'cluster' ? 'Nexus (3 nodes, W=2)' : 'storage layer alone'} | ${m.durability} | ${medianMax(m.withHashes).median.toLocaleString('en-US')} | ${medianMax(m.without).median.toLocaleString('en-US')} | ${(m.cost * 100).toFixed(1)}% |`),
  ];
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const o = parseArgs();
  const machine = machineInfo();
  const command = commandLine('antientropy');
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}`);
  const exchanges: ExchangeResult[] = [];
  for (const n of o.sizes) exchanges.push(...(await exchangeCost(o, n)));
  const maintenance = await maintenanceCost(o);
  const largest = Math.max(...o.sizes);
  const bars = {
    tenDiffsAtLargestUnder1MB: exchanges.filter((r) => r.n === largest && r.d === 10).every((r) => r.wireBytes <= 1_000_000 && r.payloadBytes <= 1_000_000),
    zeroDiffUnder64KiBPerPair: exchanges.filter((r) => r.d === 0).every((r) => r.perPartitionBytes <= 64 * 1024),
    maintenanceAtMost10Percent: maintenance.filter((m) => m.layer === 'cluster').every((m) => m.cost <= 0.1),
    converged: exchanges.every((r) => r.secondRoundRepaired === 0),
  };
  const doc = { machine, source: sourceVersion(ROOT), command, exchanges, maintenance, bars };
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(o.out, `antientropy-${stamp}.json`), JSON.stringify(doc, null, 2));
  const md = markdown(machine, exchanges, maintenance, command);
  writeFileSync(join(o.out, `antientropy-${stamp}.md`), md);
  if (o.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  else process.stdout.write(md + `\nbars: ${JSON.stringify(bars)}\n`);
  if (!bars.converged) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
