// The async shell around the quorum cores: routes a write to a primary replica of its key (which
// issues the dot), fans writes and reads out to the key's replicas, answers after W acks or R
// replies, and repairs stale replicas after a read. Every request runs against a deadline.

import type { Clock } from '../core/clock.js';
import { MAX_KEY_BYTES, resolveQuorum, type NodeConfig } from '../core/config.js';
import { ErrorCodes, NexusError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { NodeTimings } from '../core/timings.js';
import {
  decodeContext,
  decodeObject,
  encodeContext,
  encodeObject,
  joinVV,
  emptyObject,
  merge,
  siblingsAfterUpdate,
  update,
  type VersionVector,
  type VersionedObject,
} from '../core/version.js';
import { selectReplicas, type ReplicaChoice, type Ring } from '../ring/index.js';
import type { NodeIdentity } from '../replica/identity.js';
import type { Replica } from '../replica/replica.js';
import type { GetRequest, PutRequest, Replies } from '../transport/protocol.js';
import type { EncodedState } from '../storage/types.js';
import type { Transport } from '../transport/types.js';
import { answerOf, GetQuorum, PutQuorum, sameBytes } from './quorum.js';

/** Who is up, as the failure detector judges it; coordinators skip nodes judged down. */
export interface Liveness {
  isUp(node: string): boolean;
  /** A request to `node` timed out: a hint for the detector. */
  requestTimedOut(node: string): void;
}

/** Where a stand-in keeps hints and how it reads them back (src/handoff). */
export interface HintSide {
  /** Stores a write for `target` durably on this node. */
  addHint(target: string, key: string, partition: number, obj: VersionedObject): Promise<void>;
  /** The merge of this node's hints for `key`, or undefined. */
  hintedState(key: string): VersionedObject | undefined;
}

export interface CoordinatorDeps {
  self: string;
  cfg: NodeConfig;
  ring: Ring;
  transport: Transport;
  replica: Replica;
  identity: NodeIdentity;
  /** Where replica timings are recorded (for `nexus bench`); none in unit tests. */
  timings?: NodeTimings;
  liveness: Liveness;
  hints: HintSide;
  clock: Clock;
  log: Logger;
}

export interface CoordinatorStats {
  puts: number;
  gets: number;
  forwarded: number;
  readRepairs: number;
  /** Writes coordinated while no primary of the key was up. */
  standInPuts: number;
  /** Writes sent to a stand-in as a hint. */
  hintedWrites: number;
}

/** Refuses keys the data model does not allow, naming the limit. */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'key must be a non-empty string');
  if (!key.isWellFormed()) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'key must be valid UTF-8 (it contains a lone surrogate)');
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) throw new NexusError(ErrorCodes.KEY_TOO_LARGE, `key is ${bytes} bytes; the limit is ${MAX_KEY_BYTES} bytes`);
}

export class Coordinator {
  readonly stats: CoordinatorStats = { puts: 0, gets: 0, forwarded: 0, readRepairs: 0, standInPuts: 0, hintedWrites: 0 };

  constructor(private readonly d: CoordinatorDeps) {}

  async put(req: PutRequest, timeoutMs: number): Promise<Replies['put']> {
    const { cfg, ring, self } = this.d;
    validateKey(req.key);
    if (req.value !== null && req.value.length > cfg.maxValueBytes)
      throw new NexusError(ErrorCodes.VALUE_TOO_LARGE, `value is ${req.value.length} bytes; the limit is ${cfg.maxValueBytes} bytes`);
    const w = resolveQuorum(req.w ?? cfg.defaultW, ring.n, 'W');
    const ctx = decodeContext(req.ctx);
    const place = this.place(req.key, req.strict, w, 'W');
    const { partition, primaries, plan } = place;
    const deadline = this.d.clock.now() + timeoutMs;
    const isPrimary = primaries.includes(self);
    if (!isPrimary && !req.fwd && place.upPrimaries.length > 0) {
      try {
        return await this.forward(req, place.upPrimaries, deadline);
      } catch (e) {
        // Every up primary refused before starting the write: take it as a stand-in, unless strict.
        if (req.strict || !(e instanceof NexusError && e.details?.noPrimary)) throw e;
      }
    }
    this.stats.puts++;
    const quorum = withSkipped(new PutQuorum(w, place.replicas, place.counts), place);
    const started = performance.now();
    const own = isPrimary ? this.d.replica.coordinate(req.key, partition, ctx, req.value) : null;
    const commits = this.d.timings?.commit;
    if (own && commits) own.durable.then(() => commits.push(performance.now() - started), () => {});
    const write: CoordinatedObject = own ?? this.standInWrite(req.key, ctx, req.value);
    // Staging the own write encoded it already: send those bytes rather than encoding again.
    const staged = own ? this.d.replica.readEncoded(req.key) : undefined;
    const encoded = staged !== undefined && staged.obj === write.obj ? staged.bytes : encodeObject(write.obj);
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
      for (const choice of plan) {
        this.deliver(choice, req.key, partition, write.obj, encoded, own?.durable ?? null, deadline).then(
          () => (quorum.ack(choice.node), check()),
          (e: unknown) => (quorum.fail(choice.node, NexusError.from(e).toWire()), check()),
        );
      }
      if (plan.length === 0) finish();
    });
  }

  /**
   * Puts the new object on one chosen replica: the coordinator's own staged write, a replica
   * write to another primary, or a hint to a stand-in for a down primary.
   */
  private deliver(
    choice: ReplicaChoice,
    key: string,
    partition: number,
    obj: VersionedObject,
    encoded: Uint8Array,
    ownWrite: Promise<void> | null,
    deadline: number,
  ): Promise<void> {
    const { self } = this.d;
    if (choice.node === self) {
      if (choice.hintFor === undefined) return ownWrite ?? this.d.replica.apply(key, partition, obj);
      this.stats.hintedWrites++;
      return this.d.hints.addHint(choice.hintFor, key, partition, obj);
    }
    const remaining = Math.max(1, deadline - this.d.clock.now());
    const started = performance.now();
    const sent =
      choice.hintFor === undefined
        ? this.d.transport.request(choice.node, { t: 'rput', key, partition, obj: encoded }, remaining)
        : (this.stats.hintedWrites++, this.d.transport.request(choice.node, { t: 'hput', key, partition, target: choice.hintFor, obj: encoded }, remaining));
    return sent.then(
      () => {
        if (choice.hintFor === undefined) this.d.timings?.rput.push(performance.now() - started);
      },
      (e: unknown) => {
        if (e instanceof NexusError && e.code === ErrorCodes.TIMEOUT) this.d.liveness.requestTimedOut(choice.node);
        throw e;
      },
    );
  }

  /**
   * A write coordinated while no primary of the key is up. This node does not hold the key's
   * full state, so it must not use its usual actor (whose earlier dots for the key it may not
   * hold, and which a vector could then cover by mistake): each such write gets an actor of its
   * own, named after the unique counter.
   */
  private standInWrite(key: string, ctx: VersionVector, value: Uint8Array | null): CoordinatedObject {
    const local = this.d.hints.hintedState(key) ?? emptyObject();
    const count = siblingsAfterUpdate(local, ctx);
    if (count > this.d.cfg.maxSiblings)
      throw new NexusError(ErrorCodes.TOO_MANY_SIBLINGS, `key would hold ${count} siblings, more than the limit of ${this.d.cfg.maxSiblings}: read the key and write with its context to resolve them`);
    const counter = this.d.identity.nextCounter();
    const actor = `${this.d.identity.actor}.${counter}`;
    this.stats.standInPuts++;
    return { obj: update(local, ctx, actor, counter, value), actor, counter };
  }

  async get(req: GetRequest, timeoutMs: number): Promise<Replies['get']> {
    const { cfg, ring, self } = this.d;
    validateKey(req.key);
    const r = resolveQuorum(req.r ?? cfg.defaultR, ring.n, 'R');
    const place = this.place(req.key, req.strict, r, 'R');
    const { partition, primaries, plan } = place;
    const deadline = this.d.clock.now() + timeoutMs;
    this.stats.gets++;
    const quorum = withSkipped(new GetQuorum(r, place.replicas, place.counts), place);

    return new Promise<Replies['get']>((resolve, reject) => {
      let answered = false;
      let repaired = false;
      const answer = (): void => {
        if (answered) return;
        answered = true;
        if (quorum.succeeded()) resolve(answerOf(quorum.merged()));
        else reject(new NexusError(ErrorCodes.QUORUM_NOT_MET, quorum.failureMessage()));
      };
      const repair = (): void => {
        if (repaired) return;
        repaired = true;
        timer.cancel();
        this.readRepair(req.key, partition, quorum, primaries);
      };
      const check = (): void => {
        if (quorum.succeeded() || quorum.complete()) answer();
        if (quorum.complete()) repair();
      };
      // At the deadline: answer with what arrived (or fail), then repair from whatever did.
      const timer = this.d.clock.setTimeout(() => (answer(), repair()), Math.max(0, deadline - this.d.clock.now()));
      const started = performance.now();
      // This node's state and its encoding, when it is in the plan: a peer's reply with the same
      // bytes is the same state, taken without decoding it (replicas in sync, the usual case).
      const local = plan.some((c) => c.node === self) ? this.localEncoded(req.key) : undefined;
      for (const { node } of plan) {
        if (node === self) {
          quorum.reply(self, local?.obj);
          continue;
        }
        this.d.transport.request(node, { t: 'rget', key: req.key }, Math.max(1, deadline - this.d.clock.now())).then(
          (res) => {
            this.d.timings?.rget.push(performance.now() - started);
            try {
              quorum.reply(node, !res.obj ? undefined : local !== undefined && sameBytes(res.obj, local.bytes) ? local.obj : decodeObject(res.obj));
            } catch (e) {
              quorum.fail(node, NexusError.from(e).toWire());
            }
            check();
          },
          (e: unknown) => {
            if (e instanceof NexusError && e.code === ErrorCodes.TIMEOUT) this.d.liveness.requestTimedOut(node);
            quorum.fail(node, NexusError.from(e).toWire());
            check();
          },
        );
      }
      check();
    });
  }

  /**
   * Where a request for `key` goes now: its primaries, the up ones, and the sloppy-quorum plan (up
   * primaries, plus a stand-in for each down one). Refuses a strict request that too few primaries
   * can serve before anything is sent.
   */
  private place(key: string, strict: boolean | undefined, needed: number, what: 'R' | 'W'): Placement {
    const { ring } = this.d;
    const partition = ring.partitionOf(key);
    const pref = ring.preferenceList(partition);
    const primaries = pref.slice(0, ring.n).map((e) => e.node);
    const isUp = (node: string): boolean => this.d.liveness.isUp(node);
    const upPrimaries = primaries.filter(isUp);
    if (strict && upPrimaries.length < needed) throw strictError(upPrimaries.length, primaries.length, needed, what);
    const plan = selectReplicas(pref, ring.n, isUp);
    const skipped = unserved(primaries, plan);
    return {
      partition,
      primaries,
      upPrimaries,
      plan,
      skipped,
      replicas: [...plan.map((c) => c.node), ...skipped],
      ...(strict ? { counts: (node: string) => primaries.includes(node) } : {}),
    };
  }

  /**
   * What this node holds for a key — its replica's state merged with any hints it keeps for it —
   * with that state's encoding, taken from storage when no hint adds to the stored state.
   */
  localEncoded(key: string): EncodedState | undefined {
    const hinted = this.d.hints.hintedState(key);
    if (!hinted) return this.d.replica.readEncoded(key);
    const own = this.d.replica.read(key);
    const obj = own ? merge(own, hinted) : hinted;
    return { obj, bytes: encodeObject(obj) };
  }

  /** Sends the merged state to every replica whose reply was missing or stale. Fire and forget. */
  private readRepair(key: string, partition: number, quorum: GetQuorum, primaries: readonly string[]): void {
    const final = quorum.merged();
    // Only primaries are repaired: a stand-in's copy is a hint on its way to its owner.
    for (const node of quorum.stale(final)) {
      if (!primaries.includes(node)) continue;
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
    throw new NexusError(
      ErrorCodes.QUORUM_NOT_MET,
      `quorum not met: no primary replica of this key could coordinate the write; ${reasons.join('; ') || 'deadline passed'}`,
      { noPrimary: reasons.length > 0 },
    );
  }
}

interface CoordinatedObject {
  obj: VersionedObject;
  actor: string;
  counter: number;
}

interface Placement {
  partition: number;
  primaries: string[];
  upPrimaries: string[];
  plan: ReplicaChoice[];
  /** Down primaries that no stand-in covers. */
  skipped: string[];
  /** Everything a quorum waits on: the plan, then the skipped primaries (already failed). */
  replicas: string[];
  /** Set for strict requests: only primaries count. */
  counts?: (node: string) => boolean;
}

/** Records the skipped primaries as failed, so the error names them. */
function withSkipped<Q extends { fail(node: string, error: WireError): void }>(quorum: Q, place: Placement): Q {
  for (const node of place.skipped) quorum.fail(node, JUDGED_DOWN);
  return quorum;
}

const JUDGED_DOWN = { code: ErrorCodes.UNREACHABLE, message: 'judged down by the failure detector, and no stand-in is up' };

/** Primaries that are neither in the plan nor stood in for: down, with no fallback to take over. */
function unserved(primaries: readonly string[], plan: readonly ReplicaChoice[]): string[] {
  return primaries.filter((p) => !plan.some((c) => c.node === p || c.hintFor === p));
}

function strictError(up: number, n: number, needed: number, what: 'R' | 'W'): NexusError {
  return new NexusError(ErrorCodes.QUORUM_NOT_MET, `strict quorum not met: ${up} of ${n} primaries up, ${what}=${needed} needs ${needed}`);
}
