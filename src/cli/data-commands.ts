// put / get / del / status: thin commands over the client library.

import type { Command } from 'commander';
import { NexusClient } from '../client/client.js';
import { isNodeUrl, type QuorumSpec } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { printJson, reportError, valueForJson, valueForPeople, type OutputMode } from './output.js';

interface Common {
  node?: string;
  secret?: string;
  json?: boolean;
  timeout?: string;
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--node <urls>', 'node URL(s), comma-separated, tried in order (default $NEXUS_NODE or ws://127.0.0.1:7070)')
    .option('--secret <secret>', 'cluster secret (default $NEXUS_SECRET)')
    .option('--json', 'print one JSON document on stdout')
    .option('--timeout <ms>', 'request deadline in milliseconds', '5000');
}

export function clientFrom(o: Common): NexusClient {
  const nodes = (o.node ?? process.env.NEXUS_NODE ?? 'ws://127.0.0.1:7070')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const u of nodes)
    if (!isNodeUrl(u)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--node "${u}" is not a ws:// or wss:// URL`);
  return new NexusClient({ nodes, secret: o.secret ?? process.env.NEXUS_SECRET ?? '', timeoutMs: timeoutOf(o) });
}

function timeoutOf(o: Common): number {
  const t = Number(o.timeout ?? '5000');
  if (!Number.isFinite(t) || t <= 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--timeout must be a positive number of milliseconds, got "${o.timeout}"`);
  return t;
}

/** R/W as given on the command line: a number or one/quorum/all; the node checks it against N. */
function quorumArg(v: string | undefined, what: string): QuorumSpec | undefined {
  if (v === undefined) return undefined;
  if (v === 'one' || v === 'quorum' || v === 'all') return v;
  if (/^\d+$/.test(v) && Number(v) >= 1) return Number(v);
  throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--${what} must be a positive number or one, quorum, all; got "${v}"`);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Runs a command body with the CLI's error and exit-status conventions. */
async function run(o: Common, body: (mode: OutputMode) => Promise<void>): Promise<void> {
  const mode = { json: Boolean(o.json) };
  try {
    await body(mode);
  } catch (e) {
    process.exitCode = reportError(e, mode);
  }
}

export function registerDataCommands(program: Command): void {
  addCommonOptions(
    program
      .command('put <key> <value>')
      .description('write a value ("-" reads it from stdin); without --context the write is blind')
      .option('--w <w>', 'write quorum: number, one, quorum or all')
      .option('--context <ctx>', 'causal context from a get: supersede exactly what it saw')
      .option('--strict', 'count only primary replicas'),
  ).action(async (key: string, value: string, o: Common & { w?: string; context?: string; strict?: boolean }) =>
    run(o, async (mode) => {
      const w = quorumArg(o.w, 'w');
      const bytes = value === '-' ? await readStdin() : Buffer.from(value, 'utf8');
      const client = clientFrom(o);
      try {
        const res = await client.put(key, bytes, { ...(w !== undefined ? { w } : {}), ...(o.context ? { context: o.context } : {}), strict: Boolean(o.strict) });
        if (mode.json) printJson({ ok: true, context: res.context });
        else process.stdout.write(`ok\ncontext: ${res.context}\n`);
      } finally {
        client.close();
      }
    }),
  );

  addCommonOptions(
    program
      .command('get <key>')
      .description('read every sibling of a key and its causal context')
      .option('--r <r>', 'read quorum: number, one, quorum or all')
      .option('--strict', 'count only primary replicas'),
  ).action(async (key: string, o: Common & { r?: string; strict?: boolean }) =>
    run(o, async (mode) => {
      const r = quorumArg(o.r, 'r');
      const client = clientFrom(o);
      try {
        const res = await client.get(key, { ...(r !== undefined ? { r } : {}), strict: Boolean(o.strict) });
        if (mode.json) printJson({ ok: true, found: res.found, values: res.values.map(valueForJson), context: res.context });
        else if (!res.found) process.stdout.write(`(not found)\n`);
        else if (res.values.length === 1) process.stdout.write(`${valueForPeople(res.values[0]!)}\ncontext: ${res.context}\n`);
        else {
          process.stdout.write(`${res.values.length} siblings (write with --context to resolve):\n`);
          res.values.forEach((v, i) => process.stdout.write(`  [${i + 1}] ${valueForPeople(v)}\n`));
          process.stdout.write(`context: ${res.context}\n`);
        }
      } finally {
        client.close();
      }
    }),
  );

  addCommonOptions(
    program
      .command('del <key>')
      .description('delete; without --context, reads first and deletes exactly the siblings it saw')
      .option('--w <w>', 'write quorum: number, one, quorum or all')
      .option('--context <ctx>', 'causal context from a get'),
  ).action(async (key: string, o: Common & { w?: string; context?: string }) =>
    run(o, async (mode) => {
      const w = quorumArg(o.w, 'w');
      const client = clientFrom(o);
      try {
        await client.del(key, { ...(w !== undefined ? { w } : {}), ...(o.context ? { context: o.context } : {}) });
        if (mode.json) printJson({ ok: true });
        else process.stdout.write('ok\n');
      } finally {
        client.close();
      }
    }),
  );

  addCommonOptions(
    program
      .command('repair')
      .description('run an anti-entropy round on the answering node now, and wait for it')
      .option('--partition <p>', 'only this partition'),
  ).action(async (o: Common & { partition?: string }) =>
    run(o, async (mode) => {
      let partition: number | undefined;
      if (o.partition !== undefined) {
        if (!/^\d+$/.test(o.partition)) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `--partition must be a partition number, got "${o.partition}"`);
        partition = Number(o.partition);
      }
      const client = clientFrom(o);
      try {
        const r = await client.repair(partition);
        if (mode.json) return printJson({ ok: true, ...r });
        process.stdout.write(
          `${r.node}: ${r.exchanges} exchanges, ${r.segmentsCompared} segments compared, ${r.keysRepaired} keys repaired, ${r.bytesSent} bytes sent, ${r.bytesReceived} received\n`,
        );
      } finally {
        client.close();
      }
    }),
  );

  addCommonOptions(program.command('status').description('the cluster as the answering node sees it')).action(async (o: Common) =>
    run(o, async (mode) => {
      const client = clientFrom(o);
      try {
        const s = await client.status();
        if (mode.json) return printJson({ ok: true, ...s });
        process.stdout.write(`cluster seen by ${s.node}: N=${s.n}, ${s.partitions} partitions, ring epoch ${s.ringEpoch}\n`);
        for (const n of s.nodes) {
          const since = typeof n.since === 'string' ? ` since ${n.since.slice(11, 19)}` : '';
          const handoff = Array.isArray(n.handoffInProgress) && n.handoffInProgress.length > 0 ? `  handing off to ${n.handoffInProgress.join(',')}` : '';
          process.stdout.write(
            `  ${n.id.padEnd(8)} ${(n.state + since).padEnd(20)} ${n.url.padEnd(24)} pid ${String(n.pid ?? '?').padEnd(7)} partitions ${String(n.partitions).padStart(4)}  keys ${String(n.keys ?? '?').padStart(8)}  hints held ${n.hintsPending}${handoff}\n`,
          );
          if (typeof n.storageDegraded === 'string') process.stdout.write(`           storage degraded: ${n.storageDegraded}\n`);
        }
      } finally {
        client.close();
      }
    }),
  );
}
