// What an update costs against a blind write (issue 6's workload A, issue 2's put bar): on one
// local 3-node cluster (N=3, W=2, durability fsync, the client spreading over all nodes), phases
// alternate between
//   fresh  — puts of keys never written before, no context (what bench:core measures), and
//   update — puts of random existing keys carrying the context of that key's previous write, so
//            each replaces the stored state (what YCSB's updates do, without piling up siblings),
// each at a fixed number of outstanding requests, reporting throughput, latency and the nodes' CPU
// per put. Both kinds run in every pair so that the machine's drift hits them alike.
//
//   npm run bench:updates [-- --duration 5 --pairs 2 --keys 10000 --json]

import { Command } from 'commander';
import { NexusClient } from '../src/client/client.js';
import { LocalCluster } from '../src/sim/local-cluster.js';
import { runClosedLoop, type LoadResult } from '../src/bench/load.js';
import { machineInfo } from '../src/bench/machine.js';
import { CLI_MAIN, commandLine, positive, progress } from './lib/args.js';
import { formatUs } from './lib/report.js';

const W = 2;
const REQUEST_TIMEOUT_MS = 10_000;

interface Options {
  duration: number;
  pairs: number;
  keys: number;
  concurrency: number;
  valueBytes: number;
  json: boolean;
}

function parseArgs(): Options {
  const program = new Command()
    .name('bench:updates')
    .description('puts of fresh keys against updates of existing keys (with their context), alternating, on a local 3-node cluster')
    .option('--duration <sec>', 'measured seconds per phase', positive('--duration', false), 5)
    .option('--pairs <k>', 'fresh/update phase pairs', positive('--pairs', true), 2)
    .option('--keys <k>', 'existing keys the updates choose from (uniformly)', positive('--keys', true), 10_000)
    .option('--concurrency <c>', 'outstanding requests', positive('--concurrency', true), 64)
    .option('--value-bytes <b>', 'value size', positive('--value-bytes', true), 100)
    .option('--json', 'print one JSON document instead of the table', false);
  program.parse();
  return program.opts<Options>();
}

interface Phase {
  kind: 'fresh' | 'update';
  throughput: number;
  p50Us: number;
  p99Us: number;
  serverCores: number | null;
  /** The nodes' CPU per put: server cores ÷ puts per second. */
  cpuUsPerPut: number | null;
  errors: number;
}

function phaseOf(kind: Phase['kind'], r: LoadResult): Phase {
  const cores = r.cpu.servers;
  return {
    kind,
    throughput: Math.round(r.throughput),
    p50Us: r.latencyUs.p50,
    p99Us: r.latencyUs.p99,
    serverCores: cores,
    cpuUsPerPut: cores === null || r.throughput === 0 ? null : Math.round((cores * 1e6) / r.throughput),
    errors: r.errors,
  };
}

async function main(): Promise<void> {
  const o = parseArgs();
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  progress(`${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}; starting a 3-node cluster (N=3, fsync) …`);
  const cluster = await LocalCluster.start({ nodes: 3, n: 3, partitions: 64, durability: 'fsync', mainScript: CLI_MAIN });
  const client = new NexusClient({ nodes: cluster.urls, strategy: 'spread', timeoutMs: REQUEST_TIMEOUT_MS });
  const value = Buffer.alloc(o.valueBytes, 'x');
  const phases: Phase[] = [];
  try {
    progress(`writing ${o.keys.toLocaleString('en-US')} keys …`);
    const contexts = new Array<string>(o.keys);
    let next = 0;
    const writer = async (): Promise<void> => {
      while (next < o.keys) {
        const k = next++;
        contexts[k] = (await client.put(`key${k}`, value, { w: W })).context;
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, writer));
    let seq = 0;
    const fresh = (): Promise<unknown> => client.put(`fresh${++seq}`, value, { w: W });
    const update = async (): Promise<void> => {
      const k = Math.floor(Math.random() * o.keys);
      contexts[k] = (await client.put(`key${k}`, value, { w: W, context: contexts[k]! })).context;
    };
    progress('3 s unrecorded at load (JIT warm-up) …');
    await runClosedLoop(fresh, { concurrency: o.concurrency, durationMs: 3000, warmupMs: 0 });
    for (let pair = 0; pair < o.pairs; pair++) {
      for (const kind of ['fresh', 'update'] as const) {
        const r = await runClosedLoop(kind === 'fresh' ? fresh : update, {
          concurrency: o.concurrency,
          durationMs: o.duration * 1000,
          warmupMs: 1000,
          serverPids: cluster.pids,
        });
        const p = phaseOf(kind, r);
        phases.push(p);
        progress(`${kind}: ${p.throughput.toLocaleString('en-US')} puts/s, p50 ${formatUs(p.p50Us)}, p99 ${formatUs(p.p99Us)}, ${p.cpuUsPerPut ?? '?'} µs of node CPU per put`);
      }
    }
  } finally {
    client.close();
    await cluster.stop();
  }

  const command = commandLine('updates');
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ benchmark: 'updates', command, startedAt, machine, settings: o, phases }, null, 2)}\n`);
    return;
  }
  const lines = [
    '| phase | puts/s | p50 | p99 | node CPU per put | errors |',
    '|---|---:|---:|---:|---:|---:|',
    ...phases.map((p) => `| ${p.kind} | ${p.throughput.toLocaleString('en-US')} | ${formatUs(p.p50Us)} | ${formatUs(p.p99Us)} | ${p.cpuUsPerPut ?? '?'} µs | ${p.errors} |`),
    '',
    `Machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}. 3 local nodes, N=3, W=${W}, fsync; ${o.concurrency} outstanding, ${o.valueBytes}-byte values, updates over ${o.keys.toLocaleString('en-US')} keys; ${o.duration} s per phase after 1 s warm-up.`,
    `Command: \`${command}\` (${startedAt})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:updates failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
