// Group commit and the staged overlay, shared by the SQLite and the in-memory storage so the two
// cannot drift apart on the subtle parts: what `get` sees before a commit, how puts of one tick
// become one transaction, how a failed batch is undone, and how the live-key count follows along.
//
// A subclass supplies only the committed side: read a key, read its liveness, scan a partition,
// commit a batch atomically (throwing a STORAGE_FAILED NexusError on failure), close.
//
// Segment hashes (anti-entropy's tree leaves) follow the committed state: the committed side
// computes each row's contribution in its commit and keeps the per-segment XORs in
// `committedHashes` (the SQLite committer writes those buffers in place, sqlite-commit.ts). This
// layer only tags each staged row with its segment. A tombstone can be collected: its row is
// removed and remembered as "reaped", which later writes merge against.
//
// A commit may be synchronous (the in-memory storage, SQLite under 'os' durability) or
// asynchronous (SQLite under 'fsync': durable once its WAL sync returns). At most one batch is in
// flight: puts made meanwhile stage into the next batch, which is sent as soon as the one in
// flight lands, so batches grow by themselves under load. The entries of the batch in flight stay
// in the overlay (so `get` still sees them) until it lands.

import { LRUCache } from 'lru-cache';
import { SegmentHashes, segmentOf } from '../antientropy/segments.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeObject, isDeleted, sameState, type VersionedObject } from '../core/version.js';
import type { EncodedState, KeyHash, Storage } from './types.js';

/** One key's staged state, waiting for the next group commit. */
export interface StagedWrite {
  readonly partition: number;
  /** The new state; undefined when the key's tombstone is being collected (`reap` is set). */
  readonly obj: VersionedObject | undefined;
  /** `encodeObject(obj)` (or of `reap`), made at put time so the transaction itself stays short. */
  readonly bytes: Buffer;
  readonly live: boolean;
  /** The key's segment (0 when hashes are off). */
  readonly segment: number;
  /** When the state was staged (ms since the epoch): a tombstone's age for collection. */
  readonly since: number;
  /** Set when this entry collects the key's tombstone: the tombstone to remember as reaped. */
  readonly reap?: VersionedObject;
  /** Whether the key has a reaped record that this write replaces (and must delete). */
  readonly unreap: boolean;
  /**
   * Whether the committed row (if any) is live: the row this entry would fall back to if its batch
   * failed. A failed batch uses it to undo its effect on the live count without reading the store
   * again. Only the commit of an earlier state of the same key (a batch in flight when this entry
   * was staged) changes that row, and when it lands this is updated to that state's liveness.
   */
  committedLive: boolean;
  /** The committed state this entry falls back to (same rules as `committedLive`), for listeners. */
  committedObj: VersionedObject | undefined;
}

/** What a subclass hands the constructor: the committed state it opened. */
export interface StagedInit {
  /** Committed keys holding a live sibling. */
  liveKeys: number;
  /** Segments per partition (a power of two), or 0 to keep no segment hashes. */
  segments: number;
  /** The committed segment hashes, per partition (missing partitions are all zero). */
  hashes: Map<number, SegmentHashes>;
  /** Keys with a committed reaped record. */
  reapedKeys: Set<string>;
  /** Wall-clock milliseconds since the epoch, for tombstone ages (default Date.now). */
  now?: () => number;
  /** Runs the group commit once the current burst of puts is done (default `afterTurn`; the simulation injects its scheduler). */
  defer?: (fn: () => void) => void;
}

/** Told of every change of a key's visible state (staged or committed), in order. */
export type ChangeListener = (key: string, partition: number, before: VersionedObject | undefined, after: VersionedObject | undefined) => void;

interface Waiter {
  resolve: () => void;
  reject: (err: NexusError) => void;
}

/**
 * Key order for scans: Unicode code point order, which is also UTF-8 byte order and therefore
 * SQLite's BINARY collation. Plain `<` on JS strings compares UTF-16 code units, which differs when
 * a supplementary character (a surrogate pair) meets a BMP character in U+E000..U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// Moves surrogates (D800..DFFF) above U+E000..U+FFFF, keeping every other code unit's order.
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * The default group-commit trigger: a setImmediate registered only once the current turn (its
 * synchronous work and microtasks) is done. Links send the frames queued in a turn from a
 * setImmediate too (transport/link.ts), and immediates run in the order they were registered; so
 * a coordinator's replica writes leave before its own commit's work starts, not after (the commit
 * was on the fan-out's critical path: ~0.1 ms of a put at 1 outstanding).
 */
function afterTurn(fn: () => void): void {
  process.nextTick(() => setImmediate(fn));
}

export abstract class StagedStorage implements Storage {
  private readonly staged = new Map<string, StagedWrite>();
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** Waiters of the batch in flight (flush may add to them), or undefined when none is. */
  private inFlight: Waiter[] | undefined;
  /** Set once writes can no longer succeed (e.g. a WAL sync failed): puts reject with it. */
  private broken: NexusError | undefined;
  /**
   * The last key `get` read from the committed side (not staged) and whether that row was live.
   * A read-merge-write (`get` then `put` of the same key, as Replica does) then costs one read of
   * the store, not two. It stays valid until consumed: a key's committed row only changes by
   * committing a put of that key, and every put of the key consumes it.
   */
  private lastReadKey: string | undefined;
  private lastReadLive = false;
  /**
   * Recently read or written committed states (least recently used evicted first). Reads of hot
   * keys then skip SQLite: in the core benchmark the point read was ~11% of a node's CPU during
   * gets. Coherent because this class is the only writer: a committed row changes only when a
   * batch lands, and landing updates (or, on failure, drops) the cached entry.
   *
   * `lru-cache`, not a Map evicting its first key: V8 leaves a deleted Map entry as a hole until
   * the table is rebuilt, so `keys().next()` walked up to 50,000 holes per eviction — ~20 µs on
   * every committed write once the cache was full (0.6 µs with lru-cache).
   *
   * An entry keeps the state's encoding (a landed write brings it; a stored row is it), so a
   * peer's read is answered without encoding the state again.
   *
   * Reads fill it; a landed write only updates an entry already there. Adding every written key
   * made each blind write evict another entry once the cache was full, and kept 50,000 states
   * alive for the garbage collector: 3 nodes took 7–10% fewer puts/s at 64 outstanding, fresh
   * keys each (8,241–8,701 against 8,789–10,048/s, interleaved runs). A key read before it is
   * written (the read-modify-write of a replica or a client) is cached by that read.
   *
   * Memory: a landed state's values are views into the frames they arrived in, and its encoding
   * a view into one of msgpackr's encode buffers; kept as they were, each entry pinned whole
   * buffers. Under workload A (64 clients, the same 10,000 keys) a node's ArrayBuffers grew from 92
   * to 252 MB in about a minute and its RSS passed 1 GB in 3 minutes, still climbing. So a landed
   * state's encoding and values are copied into one buffer of exactly their size before they go
   * into an entry (`owned`). Copying only each new value with Buffer.from put an entry's values
   * in different shared 8 KiB slabs of Node's, which pinned those instead. States read from the
   * store are views into their own row's bytes already. (Copying every read's state, earlier, cost
   * 12% of read throughput; this copies at landings of cached keys only.)
   */
  private readonly cache = new LRUCache<string, EncodedState>({ max: CACHE_ENTRIES });
  private lastReadObj: VersionedObject | undefined;
  private readonly listeners: ChangeListener[] = [];
  private liveKeys: number;
  private commits = 0;
  private writes = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  /** Segment hashes of the committed state, per partition, kept by the subclass's commits. */
  protected readonly committedHashes: Map<number, SegmentHashes>;
  /** Keys with a committed reaped record (their tombstones were collected). */
  private readonly reapedKeys: Set<string>;
  /** Segments per partition; 0 turns segment hashes off (benchmarks measure their cost so). */
  readonly segments: number;
  private readonly now: () => number;
  private readonly defer: (fn: () => void) => void;

  protected constructor(init: StagedInit) {
    this.liveKeys = init.liveKeys;
    this.segments = init.segments;
    if (this.segments !== 0) new SegmentHashes(this.segments); // validates the count
    this.committedHashes = init.hashes;
    this.reapedKeys = init.reapedKeys;
    this.now = init.now ?? Date.now;
    this.defer = init.defer ?? afterTurn;
  }

  // ---- The committed side, supplied by each implementation ----

  /**
   * The committed state of a key with its encoding (the stored bytes, in a buffer of their own),
   * or undefined when no row exists.
   */
  protected abstract readCommitted(key: string): EncodedState | undefined;
  /** Whether the committed row holds a live sibling; false when no row exists. */
  protected abstract readCommittedLive(key: string): boolean;
  /** Committed rows of one partition, in `compareKeys` order. */
  protected abstract scanCommitted(partition: number): Array<[string, VersionedObject]>;
  /** (key, contribution) of the committed rows of one partition in the given segments. */
  protected abstract keyHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[];
  /** Committed tombstones of a partition staged before `before`, at most `limit`. */
  protected abstract tombstonesCommitted(partition: number, before: number, limit: number): Array<[string, VersionedObject]>;
  /** The committed reaped record of a key (only asked for keys in the reaped set). */
  protected abstract readReaped(key: string): VersionedObject | undefined;
  /** (key, contribution) of the reaped records of one partition in the given segments. */
  protected abstract reapedHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[];
  /** Deletes reaped records made before `before`; resolves with the keys deleted. */
  protected abstract deleteReaped(before: number): Promise<string[]> | string[];
  /** Replaces the committed segment hashes of one partition (after a failed check). */
  protected abstract persistSegments(partition: number, hashes: SegmentHashes): Promise<void> | void;
  /**
   * Writes the whole batch atomically or nothing: synchronously (returns undefined, throws a
   * STORAGE_FAILED NexusError on failure) or asynchronously (the promise settles once the batch is
   * durable and visible to `readCommitted`, or rejects with a STORAGE_FAILED NexusError). Never
   * called while an earlier batch is still in flight, nor after `breakWrites`.
   */
  protected abstract commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): void | Promise<void>;
  /**
   * Releases the store after the last commit has landed. May throw or reject; the storage counts as
   * closed anyway.
   */
  protected abstract closeStore(): void | Promise<void>;

  abstract getMeta(name: string): string | undefined;
  abstract setMeta(name: string, value: string): void;

  // ---- Storage ----

  get(key: string): VersionedObject | undefined {
    this.assertOpen();
    const staged = this.staged.get(key);
    if (staged !== undefined) return staged.obj;
    let obj = this.cache.get(key)?.obj; // and marks it the most recently used
    if (obj === undefined) {
      const row = this.readCommitted(key);
      if (row !== undefined) this.cache.set(key, row);
      obj = row?.obj;
    }
    this.lastReadKey = key;
    this.lastReadLive = obj !== undefined && !isDeleted(obj);
    this.lastReadObj = obj;
    return obj;
  }

  /**
   * What `get` sees, with its `encodeObject` bytes (undefined when the key has no state), never
   * encoded here: a staged write, a cache entry and a stored row each hold their encoding. A read
   * only: unlike `get`, it does not prepare a following put of the key.
   */
  getEncoded(key: string): EncodedState | undefined {
    this.assertOpen();
    const staged = this.staged.get(key);
    if (staged !== undefined) return staged.obj === undefined ? undefined : { obj: staged.obj, bytes: staged.bytes };
    let hit = this.cache.get(key);
    if (hit === undefined) {
      hit = this.readCommitted(key);
      if (hit !== undefined) this.cache.set(key, hit);
    }
    return hit;
  }

  put(key: string, partition: number, obj: VersionedObject): Promise<void> {
    return this.stage(key, partition, obj, undefined);
  }

  /**
   * Stages `obj` (or, with `reap`, the removal of the key's tombstone `reap`) and returns the
   * promise of its batch. The one path by which the visible state changes.
   */
  private stage(key: string, partition: number, obj: VersionedObject | undefined, reap: VersionedObject | undefined): Promise<void> {
    // Refusals reject rather than throw, so that `put(...).catch(...)` always catches them.
    if (this.state !== 'open') return Promise.reject(stoppingError());
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const prev = this.staged.get(key);
    let bytes: Buffer;
    let committedLive: boolean;
    let committedObj: VersionedObject | undefined;
    let segment = 0;
    try {
      bytes = encodeObject(obj ?? reap!);
      if (prev !== undefined) {
        committedLive = prev.committedLive;
        committedObj = prev.committedObj;
      } else if (this.lastReadKey === key) {
        committedLive = this.lastReadLive;
        committedObj = this.lastReadObj;
      } else {
        committedObj = this.cache.get(key)?.obj ?? this.readCommitted(key)?.obj;
        committedLive = committedObj !== undefined && !isDeleted(committedObj);
      }
      if (this.lastReadKey === key) this.lastReadKey = undefined;
      if (this.segments !== 0) segment = segmentOf(key, this.segments);
    } catch (err) {
      return Promise.reject(NexusError.from(err));
    }
    const before = prev !== undefined ? prev.obj : committedObj;
    this.changed(key, partition, before, obj);
    const wasLive = prev !== undefined ? prev.live : committedLive;
    const live = obj !== undefined && !isDeleted(obj);
    this.liveKeys += Number(live) - Number(wasLive);
    // A write over a collected key deletes its reaped record: a committed one, or the one the
    // collection staged before it will create (if that batch is already in flight).
    const unreap = obj !== undefined && (this.reapedKeys.has(key) || prev?.reap !== undefined);
    // A later put of the same key in this tick replaces the entry: only the latest state is
    // written, and every put's promise settles with the batch that carries it. (If the key's
    // earlier state is in flight, that batch still writes it; this entry goes in the next one.)
    const entry: StagedWrite = { partition, obj, bytes, live, segment, since: this.now(), unreap, committedLive, committedObj };
    if (reap !== undefined) (entry as { reap?: VersionedObject }).reap = reap;
    this.staged.set(key, entry);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(() => {
        if (this.scheduled) this.runFlush();
      });
    }
    return done;
  }

  /**
   * Collects a tombstone: removes the key and remembers `expected` as its reaped record, in one
   * transaction — but only if the key's visible state is still exactly `expected` (a tombstone).
   * Resolves true once collected, false when the state had changed (nothing is done then).
   */
  async collect(key: string, partition: number, expected: VersionedObject): Promise<boolean> {
    const current = this.get(key);
    if (current === undefined || !isDeleted(current) || !sameState(current, expected)) return false;
    await this.stage(key, partition, undefined, current);
    return true;
  }

  /** The tombstone a collected key held, or undefined when the key was not collected (or is back). */
  reaped(key: string): VersionedObject | undefined {
    this.assertOpen();
    const staged = this.staged.get(key);
    if (staged !== undefined) return staged.obj === undefined ? staged.reap : undefined;
    return this.reapedKeys.has(key) ? this.readReaped(key) : undefined;
  }

  /** How many reaped records are kept (committed). */
  reapedCount(): number {
    return this.reapedKeys.size;
  }

  /** (key, hash) of the committed reaped records in some segments of a partition that are still reaped. */
  reapedHashes(partition: number, segments: readonly number[]): KeyHash[] {
    this.assertOpen();
    if (this.reapedKeys.size === 0 || this.segments === 0) return [];
    // A key written again since (a staged put) is no longer reaped; a staged collection still is.
    return this.reapedHashesCommitted(partition, new Set(segments)).filter(([k]) => this.staged.get(k)?.obj === undefined);
  }

  /** Forgets reaped records made before `before`. Resolves with how many were forgotten. */
  async forgetReaped(before: number): Promise<number> {
    this.assertOpen();
    const gone = await this.deleteReaped(before);
    for (const k of gone) this.reapedKeys.delete(k);
    return gone.length;
  }

  /** Tombstones of a partition stored before `before` (ms since the epoch), at most `limit`. */
  tombstones(partition: number, before: number, limit: number): Array<[string, VersionedObject]> {
    this.assertOpen();
    // Staged keys are changing: they are not old tombstones, whatever their committed row says.
    return this.tombstonesCommitted(partition, before, limit).filter(([k]) => !this.staged.has(k));
  }

  /** The partition's segment hashes for the committed state. Callers must not change them. */
  segmentHashes(partition: number): SegmentHashes {
    this.assertOpen();
    return this.hashesOf(partition);
  }

  /**
   * Rebuilds each partition's segment hashes from its stored objects and compares them with the
   * kept ones. A partition that differs is corrected, in memory and on disk. Returns the
   * partitions that differed (none, unless something is wrong). O(data): call it while idle.
   */
  async checkSegments(partitions: Iterable<number>): Promise<number[]> {
    this.assertOpen();
    if (this.segments === 0) return [];
    await this.flush();
    const bad: number[] = [];
    for (const p of partitions) {
      const rebuilt = SegmentHashes.rebuild(this.scanPartition(p), this.segments);
      if (rebuilt.equals(this.hashesOf(p))) continue;
      bad.push(p);
      await this.persistSegments(p, rebuilt); // updates committedHashes too
    }
    return bad;
  }

  /** (key, contribution) of every committed key in some segments of a partition. */
  keyHashes(partition: number, segments: readonly number[]): KeyHash[] {
    this.assertOpen();
    return this.keyHashesCommitted(partition, new Set(segments));
  }

  liveKeyCount(): number {
    return this.liveKeys;
  }

  scanPartition(partition: number): Array<[string, VersionedObject]> {
    this.assertOpen();
    const committed = this.scanCommitted(partition);
    if (this.staged.size === 0) return committed;
    const rows = new Map(committed);
    let changed = false;
    for (const [key, w] of this.staged) {
      if (w.partition === partition && w.obj !== undefined) {
        rows.set(key, w.obj);
        changed = true;
      } else if (rows.delete(key)) {
        changed = true; // staged: collected, or moved to another partition
      }
    }
    if (!changed) return committed;
    return [...rows].sort((x, y) => compareKeys(x[0], y[0]));
  }

  stats(): { commits: number; writes: number; degraded?: string } {
    return { commits: this.commits, writes: this.writes };
  }

  /**
   * Resolves once everything staged so far has landed (committed or failed), the batch in flight
   * included. What is staged is sent now instead of at the end of the tick, unless a batch is in
   * flight (then it goes as soon as that one lands). Never rejects.
   */
  flush(): Promise<void> {
    const settled = (list: Waiter[]): Promise<void> =>
      new Promise<void>((resolve) => list.push({ resolve, reject: () => resolve() }));
    if (this.waiters.length > 0) {
      // Puts are waiting for the next batch, which lands after the one in flight (if any).
      const done = settled(this.waiters);
      this.runFlush();
      return done;
    }
    if (this.inFlight !== undefined) return settled(this.inFlight);
    return Promise.resolve();
  }

  /**
   * Refuses new work at once (get, put, scans and meta then throw or reject with STOPPING), commits
   * what is staged, then closes the store. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.closing === undefined) {
      this.state = 'closing';
      this.closing = (async () => {
        try {
          await this.flush(); // no put can join now, so this waits for every staged write
          await this.closeStore();
        } finally {
          this.state = 'closed';
        }
      })();
    }
    return this.closing;
  }

  // ---- Helpers for implementations ----

  /** Throws STOPPING once `close` has been called. */
  protected assertOpen(): void {
    if (this.state !== 'open') throw stoppingError();
  }

  /**
   * Declares that no write can succeed any more (e.g. a WAL sync failed), with the error to
   * give: later puts reject with it, and so does the staged batch when it is due. A batch already
   * in flight must still be settled by its commitBatch promise (normally rejected with the same
   * error); since it may or may not have been written, the live count is then re-read for its keys.
   */
  protected breakWrites(err: NexusError): void {
    this.broken ??= err;
  }

  // ---- Group commit ----

  /**
   * Sends every staged entry as one batch, unless a batch is in flight (its landing sends this one).
   * Runs from setImmediate and from promise callbacks, so it must never throw: a failed batch is an
   * error for its requests, not for the node.
   */
  private runFlush(): void {
    // A deferred run still pending finds `scheduled` false and does nothing.
    this.scheduled = false;
    if (this.inFlight !== undefined) return;
    if (this.staged.size === 0 && this.waiters.length === 0) return;
    const batch = [...this.staged];
    const waiters = this.waiters;
    this.waiters = [];
    if (this.broken !== undefined) {
      this.settle(batch, waiters, this.broken, false);
      return;
    }
    let pending: void | Promise<void>;
    try {
      pending = this.commitBatch(batch);
    } catch (err) {
      this.settle(batch, waiters, asFailure(err), false);
      return;
    }
    if (pending === undefined) {
      this.settle(batch, waiters, undefined, false);
      return;
    }
    this.inFlight = waiters;
    pending.then(
      () => this.land(batch, undefined),
      (err: unknown) => this.land(batch, asFailure(err)),
    );
  }

  /** The batch in flight has landed: settle it, then send what was staged meanwhile. */
  private land(batch: ReadonlyArray<readonly [string, StagedWrite]>, failure: NexusError | undefined): void {
    const waiters = this.inFlight ?? [];
    this.inFlight = undefined;
    // A batch that failed because writes broke (not a clean rollback) may have been written or not.
    this.settle(batch, waiters, failure, failure !== undefined && this.broken !== undefined);
    this.runFlush();
  }

  /**
   * Drops a landed batch from the overlay and settles its waiters. With `outcomeUnknown`, a failed
   * batch's keys have their committed liveness read back instead of assumed unchanged.
   */
  private settle(
    batch: ReadonlyArray<readonly [string, StagedWrite]>,
    waiters: Waiter[],
    failure: NexusError | undefined,
    outcomeUnknown: boolean,
  ): void {
    for (const [key, w] of batch) {
      if (failure === undefined) {
        // Write-update, no write-allocate: a landed state replaces a cached one, but a key that is
        // not cached (a blind write) is not added — see `cache`.
        if (w.obj !== undefined) {
          if (this.cache.has(key)) this.cache.set(key, owned(w.obj, w.bytes));
        } else this.cache.delete(key);
        if (w.reap !== undefined) this.reapedKeys.add(key);
        else if (w.unreap) this.reapedKeys.delete(key);
      } else {
        this.cache.delete(key); // unchanged, or (outcome unknown) perhaps changed: read it again
      }
      const current = this.staged.get(key);
      if (current === w) {
        this.staged.delete(key);
        if (failure !== undefined) {
          const committedLive = outcomeUnknown ? this.rereadLive(key, w.committedLive) : w.committedLive;
          this.liveKeys += Number(committedLive) - Number(w.live);
          this.changed(key, w.partition, w.obj, outcomeUnknown ? this.rereadObj(key, w.committedObj) : w.committedObj);
        }
      } else if (current !== undefined) {
        // Re-staged while this batch was in flight: the entry stays for the next batch, and the
        // row it would fall back to is now whatever this batch left.
        if (failure === undefined) {
          current.committedLive = w.live;
          current.committedObj = w.obj;
        } else if (outcomeUnknown) {
          current.committedLive = this.rereadLive(key, current.committedLive);
          current.committedObj = this.rereadObj(key, current.committedObj);
        }
      }
    }
    if (failure === undefined) {
      this.commits++;
      this.writes += batch.length;
      for (const w of waiters) w.resolve();
    } else {
      for (const w of waiters) w.reject(failure);
    }
  }

  /** Registers a listener for visible-state changes. */
  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** A key's visible state went from `before` to `after`: tell the listeners. */
  private changed(key: string, partition: number, before: VersionedObject | undefined, after: VersionedObject | undefined): void {
    for (const l of this.listeners) l(key, partition, before, after);
  }

  /** The committed hashes of a partition, created (all zero) on first use. */
  protected hashesOf(partition: number): SegmentHashes {
    let h = this.committedHashes.get(partition);
    if (h === undefined) this.committedHashes.set(partition, (h = new SegmentHashes(this.segments === 0 ? 1 : this.segments)));
    return h;
  }

  private rereadObj(key: string, fallback: VersionedObject | undefined): VersionedObject | undefined {
    try {
      return this.readCommitted(key)?.obj;
    } catch {
      return fallback;
    }
  }

  private rereadLive(key: string, fallback: boolean): boolean {
    try {
      return this.readCommittedLive(key);
    } catch {
      return fallback;
    }
  }
}

/** Committed states kept in memory (about 300 bytes each for small values, twice that encoded too). */
const CACHE_ENTRIES = 50_000;

/**
 * A cache entry for a landed state that holds only its own bytes: its encoding and its values
 * copied into one buffer of exactly their size, the values views into it (see `cache`).
 */
function owned(obj: VersionedObject, bytes: Buffer): EncodedState {
  let size = bytes.length;
  for (const s of obj.siblings) if (s.value !== null) size += s.value.length;
  const buf = Buffer.allocUnsafeSlow(size);
  bytes.copy(buf, 0);
  let at = bytes.length;
  const siblings = obj.siblings.map((s) => {
    if (s.value === null) return s;
    buf.set(s.value, at);
    const value = buf.subarray(at, (at += s.value.length));
    return { actor: s.actor, counter: s.counter, value };
  });
  return { obj: { vv: obj.vv, siblings }, bytes: buf.subarray(0, bytes.length) };
}

function asFailure(err: unknown): NexusError {
  return err instanceof NexusError ? err : new NexusError(ErrorCodes.STORAGE_FAILED, `commit failed: ${String(err)}`);
}

function stoppingError(): NexusError {
  return new NexusError(ErrorCodes.STOPPING, 'storage is closed');
}
