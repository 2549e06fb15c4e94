// Storage in memory, for unit tests and the deterministic simulation. Same staging, group commit
// and failure semantics as the SQLite storage (both extend StagedStorage); objects are kept encoded,
// as on disk, so a caller that mutates an object after `put` cannot change what was "stored".

import { ErrorCodes, NexusError } from '../core/errors.js';
import { decodeObject, type VersionedObject } from '../core/version.js';
import { keyEncodedHash, SEGMENTS_DEFAULT, SegmentHashes } from '../antientropy/segments.js';
import { compareKeys, StagedStorage, type StagedWrite } from './staging.js';
import type { EncodedState, KeyHash, Storage } from './types.js';

export interface MemoryStorageOptions {
  /**
   * Consulted once per group commit; when it returns true the whole batch fails with
   * STORAGE_FAILED "disk full (simulated)" and nothing of it is kept. Meta writes never fail.
   * Default: never fail.
   */
  failWrites?: () => boolean;
  /** Segments per partition (default 1024; 0 = no segment hashes). */
  segments?: number;
  /** Wall-clock ms since the epoch, for tombstone ages (default Date.now). */
  now?: () => number;
  /** Runs the group commit after the current burst of puts (default setImmediate). */
  defer?: (fn: () => void) => void;
  /**
   * The committed state of an earlier instance (its `image()`): opening on it is a restart after
   * a crash — what was committed is there, what was only staged is gone.
   */
  image?: MemoryImage;
}

/** What a MemoryStorage has committed: its "disk", which outlives a crashed instance. */
export interface MemoryImage {
  rows: Map<string, Row>;
  reapedRows: Map<string, Row>;
  meta: Map<string, string>;
}

interface Row {
  partition: number;
  live: boolean;
  bytes: Buffer;
  segment: number;
  khash: Buffer | null;
  since: number;
}

export class MemoryStorage extends StagedStorage implements Storage {
  private readonly rows: Map<string, Row>;
  private readonly reapedRows: Map<string, Row>;
  private readonly meta: Map<string, string>;
  private readonly failWrites: () => boolean;

  constructor(opts: MemoryStorageOptions = {}) {
    const image = opts.image ?? { rows: new Map<string, Row>(), reapedRows: new Map<string, Row>(), meta: new Map<string, string>() };
    const segments = opts.segments ?? SEGMENTS_DEFAULT;
    // Reopening: the live count and the segment hashes are rebuilt from the committed rows.
    const hashes = new Map<number, SegmentHashes>();
    let live = 0;
    for (const row of image.rows.values()) {
      if (row.live) live++;
      if (row.khash !== null && segments !== 0) {
        let h = hashes.get(row.partition);
        if (h === undefined) hashes.set(row.partition, (h = new SegmentHashes(segments)));
        h.xorSegment(row.segment, row.khash);
      }
    }
    super({
      liveKeys: live,
      segments,
      hashes,
      reapedKeys: new Set(image.reapedRows.keys()),
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.defer ? { defer: opts.defer } : {}),
    });
    this.rows = image.rows;
    this.reapedRows = image.reapedRows;
    this.meta = image.meta;
    this.failWrites = opts.failWrites ?? (() => false);
  }

  /** The committed state, shared (not copied): hand it to a new instance to "restart". */
  image(): MemoryImage {
    return { rows: this.rows, reapedRows: this.reapedRows, meta: this.meta };
  }

  getMeta(name: string): string | undefined {
    this.assertOpen();
    return this.meta.get(name);
  }

  setMeta(name: string, value: string): void {
    this.assertOpen();
    this.meta.set(name, value);
  }

  protected readCommitted(key: string): EncodedState | undefined {
    const row = this.rows.get(key);
    return row === undefined ? undefined : { obj: decodeObject(row.bytes), bytes: row.bytes };
  }

  protected readCommittedLive(key: string): boolean {
    return this.rows.get(key)?.live ?? false;
  }

  protected scanCommitted(partition: number): Array<[string, VersionedObject]> {
    const out: Array<[string, VersionedObject]> = [];
    for (const [key, row] of this.rows) if (row.partition === partition) out.push([key, decodeObject(row.bytes)]);
    return out.sort((x, y) => compareKeys(x[0], y[0]));
  }

  protected keyHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[] {
    return hashesIn(this.rows, partition, segments);
  }

  protected tombstonesCommitted(partition: number, before: number, limit: number): Array<[string, VersionedObject]> {
    const out: Array<[string, VersionedObject]> = [];
    for (const [key, row] of this.rows) {
      if (out.length >= limit) break;
      if (row.partition === partition && !row.live && row.since < before) out.push([key, decodeObject(row.bytes)]);
    }
    return out;
  }

  protected readReaped(key: string): VersionedObject | undefined {
    const row = this.reapedRows.get(key);
    return row === undefined ? undefined : decodeObject(row.bytes);
  }

  protected reapedHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[] {
    return hashesIn(this.reapedRows, partition, segments);
  }

  protected deleteReaped(before: number): string[] {
    const gone: string[] = [];
    for (const [key, row] of this.reapedRows) if (row.since < before) gone.push(key);
    for (const key of gone) this.reapedRows.delete(key);
    return gone;
  }

  /** The in-memory hashes are this storage's only copy. */
  protected persistSegments(partition: number, hashes: SegmentHashes): void {
    this.committedHashes.set(partition, hashes);
  }

  /** Applies the batch, keeping each row's contribution and its segment's hash as SQLite does. */
  protected commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): void {
    if (this.failWrites()) throw new NexusError(ErrorCodes.STORAGE_FAILED, 'disk full (simulated)');
    for (const [key, w] of batch) {
      const khash = this.segments === 0 ? null : keyEncodedHash(key, w.bytes);
      const row: Row = { partition: w.partition, live: w.live, bytes: w.bytes, segment: w.segment, khash, since: w.since };
      const old = this.rows.get(key);
      if (old?.khash) this.hashesOf(old.partition).xorSegment(old.segment, old.khash);
      if (w.reap !== undefined) {
        this.rows.delete(key);
        this.reapedRows.set(key, row);
      } else {
        this.rows.set(key, row);
        if (khash !== null) this.hashesOf(w.partition).xorSegment(w.segment, khash);
        if (w.unreap) this.reapedRows.delete(key);
      }
    }
  }

  protected closeStore(): void {}
}

function hashesIn(rows: Map<string, Row>, partition: number, segments: ReadonlySet<number>): KeyHash[] {
  const out: KeyHash[] = [];
  for (const [key, row] of rows) if (row.partition === partition && row.khash !== null && segments.has(row.segment)) out.push([key, row.khash]);
  return out;
}
