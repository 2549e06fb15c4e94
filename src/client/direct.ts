// Client-coordinated reads (Dynamo, §6.4 "client-driven coordination"). A client that has links to
// every primary replica of a key asks them for their state itself (`rget`), answers at R replies
// with their merge and a context covering exactly those, and so saves the hop through a node
// coordinator: one round trip instead of two. Writes still go through a coordinator, which issues
// the dot.
//
// The client knows less than a node, so it hands anything unusual to a node coordinator, which
// has the failure detector, the stand-ins and their hints:
//   - a key with a primary the client has no link for (it was given only some URLs);
//   - too few primaries answering to reach R (down, refusing, or slower than `patienceMs`);
//   - replicas that disagree: once every primary has answered, if any answered stale, a
//     coordinated read of the key (R=1) is sent to a stale one, and that coordinator repairs them.
//
// That repair waits for a grace period first. Under load most disagreement is a write in flight:
// its coordinator already sent it to the replica that answered stale, which has it a few ms later.
// Repairing at once wrote the same state a second time (and, for a key written all the time, the
// coordinated read found another write in flight and wrote again): in workload A at 64 clients
// 18% of direct reads led to a repair, ~10% of the cluster's CPU. So after `repairGraceMs` the
// client asks each stale replica for its state again, and sends the repair read only if one still
// lacks part of what the read saw (its vector does not cover the merged one; docs/adr/010).

import type { Clock, TimerHandle } from '../core/clock.js';
import { resolveQuorum } from '../core/config.js';
import { NexusError } from '../core/errors.js';
import { decodeObject, descends, type VersionVector, type VersionedObject } from '../core/version.js';
import { validateKey } from '../coordinator/coordinator.js';
import { answerOf, GetQuorum, sameBytes } from '../coordinator/quorum.js';
import { Ring } from '../ring/index.js';
import type { Link } from '../transport/link.js';
import type { Replies, RequestOf } from '../transport/protocol.js';

/** The cluster as a client sees it: the ring, and which of its URLs is which node. */
interface RingView {
  ring: Ring;
  urlOf: Map<string, string>;
  defaultR: number;
  /** Whether every URL answered; if not, the view is asked for again after REDISCOVER_MS. */
  whole: boolean;
}

/** A view missing some URL (a node down when it was made) is made again this often at most. */
const REDISCOVER_MS = 5_000;
/** The deadline of the `ring` questions that build the view. */
const RING_TIMEOUT_MS = 2_000;
/** After a failed dial, a URL's replies count as failed this long without dialling it again. */
const REDIAL_MS = 1_000;
/** The default clock: monotonic, and no more than a read needs. */
const monotonic: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};
/** The deadline of the repair read sent to a stale replica. */
const REPAIR_TIMEOUT_MS = 10_000;
/** How long a stale replica has to receive the writes it lacked before it is checked (default). */
export const REPAIR_GRACE_MS = 1_000;
/** The deadline of that check (an rget of the stale replica). */
const CHECK_TIMEOUT_MS = 5_000;
/** Stale reads waiting for their check, at most; past that a stale read is repaired at once. */
export const MAX_PENDING_CHECKS = 10_000;

/** A read that found replicas stale: checked again once `due`. */
interface PendingCheck {
  key: string;
  /** The URLs of the stale replicas. */
  urls: string[];
  /** The merged vector the read saw: a replica whose vector covers it has caught up. */
  seen: VersionVector;
  due: number;
}

export interface DirectReadDeps {
  urls: readonly string[];
  /** The client's link to a URL (dialled on first use). */
  link(url: string): Promise<Link>;
  /** A read through a node coordinator: the fallback. `url`, if given, is the node to ask. */
  coordinated(msg: RequestOf<'get'>, timeoutMs: number, url?: string): Promise<Replies['get']>;
  /** How long to wait for R replies before handing the read to a node coordinator. */
  patienceMs: number;
  /** How long a stale replica gets before it is checked and, if still behind, repaired (REPAIR_GRACE_MS; 0: check at once). */
  repairGraceMs?: number;
  /** The simulation's virtual clock; performance.now() and setTimeout by default. */
  clock?: Clock;
}

export interface DirectReadStats {
  /** Reads answered by the client from the replicas' replies. */
  direct: number;
  /** Reads handed to a node coordinator (no link to a primary, R out of reach, or past the patience). */
  fallbacks: number;
  /** Coordinated reads sent because replicas still disagreed after the grace (the coordinator repairs them). */
  repairs: number;
  /** Reads that found a replica stale, which had caught up by the time it was checked: no repair. */
  caughtUp: number;
}

/** Every count at zero: a new reader's, and that of a client whose reads a node coordinates. */
export function noReadStats(): DirectReadStats {
  return { direct: 0, fallbacks: 0, repairs: 0, caughtUp: 0 };
}

export class DirectReads {
  readonly stats: DirectReadStats = noReadStats();
  private view: Promise<RingView | null> | null = null;
  private viewAt = 0;
  /** URLs whose last dial failed, with when they may be dialled again. */
  private readonly unreachable = new Map<string, { until: number; error: NexusError }>();
  /** Stale reads waiting for their check, in `due` order (one grace for all), from `pendingHead` on. */
  private pending: PendingCheck[] = [];
  private pendingHead = 0;
  private checkTimer: TimerHandle | undefined;
  private closed = false;

  private readonly clock: Clock;
  private readonly graceMs: number;

  constructor(private readonly d: DirectReadDeps) {
    this.clock = d.clock ?? monotonic;
    this.graceMs = d.repairGraceMs ?? REPAIR_GRACE_MS;
  }

  /** Stale reads still waiting for their check. */
  get pendingChecks(): number {
    return this.pending.length - this.pendingHead;
  }

  /** Drops the checks not yet made (anti-entropy repairs what they would have): the client is closing. */
  close(): void {
    this.closed = true;
    this.checkTimer?.cancel();
    this.checkTimer = undefined;
    this.pending = [];
    this.pendingHead = 0;
  }

  async get(msg: RequestOf<'get'>, timeoutMs: number): Promise<Replies['get']> {
    validateKey(msg.key);
    const view = await this.currentView();
    const primaries = view?.ring.primaries(view.ring.partitionOf(msg.key));
    if (!view || !primaries || primaries.some((p) => !view.urlOf.has(p))) return this.fallBack(msg, timeoutMs);
    const r = resolveQuorum(msg.r ?? view.defaultR, view.ring.n, 'R');
    const now = this.clock.now();
    const deadline = now + timeoutMs;
    const remaining = (): number => Math.max(1, deadline - this.clock.now());
    const quorum = new GetQuorum(r, primaries);

    return new Promise<Replies['get']>((resolve, reject) => {
      let answered = false;
      let handedOver = false;
      let repairChecked = false;
      // A node that answered is up: the coordinator to hand the read to (not one that is hanging).
      let responsive: string | undefined;
      const handOver = (): void => {
        if (answered || handedOver) return;
        handedOver = true;
        patience.cancel();
        this.fallBack(msg, remaining(), responsive && view.urlOf.get(responsive)).then(resolve, reject);
      };
      const patience = this.clock.setTimeout(handOver, Math.min(this.d.patienceMs, timeoutMs / 2));
      // Replicas in sync send the same bytes: decode those once.
      let first: { bytes: Uint8Array; obj: VersionedObject } | undefined;
      const decode = (bytes: Uint8Array): VersionedObject => {
        if (first && sameBytes(bytes, first.bytes)) return first.obj;
        const obj = decodeObject(bytes);
        first ??= { bytes, obj };
        return obj;
      };
      const check = (): void => {
        if (!answered && !handedOver) {
          if (quorum.succeeded()) {
            answered = true;
            patience.cancel();
            this.stats.direct++;
            resolve(answerOf(quorum.merged()));
          } else if (quorum.decided()) handOver();
        }
        if (answered && !repairChecked && quorum.complete()) {
          repairChecked = true;
          this.repairIfStale(msg.key, quorum, view);
        }
      };
      for (const node of primaries) {
        const url = view.urlOf.get(node)!;
        const down = this.unreachable.get(url);
        if (down && down.until > now) {
          quorum.fail(node, down.error.toWire());
          continue;
        }
        this.d
          .link(url)
          .then(
            (link) => link.request<'rget'>({ t: 'rget', key: msg.key }, remaining()),
            (e: unknown) => {
              const error = NexusError.from(e);
              this.unreachable.set(url, { until: this.clock.now() + REDIAL_MS, error });
              throw error;
            },
          )
          .then(
            (res) => {
              responsive ??= node;
              try {
                quorum.reply(node, res.obj ? decode(res.obj) : undefined);
              } catch (e) {
                quorum.fail(node, NexusError.from(e).toWire());
              }
              check();
            },
            (e: unknown) => {
              quorum.fail(node, NexusError.from(e).toWire());
              check();
            },
          );
      }
      check();
    });
  }

  private fallBack(msg: RequestOf<'get'>, timeoutMs: number, url?: string): Promise<Replies['get']> {
    this.stats.fallbacks++;
    return this.d.coordinated(msg, timeoutMs, url);
  }

  /** Replicas that answered with an older state: checked again after the grace (see the top). */
  private repairIfStale(key: string, quorum: GetQuorum, view: RingView): void {
    const merged = quorum.merged();
    const stale = quorum.stale(merged);
    if (stale.length === 0 || this.closed) return;
    const urls = stale.map((node) => view.urlOf.get(node)!);
    if (this.pendingChecks >= MAX_PENDING_CHECKS) return this.repair(key, urls[0]!);
    this.pending.push({ key, urls, seen: merged.vv, due: this.clock.now() + this.graceMs });
    this.checkTimer ??= this.clock.setTimeout(() => this.runChecks(), this.graceMs);
  }

  /** Checks every stale read whose grace is over, and waits for the next one's. */
  private runChecks(): void {
    this.checkTimer = undefined;
    const now = this.clock.now();
    while (this.pendingHead < this.pending.length && this.pending[this.pendingHead]!.due <= now) this.check(this.pending[this.pendingHead++]!);
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
      return;
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    this.checkTimer = this.clock.setTimeout(() => this.runChecks(), this.pending[this.pendingHead]!.due - now);
  }

  /**
   * Asks each stale replica for its state again: one whose vector covers what the read saw has
   * every write the read saw (merging them would change nothing), so only a replica still behind
   * is repaired. A replica that does not answer is left to hinted handoff and anti-entropy: a
   * coordinated read through it would fail too.
   */
  private check(c: PendingCheck): void {
    const states = c.urls.map((url) =>
      this.d
        .link(url)
        .then((link) => link.request<'rget'>({ t: 'rget', key: c.key }, CHECK_TIMEOUT_MS))
        .then((res) => ((res.obj ? descends(decodeObject(res.obj).vv, c.seen) : Object.keys(c.seen).length === 0) ? 'caught up' : 'behind'))
        .catch(() => 'no answer'),
    );
    void Promise.all(states).then((found) => {
      if (this.closed) return;
      const behind = found.indexOf('behind');
      if (behind >= 0) this.repair(c.key, c.urls[behind]!);
      else if (found.every((f) => f === 'caught up')) this.stats.caughtUp++;
    });
  }

  /** A coordinated read at a stale replica: its coordinator repairs every replica it finds stale. */
  private repair(key: string, url: string): void {
    this.stats.repairs++;
    this.d.coordinated({ t: 'get', key, r: 1 }, REPAIR_TIMEOUT_MS, url).catch(() => {
      // Best effort, like a coordinator's read repair; anti-entropy repairs what this misses.
    });
  }

  /** The ring view, asked for on first use and again (at most every few seconds) while incomplete. */
  private async currentView(): Promise<RingView | null> {
    const current = this.view ? await this.view : null;
    if (this.view && (current?.whole || this.clock.now() - this.viewAt < REDISCOVER_MS)) return current;
    const next = this.discover();
    this.view = next;
    this.viewAt = this.clock.now();
    return (await next) ?? current;
  }

  /** Asks every URL which node it is; nodes with settings other than the first answer's are left out. */
  private async discover(): Promise<RingView | null> {
    const replies = await Promise.all(
      this.d.urls.map((url) =>
        this.d
          .link(url)
          .then((link) => link.request<'ring'>({ t: 'ring' }, RING_TIMEOUT_MS))
          .then(
            (ring) => ({ url, ring }),
            () => null,
          ),
      ),
    );
    const answered = replies.filter((x): x is { url: string; ring: Replies['ring'] } => x !== null);
    const ref = answered[0]?.ring;
    if (!ref) return null;
    const urlOf = new Map<string, string>();
    for (const { url, ring } of answered) if (ring.fingerprint === ref.fingerprint && !urlOf.has(ring.node)) urlOf.set(ring.node, url);
    let ring: Ring;
    try {
      ring = new Ring({ members: ref.members.map((id) => ({ id, url: '' })), partitions: ref.partitions, n: ref.n });
    } catch {
      return null; // settings a client cannot build a ring from: leave reads to the nodes
    }
    return { ring, urlOf, defaultR: ref.defaultR, whole: answered.length === this.d.urls.length };
  }
}
