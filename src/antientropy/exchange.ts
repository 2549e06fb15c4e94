// Anti-entropy on a node: keeps each partition's segment hashes up to date from every change of
// local state, answers peers' exchange requests, and runs exchanges — in the background on a
// schedule, or all at once for `nexus repair`. One exchange at a time per node, rate-limited in
// bytes per second. Each exchange compares Merkle roots, descends only into differing subtrees,
// swaps the (key, hash) lists of the differing segments, then moves only the objects that differ,
// merged by version vector, in both directions.

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
import { keyObjectHash, SEGMENTS_DEFAULT, SegmentHashes, segmentOf } from './segments.js';
import { SegmentTree } from './tree.js';

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
  segments?: number;
}

export interface ExchangeReport {
  exchanges: number;
  segmentsCompared: number;
  keysRepaired: number;
  bytesSent: number;
  bytesReceived: number;
}

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
  private readonly hashes = new Map<number, SegmentHashes>();
  /** Trees served to peers, kept briefly so one exchange sees one snapshot. */
  private readonly served = new Map<number, { tree: SegmentTree; at: number }>();
  private readonly totals = emptyReport();
  private lastRound: { at: number; ms: number; repaired: number } | null = null;
  private running: Promise<ExchangeReport> | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private readonly segments: number;

  constructor(private readonly o: AntiEntropyOptions) {
    this.segments = o.segments ?? SEGMENTS_DEFAULT;
    // Segment hashes start from the stored data, then follow every change of visible state.
    for (const p of o.ring.partitionsReplicatedBy(o.self)) this.hashes.set(p, SegmentHashes.rebuild(o.storage.scanPartition(p), this.segments));
    o.storage.onChange((key, partition, before, after) => this.of(partition).apply(key, before, after));
  }

  start(): void {
    const next = (): void => {
      if (this.stopped) return;
      this.timer = this.o.clock.setTimeout(() => {
        this.round(undefined, false).finally(next);
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
    };
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
    const ask = <T extends 'ae-root' | 'ae-nodes' | 'ae-keys' | 'ae-get'>(msg: Parameters<Transport['request']>[1] & { t: T }): Promise<Replies[T]> =>
      this.o.transport.request(peer, msg as never, REQUEST_TIMEOUT_MS) as Promise<Replies[T]>;
    const remote: RemoteSegments = {
      root: async () => {
        const r = await ask({ t: 'ae-root', partition });
        return { segments: r.segments, hash: Buffer.from(r.hash) };
      },
      nodes: async (level, indices) => (await ask({ t: 'ae-nodes', partition, level, indices: [...indices] })).hashes.map((h) => Buffer.from(h)),
    };
    const local = SegmentTree.build(this.of(partition));
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
        for (const [k, bytes] of got.objs) {
          if (bytes === null) continue;
          report.bytesReceived += bytes.length;
          theirs.set(k, decodeObject(bytes));
        }
      }
      const ours = new Map<string, VersionedObject>();
      for (const k of [...keys.missingThere, ...keys.differing]) {
        const obj = this.o.replica.read(k);
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
    // Rate limit: an exchange that moved B bytes is followed by a pause of B / rate.
    const moved = report.bytesSent + report.bytesReceived;
    const wait = (moved / (this.o.bytesPerSec ?? 10_000_000)) * 1000 - (this.o.clock.now() - started);
    if (wait > 0) await new Promise<void>((r) => this.o.clock.setTimeout(r, wait));
    add(this.totals, report);
    return report;
  }

  // ---- The responder side ----

  root(partition: number): Replies['ae-root'] {
    const tree = this.servedTree(partition, true);
    return { segments: tree.segments, hash: tree.root() };
  }

  nodes(partition: number, level: number, indices: number[]): Replies['ae-nodes'] {
    return { hashes: this.servedTree(partition, false).nodes(level, indices) };
  }

  keys(partition: number, segments: number[]): Replies['ae-keys'] {
    return { keys: this.keyHashes(partition, segments).map(([k, h]) => [k, h] as [string, Uint8Array]) };
  }

  objects(keys: string[]): Replies['ae-get'] {
    return {
      objs: keys.map((k) => {
        const obj = this.o.replica.read(k);
        return [k, obj ? encodeObject(obj) : null] as [string, Uint8Array | null];
      }),
    };
  }

  /** This node's current segment hashes of a partition (for tests and a rebuild check). */
  segmentHashes(partition: number): SegmentHashes {
    return this.of(partition);
  }

  private of(partition: number): SegmentHashes {
    let h = this.hashes.get(partition);
    if (!h) this.hashes.set(partition, (h = new SegmentHashes(this.segments)));
    return h;
  }

  private servedTree(partition: number, fresh: boolean): SegmentTree {
    const now = this.o.clock.now();
    const cached = this.served.get(partition);
    if (!fresh && cached && now - cached.at < TREE_TTL_MS) return cached.tree;
    const tree = SegmentTree.build(this.of(partition));
    this.served.set(partition, { tree, at: now });
    return tree;
  }

  private keyHashes(partition: number, segments: readonly number[]): KeyHashes {
    const wanted = new Set(segments);
    const out: Array<readonly [string, Buffer]> = [];
    for (const [key, obj] of this.o.storage.scanPartition(partition)) {
      if (wanted.has(segmentOf(key, this.segments))) out.push([key, keyObjectHash(key, obj)]);
    }
    return out;
  }
}
