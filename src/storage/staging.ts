// Group commit and the staged overlay, shared by the SQLite and the in-memory storage so the two
// cannot drift apart on the subtle parts: what `get` sees before a commit, how puts of one tick
// become one transaction, how a failed batch is undone, and how the live-key count follows along.
//
// A subclass supplies only the committed side: read a key, read its liveness, scan a partition,
// commit a batch atomically (throwing a STORAGE_FAILED NexusError on failure), close.

import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeObject, isDeleted, type VersionedObject } from '../core/version.js';
import type { Storage } from './types.js';

/** One key's staged state, waiting for the next group commit. */
export interface StagedWrite {
  readonly partition: number;
  readonly obj: VersionedObject;
  /** `encodeObject(obj)`, made at put time so the transaction itself stays short. */
  readonly bytes: Buffer;
  readonly live: boolean;
  /**
   * Whether the committed row (if any) was live when this key was first staged. The committed row
   * of a staged key cannot change until this entry is committed, so it stays true until then; a
   * failed batch uses it to undo its effect on the live count without reading the store again.
   */
  readonly committedLive: boolean;
}

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

export abstract class StagedStorage implements Storage {
  private readonly staged = new Map<string, StagedWrite>();
  private waiters: Waiter[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private liveKeys: number;
  private commits = 0;
  private writes = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;

  protected constructor(committedLiveKeys: number) {
    this.liveKeys = committedLiveKeys;
  }

  // ---- The committed side, supplied by each implementation ----

  /** The committed state of a key, or undefined when no row exists. */
  protected abstract readCommitted(key: string): VersionedObject | undefined;
  /** Whether the committed row holds a live sibling; false when no row exists. */
  protected abstract readCommittedLive(key: string): boolean;
  /** Committed rows of one partition, in `compareKeys` order. */
  protected abstract scanCommitted(partition: number): Array<[string, VersionedObject]>;
  /** Writes the whole batch atomically or nothing; throws a STORAGE_FAILED NexusError. */
  protected abstract commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): void;
  /** Releases the store after the last commit. May throw; the storage counts as closed anyway. */
  protected abstract closeStore(): void;

  abstract getMeta(name: string): string | undefined;
  abstract setMeta(name: string, value: string): void;

  // ---- Storage ----

  get(key: string): VersionedObject | undefined {
    this.assertOpen();
    const staged = this.staged.get(key);
    if (staged !== undefined) return staged.obj;
    return this.readCommitted(key);
  }

  put(key: string, partition: number, obj: VersionedObject): Promise<void> {
    // Refusals reject rather than throw, so that `put(...).catch(...)` always catches them.
    if (this.state !== 'open') return Promise.reject(stoppingError());
    const prev = this.staged.get(key);
    let bytes: Buffer;
    let committedLive: boolean;
    try {
      bytes = encodeObject(obj);
      committedLive = prev !== undefined ? prev.committedLive : this.readCommittedLive(key);
    } catch (err) {
      return Promise.reject(NexusError.from(err));
    }
    const wasLive = prev !== undefined ? prev.live : committedLive;
    const live = !isDeleted(obj);
    this.liveKeys += Number(live) - Number(wasLive);
    // A later put of the same key in this tick replaces the entry: only the latest state is
    // written, and every put's promise settles with the batch that carries it.
    this.staged.set(key, { partition, obj, bytes, live, committedLive });
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.scheduled === undefined) this.scheduled = setImmediate(() => this.runFlush());
    return done;
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
      if (w.partition === partition) {
        rows.set(key, w.obj);
        changed = true;
      } else if (rows.delete(key)) {
        changed = true; // the key's staged state moved it to another partition
      }
    }
    if (!changed) return committed;
    return [...rows].sort((x, y) => compareKeys(x[0], y[0]));
  }

  stats(): { commits: number; writes: number } {
    return { commits: this.commits, writes: this.writes };
  }

  /** Commits what is staged now instead of at the end of the tick. Never rejects. */
  flush(): Promise<void> {
    this.runFlush();
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
        this.runFlush();
        try {
          this.closeStore();
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

  // ---- Group commit ----

  /**
   * Commits every staged entry in one transaction and settles every waiting put. Runs from
   * setImmediate, so it must never throw: a failed batch is an error for its requests, not for the
   * node.
   */
  private runFlush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.staged.size === 0 && this.waiters.length === 0) return;
    const batch = [...this.staged];
    const waiters = this.waiters;
    this.waiters = [];
    let failure: NexusError | undefined;
    try {
      this.commitBatch(batch);
    } catch (err) {
      failure = err instanceof NexusError ? err : new NexusError(ErrorCodes.STORAGE_FAILED, `commit failed: ${String(err)}`);
    }
    for (const [key, w] of batch) {
      // Only drop an entry this batch carried; a put that re-staged the key since must stay.
      if (this.staged.get(key) !== w) continue;
      this.staged.delete(key);
      if (failure !== undefined) this.liveKeys += Number(w.committedLive) - Number(w.live);
    }
    if (failure === undefined) {
      this.commits++;
      this.writes += batch.length;
      for (const w of waiters) w.resolve();
    } else {
      for (const w of waiters) w.reject(failure);
    }
  }
}

function stoppingError(): NexusError {
  return new NexusError(ErrorCodes.STOPPING, 'storage is closed');
}
