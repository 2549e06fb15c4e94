// The write side of SqliteStorage: the statements and transactions that commit group-commit
// batches, hint changes, reaped-record deletions and segment-hash checkpoints, on the main
// thread's connection, and the segment hashes those commits keep.
//
// A transaction here never waits for the disk: the connection runs with synchronous=NORMAL, so a
// COMMIT writes its WAL frames into the OS page cache and returns (~16 µs for one row here, against
// ~160 µs with the fsync of synchronous=FULL). Durability is SqliteStorage's business: under
// 'fsync' it acknowledges a batch only after an fdatasync of the WAL file, run off the main thread
// (wal-sync.ts), which is what synchronous=FULL would have done inside the COMMIT. Earlier these
// commits ran on a worker thread with synchronous=FULL; handing each batch to it and back cost
// two thread wake-ups (~100 µs on this machine, more than the transaction itself) and a copy of
// every batch, for work that takes the main thread a few µs per row.

// Segment hashes. Each row stores its contribution (`khash`) in its own transaction, and the
// per-segment XORs live in memory here. Writing the touched segments with every commit dirtied
// about one extra page per row (rows of a batch fall in random segments; the anti-entropy
// benchmark measured a third of put throughput), so instead each commit appends one journal row:
// the XOR delta of every segment it changed, packed in a blob. The `segments` table is a
// checkpoint — one blob per partition, rewritten for the partitions with dirty segments inside a
// commit at most every CHECKPOINT_MS and at close — and each checkpoint empties the journal. At
// open SqliteStorage replays the journal onto the checkpoint (work proportional to the commits
// since it, never a rescan; `recoverSegments` in sqlite-schema.ts) and hands the result to the
// Committer, whose first checkpoint writes it.

import type Database from 'better-sqlite3';
import { createHash, hash } from 'node:crypto';
import type { PartitionRows } from './partition-rows.js';

export interface CommitterConfig {
  /** Segments per partition; 0 = keep no segment hashes. */
  segments: number;
  /**
   * The live bytes of one partition's committed segment hashes (segments × 16), created zeroed on
   * first use: the staging layer's own SegmentHashes buffers, recovered at open (checkpoint +
   * journal). The committer writes them in place, so anti-entropy reads exactly what the commits
   * made, with nothing to copy or report.
   */
  partition: (partition: number) => Buffer;
  /** Partitions the journal changed since the checkpoint: written at the first checkpoint. */
  replayed: number[];
  /** The rows of each partition (partition-rows.ts): told of the inserts, moves and deletes that commit. */
  rows: PartitionRows;
}

/**
 * What `key` holding the object encoded as `obj` contributes to its segment: sha256 over
 * len(key) ‖ key ‖ obj, cut to 16 bytes. `keyEncodedHash` in antientropy/segments.ts is this
 * function (test/unit/antientropy.test.ts holds it equal to the hash of the canonical encoding).
 */
export function contribution(key: string, obj: Uint8Array): Buffer {
  return Buffer.from(contributionDigest(key, obj), 'latin1').subarray(0, 16);
}

/**
 * The whole SHA-256 digest as a string of 32 latin1 characters, one per byte (the contribution is
 * its first 16). The digest comes out as a string because a Buffer result costs a fresh
 * ArrayBuffer per call: measured here, 1.24 µs per hash with Buffer output against 0.39 µs with
 * latin1 output copied into a reused buffer.
 */
function contributionDigest(key: string, obj: Uint8Array): string {
  // Small inputs (nearly every write) are laid out in one scratch buffer and hashed with the
  // one-shot crypto.hash: half the cost of a Hash object with three updates.
  if (obj.length + 4 + 3 * key.length <= scratch.length) {
    const n = scratch.write(key, 4, 'utf8');
    scratch.writeUInt32BE(n, 0);
    scratch.set(obj, 4 + n);
    return hash('sha256', scratch.subarray(0, 4 + n + obj.length), 'binary');
  }
  const len = Buffer.alloc(4);
  len.writeUInt32BE(Buffer.byteLength(key, 'utf8'));
  return createHash('sha256').update(len).update(key, 'utf8').update(obj).digest('binary');
}
const scratch = Buffer.alloc(64 * 1024);

/**
 * Writes the contribution into `out` (16 bytes) and returns `out`: no allocation per row, and a
 * loop rather than Buffer#write, which calls into C++ for 16 bytes.
 */
function contributionInto(key: string, obj: Uint8Array, out: Buffer): Buffer {
  const digest = contributionDigest(key, obj);
  for (let i = 0; i < 16; i++) out[i] = digest.charCodeAt(i);
  return out;
}

/**
 * One staged write: the new state `obj` of `key`, in segment `segment` of its partition, staged
 * at `since`. With REAP the row is removed instead and `obj` is the collected tombstone,
 * remembered in `reaped`; with UNREAP the key's reaped record is deleted (the key was written
 * again); FRESH is a hint that the key has no row yet.
 */
export type CommitRow = [key: string, partition: number, live: 0 | 1, obj: Uint8Array, segment: number, since: number, flags: number];
export const REAP = 1;
export const UNREAP = 2;
/** The staging layer believes no row exists: try a plain INSERT, with no read of the old row. */
export const FRESH = 4;

export type HintRow = [id: number, target: string, key: string, partition: number, version: number, createdAt: number, obj: Uint8Array];

/** Bytes per journal record: u32 partition, u32 segment, 16-byte delta. */
export const SEGMENT_RECORD = 24;

/** Longest time between segment checkpoints (while commits keep coming). */
const CHECKPOINT_MS = 10_000;

/**
 * The segment hashes of the committed rows, in memory: one buffer of segments × 16 bytes per
 * partition (few large objects, so little for the garbage collector to walk), shared with the
 * staging layer (`CommitterConfig.partition`). `dirty` holds the partitions changed since the last
 * checkpoint.
 *
 * The current transaction's changes are logged in order as (partition, segment, 16-byte XOR
 * delta), one entry per change: a slot changed twice is logged twice. XOR makes that enough for
 * both uses: replaying the deltas (the journal, at open) and XORing them out again (rollback, in
 * any order) give the right bytes.
 *
 * This runs for every row of every commit, inside the transaction, so it allocates nothing per
 * row, calls nothing outside JavaScript and touches as little memory as it can: a profile of
 * loaded nodes showed Buffer#copy and subarray (a call into the runtime and a new object each)
 * costing more than the SHA-256 of the row, and a per-segment mark array (to log a slot only once)
 * cost a cache miss per row.
 */
class SegmentTable {
  /** Hashes by partition number (partitions are few and numbered from 0). */
  private readonly parts: Array<Buffer | undefined> = [];
  private readonly dirty = new Set<number>();
  /** Partitions the current transaction made dirty (they were clean before it). */
  private newlyDirty: number[] = [];
  /** The current transaction's changes, in order, as (partition, segment) pairs… */
  private log: number[] = [];
  /** …and the delta each XORed in, 16 bytes per change. */
  private deltas = new Uint8Array(64 * 16);
  /** Reused for the journal row's blob. */
  private deltaScratch = Buffer.alloc(64 * SEGMENT_RECORD);

  constructor(
    private readonly partitionBytes: (partition: number) => Buffer,
    replayed: number[],
  ) {
    for (const p of replayed) this.dirty.add(p);
  }

  /** XORs `h` (16 bytes) into a segment. */
  xor(partition: number, segment: number, h: Uint8Array): void {
    const buf = this.part(partition);
    const off = segment * 16;
    const at = this.logChange(partition, segment);
    const deltas = this.deltas;
    for (let i = 0; i < 16; i++) {
      const d = h[i]!;
      buf[off + i] = buf[off + i]! ^ d;
      deltas[at + i] = d;
    }
  }

  /** Sets a segment's hash to `h` (16 bytes). */
  set(partition: number, segment: number, h: Uint8Array): void {
    const buf = this.part(partition);
    const off = segment * 16;
    const at = this.logChange(partition, segment);
    const deltas = this.deltas;
    for (let i = 0; i < 16; i++) {
      deltas[at + i] = buf[off + i]! ^ h[i]!;
      buf[off + i] = h[i]!;
    }
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  /**
   * The current transaction's deltas: the journal row's blob. A view of a reused buffer, valid
   * until the next call (SQLite copies it when it binds it).
   */
  packDeltas(): Buffer {
    const bytes = (this.log.length / 2) * SEGMENT_RECORD;
    if (bytes > this.deltaScratch.length) this.deltaScratch = Buffer.alloc(Math.max(bytes, 2 * this.deltaScratch.length));
    const out = this.deltaScratch.subarray(0, bytes);
    const log = this.log;
    const deltas = this.deltas;
    // One 24-byte record per logged change: u32 partition, u32 segment (big-endian), the delta.
    for (let i = 0; i < log.length / 2; i++) {
      const at = i * SEGMENT_RECORD;
      writeU32BE(out, at, log[2 * i]!);
      writeU32BE(out, at + 4, log[2 * i + 1]!);
      for (let j = 0; j < 16; j++) out[at + 8 + j] = deltas[i * 16 + j]!;
    }
    return out;
  }

  /** Writes every partition with a segment changed since the last checkpoint through `write`. */
  checkpoint(write: (partition: number, hashes: Buffer) => void): void {
    for (const p of this.dirty) write(p, this.part(p));
  }

  /** The transaction committed; `checkpointed`: its checkpoint too. */
  commit(checkpointed: boolean): void {
    this.endTransaction();
    if (checkpointed) this.dirty.clear();
  }

  rollback(): void {
    const log = this.log;
    for (let i = 0; i < log.length / 2; i++) {
      const buf = this.part(log[2 * i]!);
      const off = log[2 * i + 1]! * 16;
      for (let j = 0; j < 16; j++) buf[off + j] = buf[off + j]! ^ this.deltas[i * 16 + j]!;
    }
    for (const p of this.newlyDirty) this.dirty.delete(p);
    this.endTransaction();
  }

  private endTransaction(): void {
    this.log = [];
    this.newlyDirty = [];
  }

  private part(partition: number): Buffer {
    let hashes = this.parts[partition];
    if (hashes === undefined) {
      hashes = this.partitionBytes(partition);
      this.parts[partition] = hashes;
    }
    return hashes;
  }

  /** Appends a change to the log; returns where its delta goes in `deltas`. */
  private logChange(partition: number, segment: number): number {
    const at = (this.log.length / 2) * 16;
    if (at + 16 > this.deltas.length) {
      const grown = new Uint8Array(this.deltas.length * 2);
      grown.set(this.deltas);
      this.deltas = grown;
    }
    this.log.push(partition, segment);
    if (!this.dirty.has(partition)) {
      this.dirty.add(partition);
      this.newlyDirty.push(partition);
    }
    return at;
  }
}

function writeU32BE(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

// Kinds of change in Committer.rowOps.
const INSERTED = 0;
const DELETED = 1;
const MOVED = 2;

/**
 * The write transactions on one connection (which must be in WAL mode). Every method is
 * synchronous and atomic: it commits, or it rolls back (the segment hashes included) and throws
 * the SQLite error.
 */
export class Committer {
  private readonly segments: SegmentTable;
  private lastCheckpoint = Date.now();
  private readonly tx: Database.Transaction<(rows: CommitRow[]) => boolean>;
  private readonly hintTx: Database.Transaction<(upserts: HintRow[], deletes: number[]) => void>;
  private readonly forgetTx: Database.Transaction<(before: number) => string[]>;
  private readonly segTx: Database.Transaction<(partition: number, hashes: Uint8Array[]) => void>;
  private readonly checkpointTx: Database.Transaction<() => void>;
  private readonly rows: PartitionRows;
  /**
   * What the current transaction did to rows' partitions, 5 numbers per change (INSERTED, DELETED
   * or MOVED; partition; rowid; segment; new partition, for MOVED): told to `rows` once it has
   * committed.
   */
  private readonly rowOps: number[] = [];

  constructor(
    private readonly db: Database.Database,
    cfg: CommitterConfig,
  ) {
    const segments = new SegmentTable(cfg.partition, cfg.replayed);
    this.segments = segments;
    this.rows = cfg.rows;
    const rowOps = this.rowOps;
    const old = db.prepare<[string], { id: number; partition: number; segment: number; khash: Buffer | null }>(
      'SELECT rowid AS id, partition, segment, khash FROM objects WHERE key = ?',
    );
    // A row that stays in its partition (always, while the partition count is fixed) is updated in
    // place by rowid, which the lookup above found: the upsert would look the key up again.
    const updateInPlace = db.prepare<[number, number, number, Uint8Array | null, Uint8Array, number]>(
      'UPDATE objects SET segment = ?, live = ?, since = ?, khash = ?, obj = ? WHERE rowid = ?',
    );
    const columns = '(key, partition, segment, live, since, khash, obj) VALUES (?, ?, ?, ?, ?, ?, ?)';
    type Params = [string, number, number, number, number, Uint8Array | null, Uint8Array];
    const upsert = db.prepare<Params>(
      `INSERT INTO objects ${columns}
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, segment = excluded.segment, live = excluded.live,
         since = excluded.since, khash = excluded.khash, obj = excluded.obj`,
    );
    const insert = db.prepare<Params>(`INSERT INTO objects ${columns}`);
    /** Inserts a row the staging layer believes new; false (nothing done) when one exists after all. */
    const insertFresh = (row: Params): boolean => {
      try {
        rowOps.push(INSERTED, row[1], Number(insert.run(...row).lastInsertRowid), row[2], 0);
        return true;
      } catch (err) {
        // A failed statement leaves the transaction open; the caller takes the careful path.
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
        throw err;
      }
    };
    const remove = db.prepare<[string]>('DELETE FROM objects WHERE key = ?');
    const reap = db.prepare<[string, number, number, Uint8Array | null, Uint8Array, number]>(
      `INSERT INTO reaped (key, partition, segment, khash, obj, reaped_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, segment = excluded.segment, khash = excluded.khash,
         obj = excluded.obj, reaped_at = excluded.reaped_at`,
    );
    const unreap = db.prepare<[string]>('DELETE FROM reaped WHERE key = ?');
    const writeSegment = db.prepare<[number, Buffer]>(
      'INSERT INTO segments (partition, hashes) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET hashes = excluded.hashes',
    );
    const journal = db.prepare<[Buffer]>('INSERT INTO segment_journal (deltas) VALUES (?)');
    const clearJournal = db.prepare('DELETE FROM segment_journal');
    /** Writes the dirty segments and empties the journal they now cover (inside a transaction). */
    const writeCheckpoint = (): void => {
      segments.checkpoint((p, h) => writeSegment.run(p, h));
      clearJournal.run();
    };

    const hashing = cfg.segments !== 0;
    const khashOut = Buffer.alloc(16);
    this.tx = db.transaction((rows: CommitRow[]): boolean => {
      for (const [key, partition, live, obj, segment, since, flags] of rows) {
        // The one cost of keeping segment hashes per write. `khash` is reused for every row:
        // SQLite copies it when it binds it.
        const khash = hashing ? contributionInto(key, obj, khashOut) : null;
        if (flags & FRESH && !(flags & REAP) && insertFresh([key, partition, segment, live, since, khash, obj])) {
          if (khash !== null) segments.xor(partition, segment, khash);
          if (flags & UNREAP) unreap.run(key);
          continue;
        }
        // The row's old contribution comes from the row itself, so the hashes always equal the
        // XOR of the stored rows, whatever the staging layer believed.
        const was = old.get(key);
        if (was !== undefined && was.khash !== null) segments.xor(was.partition, was.segment, was.khash);
        if (flags & REAP) {
          if (was !== undefined) rowOps.push(DELETED, was.partition, was.id, 0, 0);
          remove.run(key);
          reap.run(key, partition, segment, khash, obj, since);
        } else {
          if (was !== undefined && was.partition === partition) updateInPlace.run(segment, live, since, khash, obj, was.id);
          else {
            const rowid = Number(upsert.run(key, partition, segment, live, since, khash, obj).lastInsertRowid);
            // ON CONFLICT DO UPDATE keeps the row (and its rowid) but moves it to `partition`.
            if (was === undefined) rowOps.push(INSERTED, partition, rowid, segment, 0);
            else rowOps.push(MOVED, was.partition, was.id, segment, partition);
          }
          if (khash !== null) segments.xor(partition, segment, khash);
          if (flags & UNREAP) unreap.run(key);
        }
      }
      const due = Date.now() - this.lastCheckpoint >= CHECKPOINT_MS;
      if (due) writeCheckpoint();
      else if (hashing) journal.run(segments.packDeltas());
      return due;
    });
    const putHint = db.prepare<HintRow>(
      `INSERT INTO hints (id, target, key, partition, version, created_at, obj) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, obj = excluded.obj`,
    );
    const delHint = db.prepare<[number]>('DELETE FROM hints WHERE id = ?');
    this.hintTx = db.transaction((upserts: HintRow[], deletes: number[]) => {
      for (const row of upserts) putHint.run(...row);
      for (const id of deletes) delHint.run(id);
    });
    const forgetStmt = db.prepare<[number], string>('DELETE FROM reaped WHERE reaped_at < ? RETURNING key').pluck();
    this.forgetTx = db.transaction((before: number) => forgetStmt.all(before));
    this.segTx = db.transaction((partition: number, hashes: Uint8Array[]) => {
      hashes.forEach((h, i) => segments.set(partition, i, h));
      writeCheckpoint();
    });
    this.checkpointTx = db.transaction(writeCheckpoint);
  }

  /** Commits a batch of object writes. */
  commit(rows: CommitRow[]): void {
    this.run(() => this.tx.immediate(rows));
  }

  /** Writes and deletes hint rows. */
  commitHints(upserts: HintRow[], deletes: number[]): void {
    this.run(() => (this.hintTx.immediate(upserts, deletes), false));
  }

  /** Deletes the reaped records made before `before`; returns their keys. */
  forget(before: number): string[] {
    let keys: string[] = [];
    this.run(() => ((keys = this.forgetTx.immediate(before)), false));
    return keys;
  }

  /** Replaces one partition's segment hashes (after a failed check), and checkpoints. */
  replaceSegments(partition: number, hashes: Uint8Array[]): void {
    this.run(() => (this.segTx.immediate(partition, hashes), true));
  }

  /** Writes the segment hashes' checkpoint now (emptying the journal), if anything is dirty. */
  checkpoint(): void {
    if (this.segments.dirtyCount === 0) return; // nothing dirty: the journal is empty too
    this.run(() => (this.checkpointTx.immediate(), true));
  }

  /**
   * Runs one transaction (BEGIN IMMEDIATE, so the write lock is taken up front) that returns
   * whether it wrote the segment checkpoint; keeps the segment table in step with its outcome.
   */
  private run(transaction: () => boolean): void {
    let checkpointed: boolean;
    try {
      checkpointed = transaction();
    } catch (err) {
      // better-sqlite3 rolled the transaction back; take its segment changes back too.
      this.segments.rollback();
      this.rowOps.length = 0;
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // The original failure is the one worth reporting.
        }
      }
      throw err;
    }
    if (checkpointed) this.lastCheckpoint = Date.now();
    this.segments.commit(checkpointed);
    const ops = this.rowOps;
    for (let i = 0; i < ops.length; i += 5) {
      if (ops[i] === INSERTED) this.rows.inserted(ops[i + 1]!, ops[i + 2]!, ops[i + 3]!);
      else if (ops[i] === DELETED) this.rows.deleted(ops[i + 1]!, ops[i + 2]!);
      else this.rows.moved(ops[i + 1]!, ops[i + 4]!, ops[i + 2]!, ops[i + 3]!);
    }
    ops.length = 0;
  }
}
