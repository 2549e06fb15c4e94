// Anti-entropy on a node: keeps each partition's segment hashes up to date from every change of
// local state, answers peers' exchange requests, and runs exchanges — in the background on a
// schedule, or all at once for `nexus repair`. One exchange at a time per node, rate-limited in
// bytes per second. Each exchange compares Merkle roots, descends only into differing subtrees,
// swaps the (key, hash) lists of the differing segments, then moves only the objects that differ,
// merged by version vector, in both directions.
//
// Tombstone collection also lives here, because only exchanges can tell that every replica holds
// a tombstone. An exchange that completes leaves both sides holding at least what the other held
// when its snapshot was taken, so each node remembers, per partition and peer, the time of its
// own snapshot in the last completed exchange. A tombstone stored before that time on every other
// replica's record, and older than the grace period, is collected: its row goes and a reaped
// record stays, which later writes merge against and which exchanges list under the tombstone's
// hash — so a replica that still holds the tombstone sees no difference, and nothing is shipped
// back and forth. Reaped records are forgotten one grace period after collection.

import type { Clock, TimerHandle } from '../core/clock.js';
import { NexusError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { decodeObject, encodeObject, type VersionedObject } from '../core/version.js';
import type { Ring } from '../ring/index.js';
import type { Replica } from '../replica/replica.js';
import type { Storage } from '../storage/types.js';
import type { Replies } from '../transport/protocol.js';
import type { Transport } from '../transport/types.js';
import { diffKeys, findDifferences, repairPlan, type KeyHashes, type RemoteSegments } from './compare.js';
import type { SegmentHashes } from './segments.js';
import { TreeCache, type SegmentTree } from './tree.js';

export interface AntiEntropyOptions {
  self: string;
  ring: Ring;
  storage: Storage;
  replica: Replica;
  transport: Transport;
  isUp: (node: string) => boolean;
  /** How long `node` has been judged up, ms (0 when down). */
  upForMs: (node: string) => number;
  clock: Clock;
  log: Logger;
  /** Time between background rounds, ms (default 10 s). */
  intervalMs?: number;
  /** Bytes per second an exchange may move (default 10 MB/s). */
  bytesPerSec?: number;
  /**
   * How long a tombstone is kept after every replica holds it, and a reaped record after that,
   * ms (default 6 h; longer than the hint window, so no hint can bring a collected value back).
   */
  tombstoneGraceMs?: number;
  /** While true, background rounds are skipped (the node is overloaded). */
  isOverloaded?: () => boolean;
}

export interface ExchangeReport {
  exchanges: number;
  segmentsCompared: number;
  keysRepaired: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Tombstone grace unless configured: longer than the default 3 h hint window. */
export const TOMBSTONE_GRACE_DEFAULT_MS = 6 * 3600_000;

/** Tombstones collected per partition per round, so one round stays short. */
const COLLECT_BATCH = 1000;

const REQUEST_TIMEOUT_MS = 10_000;
const TREE_TTL_MS = 2000;

function emptyReport(): ExchangeReport {
  return { exchanges: 0, segmentsCompared: 0, keysRepaired: 0, bytesSent: 0, bytesReceived: 0 };
}

function add(into: ExchangeReport, r: ExchangeReport): void {
  into.exchanges += r.exchanges;
  into.segmentsCompared += r.segmentsCompared;
  into.keysRepaired += r.keysRepaired;
  into.bytesSent += r.bytesSent;
  into.bytesReceived += r.bytesReceived;
}

export class AntiEntropy {
  /** Trees served to peers, kept briefly so one exchange sees one snapshot. */
  private readonly served = new Map<number, { tree: SegmentTree; at: number }>();
  /** Trees reused while their partition's segment hashes are unchanged (both sides of exchanges). */
  private readonly trees = new TreeCache();
  private readonly totals = emptyReport();
  private lastRound: { at: number; ms: number; repaired: number } | null = null;
  private running: Promise<ExchangeReport> | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;
  /**
   * Per partition and peer: when this node took its snapshot for the last exchange with that peer
   * that completed. Every tombstone stored here before then is held by the peer too. Kept in
   * memory: after a restart collection waits for new exchanges, which is only slower.
   */
  private readonly synced = new Map<number, Map<string, number>>();
  /** Responder side: when this node served the root to a peer, until the peer says it is done. */
  private readonly servedRoots = new Map<string, number>();
  private tombstonesCollected = 0;
  private reapedForgotten = 0;
  private pausedRounds = 0;

  constructor(private readonly o: AntiEntropyOptions) {}

  start(): void {
    const next = (): void => {
      if (this.stopped) return;
      this.timer = this.o.clock.setTimeout(() => {
        if (this.o.isOverloaded?.()) {
          // Repair can wait; foreground requests cannot. Try again next interval.
          this.pausedRounds++;
          this.o.log.debug('anti-entropy round skipped: node overloaded');
          next();
          return;
        }
        this.round(undefined, false)
          .then(() => this.collect())
          .catch((e: unknown) => this.o.log.warn({ err: NexusError.from(e).message }, 'tombstone collection failed'))
          .finally(next);
      }, this.o.intervalMs ?? 10_000);
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  stats(): Record<string, unknown> {
    return {
      aeLastRoundAt: this.lastRound ? new Date(this.lastRound.at).toISOString() : null,
      aeLastRoundMs: this.lastRound?.ms ?? null,
      aeLastRoundRepaired: this.lastRound?.repaired ?? null,
      aeExchanges: this.totals.exchanges,
      aeSegmentsCompared: this.totals.segmentsCompared,
      aeKeysRepaired: this.totals.keysRepaired,
      aeBytesSent: this.totals.bytesSent,
      aeBytesReceived: this.totals.bytesReceived,
      aeRoundsPaused: this.pausedRounds,
      aeTreesBuilt: this.trees.builds,
      tombstonesCollected: this.tombstonesCollected,
      reapedKept: this.o.storage.reapedCount(),
      reapedForgotten: this.reapedForgotten,
    };
  }

  /**
   * Collects the tombstones every replica is known to hold and that are older than the grace
   * period, then forgets reaped records older than it. Returns how many tombstones went.
   */
  async collect(): Promise<number> {
    const now = this.o.clock.now();
    const grace = this.o.tombstoneGraceMs ?? TOMBSTONE_GRACE_DEFAULT_MS;
    let collected = 0;
    for (const p of this.o.ring.partitionsReplicatedBy(this.o.self)) {
      if (this.stopped) break;
      let before = now - grace;
      for (const peer of this.o.ring.primaries(p)) {
        if (peer === this.o.self) continue;
        const at = this.synced.get(p)?.get(peer);
        before = at === undefined ? -Infinity : Math.min(before, at);
      }
      if (before === -Infinity) continue;
      // All at once, so they share one group commit.
      const done = await Promise.all(this.o.storage.tombstones(p, before, COLLECT_BATCH).map(([key, obj]) => this.o.storage.collect(key, p, obj)));
      collected += done.filter(Boolean).length;
    }
    this.tombstonesCollected += collected;
    this.reapedForgotten += await this.o.storage.forgetReaped(now - grace);
    if (collected > 0) this.o.log.info({ collected }, `collected ${collected} tombstones`);
    return collected;
  }

  /**
   * One round: every partition this node replicates (or just `partition`), against each other up
   * replica. In the background only the replica with the smaller id starts a pair's exchange;
   * `nexus repair` (all = true) exchanges with every replica. Rounds never overlap.
   */
  round(partition: number | undefined, all: boolean): Promise<ExchangeReport> {
    const run = async (): Promise<ExchangeReport> => {
      const started = this.o.clock.now();
      const report = emptyReport();
      const parts = partition === undefined ? this.o.ring.partitionsReplicatedBy(this.o.self) : [partition];
      for (const p of parts) {
        // A background round yields as soon as the node is overloaded; the next one resumes.
        if (!all && this.o.isOverloaded?.()) {
          this.pausedRounds++;
          break;
        }
        for (const peer of this.o.ring.primaries(p)) {
          if (this.stopped || peer === this.o.self || !this.o.isUp(peer) || (!all && peer < this.o.self)) continue;
          // A peer that has just come back is first brought up to date by hinted handoff; a
          // background exchange now would move the same objects a second time.
          if (!all && this.o.upForMs(peer) < 3 * (this.o.intervalMs ?? 10_000)) continue;
          try {
            add(report, await this.exchange(p, peer));
          } catch (e) {
            this.o.log.debug({ partition: p, peer, err: NexusError.from(e).message }, 'exchange failed');
          }
        }
      }
      if (partition === undefined) this.lastRound = { at: this.o.clock.now(), ms: Math.round(this.o.clock.now() - started), repaired: report.keysRepaired };
      if (report.keysRepaired > 0) this.o.log.info(report, `anti-entropy repaired ${report.keysRepaired} keys`);
      return report;
    };
    const previous = this.running ?? Promise.resolve(emptyReport());
    const mine = previous.catch(() => emptyReport()).then(run);
    this.running = mine;
    return mine;
  }

  /** Compares one partition with one peer and repairs both sides. */
  async exchange(partition: number, peer: string): Promise<ExchangeReport> {
    const started = this.o.clock.now();
    const report = emptyReport();
    report.exchanges = 1;
    const ask = <T extends 'ae-root' | 'ae-nodes' | 'ae-keys' | 'ae-get' | 'ae-done'>(msg: Parameters<Transport['request']>[1] & { t: T }): Promise<Replies[T]> =>
      this.o.transport.request(peer, msg as never, REQUEST_TIMEOUT_MS) as Promise<Replies[T]>;
    const remote: RemoteSegments = {
      root: async () => {
        const r = await ask({ t: 'ae-root', partition });
        return { segments: r.segments, hash: Buffer.from(r.hash) };
      },
      nodes: async (level, indices) => (await ask({ t: 'ae-nodes', partition, level, indices: [...indices] })).hashes.map((h) => Buffer.from(h)),
    };
    const snapshotAt = this.o.clock.now();
    const local = this.trees.tree(partition, this.o.storage.segmentHashes(partition));
    const diff = await findDifferences(local, remote);
    report.segmentsCompared = local.segments;
    report.bytesReceived += diff.exchangedBytes;
    if (diff.segments.length > 0) {
      const keys = await diffKeys(
        (segs) => this.keyHashes(partition, segs),
        async (segs) => (await ask({ t: 'ae-keys', partition, segments: [...segs] })).keys.map(([k, h]) => [k, Buffer.from(h)] as const),
        diff.segments,
      );
      report.bytesReceived += keys.exchangedBytes;
      const wanted = [...keys.missingHere, ...keys.differing];
      const theirs = new Map<string, VersionedObject>();
      if (wanted.length > 0) {
        const got = await ask({ t: 'ae-get', keys: wanted });
        const reapedThere = new Set(got.reaped ?? []);
        const lackedHere = new Set(keys.missingHere);
        for (const [k, bytes] of got.objs) {
          if (bytes === null) continue;
          report.bytesReceived += bytes.length;
          // A reaped record is not shipped to a replica that holds nothing of the key: every
          // replica held the tombstone before it was collected, so this one has collected and
          // forgotten it too (the two forget at different times), and has no value to cover.
          if (reapedThere.has(k) && lackedHere.has(k)) continue;
          theirs.set(k, decodeObject(bytes));
        }
      }
      const ours = new Map<string, VersionedObject>();
      for (const k of keys.missingThere) {
        const obj = this.o.replica.read(k);
        if (obj) ours.set(k, obj); // a reaped record only: see above
      }
      for (const k of keys.differing) {
        const obj = this.stateOf(k);
        if (obj) ours.set(k, obj);
      }
      const plan = repairPlan(ours, theirs);
      await Promise.all(plan.toLocal.map(([k, obj]) => this.o.replica.apply(k, partition, obj)));
      if (plan.toRemote.length > 0) {
        const items = plan.toRemote.map(([key, obj]) => ({ key, obj: encodeObject(obj) }));
        for (const i of items) report.bytesSent += i.obj.length + Buffer.byteLength(i.key);
        await this.o.transport.request(peer, { t: 'handoff', items }, REQUEST_TIMEOUT_MS);
      }
      report.keysRepaired = plan.toLocal.length + plan.toRemote.length;
    }
    // Complete: each side now holds at least what the other held at its snapshot.
    await ask({ t: 'ae-done', partition });
    this.markSynced(partition, peer, snapshotAt);
    // Rate limit: an exchange that moved B bytes is followed by a pause of B / rate.
    const moved = report.bytesSent + report.bytesReceived;
    const wait = (moved / (this.o.bytesPerSec ?? 10_000_000)) * 1000 - (this.o.clock.now() - started);
    if (wait > 0) await new Promise<void>((r) => this.o.clock.setTimeout(r, wait));
    add(this.totals, report);
    return report;
  }

  // ---- The responder side ----

  root(partition: number, peer: string): Replies['ae-root'] {
    const tree = this.servedTree(partition, true);
    this.servedRoots.set(`${partition}\u0000${peer}`, this.o.clock.now());
    return { segments: tree.segments, hash: tree.root() };
  }

  nodes(partition: number, level: number, indices: number[]): Replies['ae-nodes'] {
    return { hashes: this.servedTree(partition, false).nodes(level, indices) };
  }

  keys(partition: number, segments: number[]): Replies['ae-keys'] {
    return { keys: this.keyHashes(partition, segments).map(([k, h]) => [k, h] as [string, Uint8Array]) };
  }

  objects(keys: string[]): Replies['ae-get'] {
    const reaped: string[] = [];
    const objs = keys.map((k) => {
      let obj = this.o.replica.read(k);
      if (!obj && (obj = this.o.storage.reaped(k))) reaped.push(k);
      return [k, obj ? encodeObject(obj) : null] as [string, Uint8Array | null];
    });
    return reaped.length > 0 ? { objs, reaped } : { objs };
  }

  /** The peer completed an exchange it started with the root this node served it. */
  done(partition: number, peer: string): Replies['ae-done'] {
    const id = `${partition}\u0000${peer}`;
    const at = this.servedRoots.get(id);
    this.servedRoots.delete(id);
    if (at !== undefined) this.markSynced(partition, peer, at);
    return {};
  }

  /** This node's current segment hashes of a partition (for tests and a rebuild check). */
  segmentHashes(partition: number): SegmentHashes {
    return this.o.storage.segmentHashes(partition);
  }

  private markSynced(partition: number, peer: string, at: number): void {
    let m = this.synced.get(partition);
    if (!m) this.synced.set(partition, (m = new Map()));
    m.set(peer, Math.max(at, m.get(peer) ?? -Infinity));
  }

  /**
   * What an exchange knows of a key here: its stored state, or the tombstone it held when it was
   * collected. A reaped key is listed and merged as that tombstone, so a replica still holding the
   * same tombstone sees no difference, and one holding an older value receives the tombstone.
   */
  private stateOf(key: string): VersionedObject | undefined {
    return this.o.replica.read(key) ?? this.o.storage.reaped(key);
  }

  private servedTree(partition: number, fresh: boolean): SegmentTree {
    const now = this.o.clock.now();
    const cached = this.served.get(partition);
    if (!fresh && cached && now - cached.at < TREE_TTL_MS) return cached.tree;
    const tree = this.trees.tree(partition, this.o.storage.segmentHashes(partition));
    this.served.set(partition, { tree, at: now });
    return tree;
  }

  /** Stored keys and reaped records of some segments, each with its hash. */
  private keyHashes(partition: number, segments: readonly number[]): KeyHashes {
    const stored = this.o.storage.keyHashes(partition, segments);
    const reaped = this.o.storage.reapedHashes(partition, segments);
    if (reaped.length === 0) return stored;
    const have = new Set(stored.map(([k]) => k));
    return [...stored, ...reaped.filter(([k]) => !have.has(k))];
  }
}
