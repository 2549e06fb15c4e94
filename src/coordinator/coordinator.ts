// The async shell around the quorum cores: routes a write to a primary replica of its key (which
// issues the dot), fans writes and reads out to the key's replicas, answers after W acks or R
// replies, and repairs stale replicas after a read. Every request runs against a deadline.

import type { Clock } from '../core/clock.js';
import { MAX_KEY_BYTES, resolveQuorum, type NodeConfig } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  decodeContext,
  decodeObject,
  encodeContext,
  encodeObject,
  isDeleted,
  joinVV,
  liveValues,
  type VersionedObject,
} from '../core/version.js';
import type { Ring } from '../ring/index.js';
import type { Replica } from '../replica/replica.js';
import type { GetRequest, PutRequest, Replies } from '../transport/protocol.js';
import type { Transport } from '../transport/types.js';
import { GetQuorum, PutQuorum } from './quorum.js';

export interface CoordinatorDeps {
  self: string;
  cfg: NodeConfig;
  ring: Ring;
  transport: Transport;
  replica: Replica;
  clock: Clock;
  log: Logger;
}

export interface CoordinatorStats {
  puts: number;
  gets: number;
  forwarded: number;
  readRepairs: number;
}

/** Refuses keys the data model does not allow, naming the limit. */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'key must be a non-empty string');
  if (!key.isWellFormed()) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'key must be valid UTF-8 (it contains a lone surrogate)');
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) throw new NexusError(ErrorCodes.KEY_TOO_LARGE, `key is ${bytes} bytes; the limit is ${MAX_KEY_BYTES} bytes`);
}

export class Coordinator {
  readonly stats: CoordinatorStats = { puts: 0, gets: 0, forwarded: 0, readRepairs: 0 };

  constructor(private readonly d: CoordinatorDeps) {}

  async put(req: PutRequest, timeoutMs: number): Promise<Replies['put']> {
    const { cfg, ring, self } = this.d;
    validateKey(req.key);
    if (req.value !== null && req.value.length > cfg.maxValueBytes)
      throw new NexusError(ErrorCodes.VALUE_TOO_LARGE, `value is ${req.value.length} bytes; the limit is ${cfg.maxValueBytes} bytes`);
    const w = resolveQuorum(req.w ?? cfg.defaultW, ring.n, 'W');
    const ctx = decodeContext(req.ctx);
    const partition = ring.partitionOf(req.key);
    const primaries = ring.primaries(partition);
    const deadline = this.d.clock.now() + timeoutMs;
    if (!primaries.includes(self)) {
      if (req.fwd) throw new NexusError(ErrorCodes.INTERNAL, `node ${self} is not a replica of this key but was asked to coordinate it`);
      return this.forward(req, primaries, deadline);
    }
    this.stats.puts++;
    const write = this.d.replica.coordinate(req.key, partition, ctx, req.value);
    const quorum = new PutQuorum(w, primaries);
    const encoded = encodeObject(write.obj);
    // The answer's context covers what the client had seen plus its own write, never siblings it
    // has not seen (a write with it must not discard those).
    const answerCtx = encodeContext(joinVV(ctx, { [write.actor]: write.counter }));

    return new Promise<Replies['put']>((resolve, reject) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        timer.cancel();
        if (quorum.succeeded()) resolve({ ctx: answerCtx });
        else reject(new NexusError(ErrorCodes.QUORUM_NOT_MET, quorum.failureMessage()));
      };
      // Once W is out of reach we still wait for the outstanding replicas (bounded by the
      // deadline), so the error says exactly how many acked: those writes did land.
      const check = (): void => {
        if (quorum.succeeded() || quorum.complete()) finish();
      };
      const timer = this.d.clock.setTimeout(finish, Math.max(0, deadline - this.d.clock.now()));
      write.durable.then(
        () => (quorum.ack(self), check()),
        (e: unknown) => (quorum.fail(self, NexusError.from(e).toWire()), check()),
      );
      for (const node of primaries) {
        if (node === self) continue;
        this.d.transport
          .request(node, { t: 'rput', key: req.key, partition, obj: encoded }, Math.max(1, deadline - this.d.clock.now()))
          .then(
            () => (quorum.ack(node), check()),
            (e: unknown) => (quorum.fail(node, NexusError.from(e).toWire()), check()),
          );
      }
    });
  }

  async get(req: GetRequest, timeoutMs: number): Promise<Replies['get']> {
    const { cfg, ring, self } = this.d;
    validateKey(req.key);
    const r = resolveQuorum(req.r ?? cfg.defaultR, ring.n, 'R');
    const partition = ring.partitionOf(req.key);
    const primaries = ring.primaries(partition);
    const deadline = this.d.clock.now() + timeoutMs;
    this.stats.gets++;
    const quorum = new GetQuorum(r, primaries);

    return new Promise<Replies['get']>((resolve, reject) => {
      let answered = false;
      let repaired = false;
      const answer = (): void => {
        if (answered) return;
        answered = true;
        if (quorum.succeeded()) resolve(toReply(quorum.merged()));
        else reject(new NexusError(ErrorCodes.QUORUM_NOT_MET, quorum.failureMessage()));
      };
      const repair = (): void => {
        if (repaired) return;
        repaired = true;
        timer.cancel();
        this.readRepair(req.key, partition, quorum);
      };
      const check = (): void => {
        if (quorum.succeeded() || quorum.complete()) answer();
        if (quorum.complete()) repair();
      };
      // At the deadline: answer with what arrived (or fail), then repair from whatever did.
      const timer = this.d.clock.setTimeout(() => (answer(), repair()), Math.max(0, deadline - this.d.clock.now()));
      for (const node of primaries) {
        if (node === self) {
          quorum.reply(self, this.d.replica.read(req.key));
          continue;
        }
        this.d.transport.request(node, { t: 'rget', key: req.key }, Math.max(1, deadline - this.d.clock.now())).then(
          (res) => {
            try {
              quorum.reply(node, res.obj ? decodeObject(res.obj) : undefined);
            } catch (e) {
              quorum.fail(node, NexusError.from(e).toWire());
            }
            check();
          },
          (e: unknown) => (quorum.fail(node, NexusError.from(e).toWire()), check()),
        );
      }
      check();
    });
  }

  /** Sends the merged state to every replica whose reply was missing or stale. Fire and forget. */
  private readRepair(key: string, partition: number, quorum: GetQuorum): void {
    const final = quorum.merged();
    for (const node of quorum.stale(final)) {
      this.stats.readRepairs++;
      const done = node === this.d.self
        ? this.d.replica.apply(key, partition, final)
        : this.d.transport.request(node, { t: 'rput', key, partition, obj: encodeObject(final) }, this.d.cfg.requestTimeoutMs).then(() => {});
      done.catch((e: unknown) => this.d.log.debug({ key, node, err: (e as Error).message }, 'read repair failed'));
    }
  }

  /** Hands a write to the first reachable primary; it coordinates (and may still fail its quorum). */
  private async forward(req: PutRequest, primaries: readonly string[], deadline: number): Promise<Replies['put']> {
    const reasons: string[] = [];
    for (const node of primaries) {
      const remaining = deadline - this.d.clock.now();
      if (remaining <= 0) break;
      try {
        this.stats.forwarded++;
        return await this.d.transport.request(node, { ...req, fwd: true, timeoutMs: remaining }, remaining);
      } catch (e) {
        const err = NexusError.from(e);
        // Only failures that prove the write never started are retried on the next primary.
        if (err.code !== ErrorCodes.UNREACHABLE && err.code !== ErrorCodes.OVERLOADED && err.code !== ErrorCodes.STOPPING) throw err;
        reasons.push(`${node}: ${err.message}`);
      }
    }
    throw new NexusError(ErrorCodes.QUORUM_NOT_MET, `quorum not met: no primary replica of this key could coordinate the write; ${reasons.join('; ') || 'deadline passed'}`);
  }
}

function toReply(obj: VersionedObject): Replies['get'] {
  return { found: !isDeleted(obj), values: liveValues(obj), ctx: encodeContext(obj.vv), siblings: obj.siblings.length };
}
