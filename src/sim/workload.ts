// The simulation's workload: C concurrent clients, each in a closed loop over a bounded key set,
// running read-modify-write cycles, blind writes, deletes (read first, so the delete's context
// names what it removes) and reads. Every write carries a unique value; every operation is
// recorded (see history.ts). Choices come from the run's seeded random source.

import { ErrorCodes, NexusError } from '../core/errors.js';
import type { Op, OpKind, OpResult } from './history.js';
import type { Random } from './random.js';

/** The slice of NexusClient the workload needs (a fake in tests, the real one in runs). */
export interface WorkloadClient {
  put(key: string, value: string, o: { w?: number; context?: string; strict?: boolean; timeoutMs?: number }): Promise<unknown>;
  get(key: string, o: { r?: number; strict?: boolean; timeoutMs?: number }): Promise<{ values: Uint8Array[]; context: string }>;
  del(key: string, o: { w?: number; context?: string; strict?: boolean; timeoutMs?: number }): Promise<void>;
}

/** The shape of a simulated cluster and its workload, shared by both kinds of run. */
export interface SimShape {
  nodes: number;
  n: number;
  clients: number;
  keys: number;
  r: number;
  w: number;
}

export interface WorkloadOptions {
  clients: Array<{ client: WorkloadClient; node: string }>;
  keys: number;
  r: number;
  w: number;
  strict: boolean;
  opTimeoutMs: number;
  /** Milliseconds since the run started. */
  now: () => number;
  /** The fault phase right now ("before", "fault", "heal"), recorded with each op. */
  phase: () => string;
  random: Random;
  /** Pause between one client's operations, ms (0: none). */
  thinkMs?: number;
  onOp?: (op: Op) => void;
}

const MIX: Array<[OpKind, number]> = [
  ['rmw', 0.4],
  ['write', 0.25],
  ['delete', 0.1],
  ['read', 0.25],
];

export class Workload {
  readonly history: Op[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private nextId = 1;

  constructor(private readonly o: WorkloadOptions) {}

  start(): void {
    this.running = true;
    this.loops = this.o.clients.map((c, i) => this.loop(i, c.client, c.node, this.o.random.fork()));
  }

  /** Stops issuing new operations and waits for the ones in progress. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(index: number, client: WorkloadClient, node: string, rnd: Random): Promise<void> {
    let seq = 0;
    while (this.running) {
      const key = `k${rnd.int(this.o.keys)}`;
      let roll = rnd.next();
      const kind = MIX.find(([, p]) => (roll -= p) < 0)?.[0] ?? 'read';
      await this.run(index, client, node, kind, key, `c${index}-${++seq}`);
      if (this.o.thinkMs) await new Promise((r) => setTimeout(r, this.o.thinkMs));
    }
  }

  private async run(index: number, client: WorkloadClient, node: string, kind: OpKind, key: string, value: string): Promise<void> {
    const { r, w, strict, opTimeoutMs: timeoutMs } = this.o;
    const op: Op = { id: this.nextId++, client: index, kind, key, start: this.o.now(), end: 0, node, result: 'ok', phase: this.o.phase(), strict };
    if (kind === 'read' || kind === 'rmw' || kind === 'delete') op.r = r;
    if (kind !== 'read') op.w = w;
    try {
      let context: string | undefined;
      if (kind !== 'write') {
        const got = await client.get(key, { r, strict, timeoutMs });
        op.seen = got.values.map((v) => Buffer.from(v).toString('utf8')).sort();
        context = got.context;
        if (kind !== 'read') op.covers = op.seen;
      }
      if (kind === 'write' || kind === 'rmw') {
        op.value = value;
        await client.put(key, value, { w, strict, timeoutMs, ...(context !== undefined ? { context } : {}) });
      } else if (kind === 'delete') {
        await client.del(key, { w, strict, timeoutMs, ...(context !== undefined ? { context } : {}) });
      }
    } catch (e) {
      const err = NexusError.from(e);
      op.result = classify(err);
      op.error = `${err.code}: ${err.message}`;
    }
    op.end = this.o.now();
    this.history.push(op);
    this.o.onOp?.(op);
  }
}

/** Timeouts and lost connections leave a write's fate unknown; refusals are failures. */
function classify(err: NexusError): OpResult {
  if (err.code === ErrorCodes.TIMEOUT || err.code === ErrorCodes.UNREACHABLE || err.code === ErrorCodes.STOPPING) return 'unknown';
  return 'failed';
}
