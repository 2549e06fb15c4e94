// The commit side of SqliteStorage, on a worker thread with its own connection to the same file.
//
// Committing a group of writes is mostly waiting for fsync (synchronous=FULL), and better-sqlite3
// waits synchronously; on the main thread that wait blocked the event loop (the core benchmark
// measured ~63% of a node's wall time inside commits). Here it blocks only this thread. The main
// thread keeps its own connection for reads and metadata and sends one batch at a time.
//
// This file must not import from the rest of Nexus (better-sqlite3 and Node only): under vitest
// the main thread runs the TypeScript sources, but a worker is a plain Node thread that cannot load
// .ts, so it always runs the compiled dist/src/storage/sqlite-worker.js (see `commitWorkerUrl` in
// sqlite.ts), which must be valid on its own. Other modules may import from it (its constants and
// `contribution`); loading it outside a worker thread runs nothing.
//
// Protocol (requests carry an id; each is answered, in order, with the same id):
//   main → worker  { t: 'commit', id, rows }  rows (see CommitRow), the bytes being views into one
//                                         transferred ArrayBuffer
//                  { t: 'hints', id, upserts, deletes }  hint rows to write and hint ids to delete
//                  { t: 'forget', id, before }  delete old reaped records (answered with their keys)
//                  { t: 'segments', id, partition, hashes }  replace one partition's segment hashes
//                  { t: 'checkpoint', id }  write the segment hashes' checkpoint now
//                  { t: 'close' }         checkpoint the segment hashes, close, and exit
//   worker → main  { t: 'done', id }      the batch is committed, durable per the synchronous
//                                         setting, and visible to any read transaction begun after
//                  { t: 'failed', id, ... }  rolled back; code/message of the SQLite error
//                  { t: 'fatal', ... }    the connection could not be opened; the worker exits

// Segment hashes. Each row stores its contribution (`khash`) in its own transaction, and the
// per-segment XORs live in memory here. Writing the touched segments with every commit dirtied
// about one extra page per row (rows of a batch fall in random segments; the anti-entropy
// benchmark measured a third of put throughput), so instead each commit appends one journal row:
// the XOR delta of every segment it changed, packed in a blob. The `segments` table is a
// checkpoint — one blob per partition, rewritten for the partitions with dirty segments inside a
// commit at most every CHECKPOINT_MS and at close — and each checkpoint empties the journal. At
// open the main thread replays the journal onto the checkpoint (work proportional to the commits
// since it, never a rescan; `recoverSegments` in sqlite-schema.ts) and hands the result to this
// thread, whose first checkpoint writes it.

import Database from 'better-sqlite3';
import { createHash, hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

export interface CommitWorkerConfig {
  file: string;
  synchronous: 'FULL' | 'NORMAL';
  /** PRAGMA max_page_count, or 0 for none. */
  maxPageCount: number;
  busyTimeoutMs: number;
  /** Segments per partition; 0 = keep no segment hashes. */
  segments: number;
  /** The committed segment hashes per partition (checkpoint + journal, recovered by the main thread). */
  hashes: Array<[partition: number, hashes: Uint8Array]>;
  /** Partitions the journal changed since the checkpoint: written at the first checkpoint. */
  replayed: number[];
}

/**
 * What `key` holding the object encoded as `obj` contributes to its segment: sha256 over
 * len(key) ‖ key ‖ obj, cut to 16 bytes. Must equal `keyEncodedHash` in antientropy/segments.ts
 * (this file cannot import it; test/unit/antientropy.test.ts holds the two equal).
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
/** The main thread believes no row exists: try a plain INSERT, with no read of the old row. */
export const FRESH = 4;

export type HintRow = [id: number, target: string, key: string, partition: number, version: number, createdAt: number, obj: Uint8Array];

export type ToWorker =
  | { t: 'commit'; id: number; rows: CommitRow[] }
  | { t: 'hints'; id: number; upserts: HintRow[]; deletes: number[] }
  | { t: 'forget'; id: number; before: number }
  | { t: 'segments'; id: number; partition: number; hashes: Uint8Array[] }
  | { t: 'checkpoint'; id: number }
  | { t: 'close' };

export type FromWorker =
  // `segs`: the new hash of every segment the request changed, packed as (u32 partition,
  // u32 segment, 16-byte hash) records, so the main thread's copy follows the committed state.
  | { t: 'done'; id: number; keys?: string[]; segs?: Uint8Array }
  | { t: 'failed'; id: number; code: string; message: string }
  | { t: 'fatal'; code: string; message: string };

/** Bytes per journal or `segs` record: u32 partition, u32 segment, 16-byte hash or delta. */
export const SEGMENT_RECORD = 24;

/** Longest time between segment checkpoints (while commits keep coming). */
const CHECKPOINT_MS = 10_000;

/**
 * The segment hashes of the committed rows, in memory: one buffer of segments × 16 bytes per
 * partition (few large objects, so little for the garbage collector to walk). `dirty` holds the
 * partitions changed since the last checkpoint.
 *
 * The current transaction's changes are logged in order as (partition, segment, 16-byte XOR
 * delta), one entry per change: a slot changed twice is logged twice. XOR makes that enough for
 * everything: replaying the deltas (the journal, at open) or XORing them out again (rollback, in
 * any order) gives the right bytes, and the slots to report to the main thread are the logged ones.
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
    private readonly segments: number,
    initial: Array<[partition: number, hashes: Uint8Array]>,
    replayed: number[],
  ) {
    if (segments === 0) return;
    for (const [p, h] of initial) if (h.length === segments * 16) this.part(p).set(h);
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
   * The slots the current transaction changed, with their new hashes (see FromWorker `segs`), in
   * a buffer of its own: it is transferred to the main thread, not copied. (A fresh Uint8Array
   * owns its whole ArrayBuffer, which a pooled Buffer would not.) A slot changed twice appears
   * twice, both times with its final hash.
   */
  packChanged(): Uint8Array | undefined {
    if (this.log.length === 0) return undefined;
    return this.pack(new Uint8Array((this.log.length / 2) * SEGMENT_RECORD), false);
  }

  /**
   * The current transaction's deltas: the journal row's blob. A view of a reused buffer, valid
   * until the next call (SQLite copies it when it binds it).
   */
  packDeltas(): Buffer {
    const bytes = (this.log.length / 2) * SEGMENT_RECORD;
    if (bytes > this.deltaScratch.length) this.deltaScratch = Buffer.alloc(Math.max(bytes, 2 * this.deltaScratch.length));
    const out = this.deltaScratch.subarray(0, bytes);
    this.pack(out, true);
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

  /**
   * One 24-byte record per logged change into `out`: u32 partition, u32 segment (big-endian), then
   * with `delta` the change's delta, otherwise the slot's current hash.
   */
  private pack<T extends Uint8Array>(out: T, delta: boolean): T {
    const log = this.log;
    const deltas = this.deltas;
    for (let i = 0; i < log.length / 2; i++) {
      const p = log[2 * i]!;
      const seg = log[2 * i + 1]!;
      const at = i * SEGMENT_RECORD;
      writeU32BE(out, at, p);
      writeU32BE(out, at + 4, seg);
      if (delta) for (let j = 0; j < 16; j++) out[at + 8 + j] = deltas[i * 16 + j]!;
      else {
        const cur = this.part(p);
        const from = seg * 16;
        for (let j = 0; j < 16; j++) out[at + 8 + j] = cur[from + j]!;
      }
    }
    return out;
  }

  private part(partition: number): Buffer {
    let hashes = this.parts[partition];
    if (hashes === undefined) {
      hashes = Buffer.alloc(this.segments * 16);
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

function describe(err: unknown): { code: string; message: string } {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  return { code, message: err instanceof Error ? err.message : String(err) };
}

function run(port: NonNullable<typeof parentPort>, cfg: CommitWorkerConfig): void {
  const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
  let db: Database.Database;
  let commit: (rows: CommitRow[]) => boolean;
  let commitHints: (upserts: HintRow[], deletes: number[]) => void;
  let forget: (before: number) => string[];
  let replaceSegments: (partition: number, hashes: Uint8Array[]) => void;
  let checkpointNow: () => void;
  let segments: SegmentTable;
  try {
    db = new Database(cfg.file, { timeout: cfg.busyTimeoutMs });
    // WAL is a property of the file (the main thread set it); asking again is cheap and checks it.
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be enabled`);
    db.pragma(`synchronous = ${cfg.synchronous}`);
    // SQLite's automatic checkpoint (every ~1000 WAL pages) stays on here, so checkpoints run
    // inside this thread's commits, off the main thread.
    if (cfg.maxPageCount > 0) db.pragma(`max_page_count = ${cfg.maxPageCount}`);
    // The main thread read the checkpoint and replayed the journal; the first checkpoint here
    // writes the replayed partitions and empties the journal.
    segments = new SegmentTable(cfg.segments, cfg.hashes, cfg.replayed);
    let lastCheckpoint = Date.now();

    const old = db.prepare<[string], { partition: number; segment: number; khash: Buffer | null }>(
      'SELECT partition, segment, khash FROM objects WHERE key = ?',
    );
    const columns = '(key, partition, segment, live, since, khash, obj) VALUES (?, ?, ?, ?, ?, ?, ?)';
    type Params = [string, number, number, number, number, Uint8Array | null, Uint8Array];
    const upsert = db.prepare<Params>(
      `INSERT INTO objects ${columns}
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, segment = excluded.segment, live = excluded.live,
         since = excluded.since, khash = excluded.khash, obj = excluded.obj`,
    );
    const insert = db.prepare<Params>(`INSERT INTO objects ${columns}`);
    /** Inserts a row the main thread believes new; false (nothing done) when one exists after all. */
    const insertFresh = (row: Params): boolean => {
      try {
        insert.run(...row);
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
    const tx = db.transaction((rows: CommitRow[]): boolean => {
      for (const [key, partition, live, obj, segment, since, flags] of rows) {
        // Hashed here, off the main thread: the one cost of keeping segment hashes per write.
        // `khash` is reused for every row: SQLite copies it when it binds it.
        const khash = hashing ? contributionInto(key, obj, khashOut) : null;
        if (flags & FRESH && !(flags & REAP) && insertFresh([key, partition, segment, live, since, khash, obj])) {
          if (khash !== null) segments.xor(partition, segment, khash);
          if (flags & UNREAP) unreap.run(key);
          continue;
        }
        // The row's old contribution comes from the row itself, so the hashes always equal the
        // XOR of the stored rows, whatever the main thread believed.
        const was = old.get(key);
        if (was !== undefined && was.khash !== null) segments.xor(was.partition, was.segment, was.khash);
        if (flags & REAP) {
          remove.run(key);
          reap.run(key, partition, segment, khash, obj, since);
        } else {
          upsert.run(key, partition, segment, live, since, khash, obj);
          if (khash !== null) segments.xor(partition, segment, khash);
          if (flags & UNREAP) unreap.run(key);
        }
      }
      const due = Date.now() - lastCheckpoint >= CHECKPOINT_MS;
      if (due) writeCheckpoint();
      else if (hashing) journal.run(segments.packDeltas());
      return due;
    });
    // BEGIN IMMEDIATE: take the write lock up front (waiting up to the busy timeout if the main
    // connection is writing metadata) rather than upgrading a read transaction mid-way.
    commit = (rows) => {
      const checkpointed = tx.immediate(rows);
      if (checkpointed) lastCheckpoint = Date.now();
      return checkpointed;
    };
    checkpointNow = () => {
      if (segments.dirtyCount === 0) return; // nothing dirty: the journal is empty too
      db.transaction(writeCheckpoint).immediate();
      lastCheckpoint = Date.now();
    };
    const putHint = db.prepare<HintRow>(
      `INSERT INTO hints (id, target, key, partition, version, created_at, obj) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, obj = excluded.obj`,
    );
    const delHint = db.prepare<[number]>('DELETE FROM hints WHERE id = ?');
    const hintTx = db.transaction((upserts: HintRow[], deletes: number[]) => {
      for (const row of upserts) putHint.run(...row);
      for (const id of deletes) delHint.run(id);
    });
    commitHints = (upserts, deletes) => hintTx.immediate(upserts, deletes);
    const forgetStmt = db.prepare<[number], string>('DELETE FROM reaped WHERE reaped_at < ? RETURNING key').pluck();
    forget = (before) => db.transaction(() => forgetStmt.all(before)).immediate();
    const segTx = db.transaction((partition: number, hashes: Uint8Array[]) => {
      hashes.forEach((h, i) => segments.set(partition, i, h));
      writeCheckpoint();
    });
    replaceSegments = (partition, hashes) => segTx.immediate(partition, hashes);
  } catch (err) {
    send({ t: 'fatal', ...describe(err) });
    port.close();
    return;
  }

  port.on('message', (msg: ToWorker) => {
    if (msg.t === 'close') {
      try {
        checkpointNow(); // a clean stop leaves no journal to replay
        segments.commit(true);
      } catch {
        segments.rollback(); // the journal stays valid: the next open replays it
      }
      try {
        db.close();
      } finally {
        port.close(); // nothing else keeps this thread alive: it exits
      }
      return;
    }
    let keys: string[] | undefined;
    let segs: Uint8Array | undefined;
    let checkpointed = false;
    try {
      // Each rolls back by itself when a statement or the COMMIT fails.
      if (msg.t === 'commit') checkpointed = commit(msg.rows);
      else if (msg.t === 'hints') commitHints(msg.upserts, msg.deletes);
      else if (msg.t === 'forget') keys = forget(msg.before);
      else if (msg.t === 'checkpoint') {
        checkpointNow();
        checkpointed = true;
      } else {
        replaceSegments(msg.partition, msg.hashes);
        checkpointed = true;
      }
      segs = segments.packChanged();
      segments.commit(checkpointed);
    } catch (err) {
      segments.rollback();
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The original failure is the one worth reporting.
        }
      }
      send({ t: 'failed', id: msg.id, ...describe(err) });
      return;
    }
    const done: FromWorker = { t: 'done', id: msg.id };
    if (keys !== undefined) done.keys = keys;
    if (segs !== undefined) done.segs = segs;
    send(done, segs !== undefined ? [segs.buffer as ArrayBuffer] : []);
  });
}

if (parentPort !== null) run(parentPort, workerData as CommitWorkerConfig);
