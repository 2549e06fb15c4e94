// The commit side of SqliteStorage, on a worker thread with its own connection to the same file.
//
// Committing a group of writes is mostly waiting for fsync (synchronous=FULL), and better-sqlite3
// waits synchronously; on the main thread that wait blocked the event loop (the core benchmark
// measured ~63% of a node's wall time inside commits). Here it blocks only this thread. The main
// thread keeps its own connection for reads and metadata and sends one batch at a time.
//
// This file must stay self-contained (better-sqlite3 and Node only, no imports from the rest of
// Nexus): under vitest the main thread runs the TypeScript sources, but a worker is a plain Node
// thread that cannot load .ts, so it always runs the compiled dist/src/storage/sqlite-worker.js
// (see `commitWorkerUrl` in sqlite.ts). Keeping it free of imports keeps that compiled copy valid
// on its own. Only types are shared, and `import type` leaves nothing behind at run time.
//
// Protocol (requests carry an id; each is answered, in order, with the same id):
//   main → worker  { t: 'commit', id, rows }  rows = [key, partition, live, objBytes][], the bytes
//                                         being views into one transferred ArrayBuffer
//                  { t: 'hints', id, upserts, deletes }  hint rows to write and hint ids to delete
//                  { t: 'close' }         close the connection and exit
//   worker → main  { t: 'done', id }      the batch is committed, durable per the synchronous
//                                         setting, and visible to any read transaction begun after
//                  { t: 'failed', id, ... }  rolled back; code/message of the SQLite error
//                  { t: 'fatal', ... }    the connection could not be opened; the worker exits

import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

export interface CommitWorkerConfig {
  file: string;
  synchronous: 'FULL' | 'NORMAL';
  /** PRAGMA max_page_count, or 0 for none. */
  maxPageCount: number;
  busyTimeoutMs: number;
}

/**
 * One staged write. `khash` is what the new state contributes to segment `segment` of its
 * partition (null when segment hashes are off); `since` is when it was staged. With REAP the row
 * is removed instead and `obj`/`khash` describe the collected tombstone, remembered in `reaped`;
 * with UNREAP the key's reaped record is deleted (the key was written again).
 */
export type CommitRow = [
  key: string,
  partition: number,
  live: 0 | 1,
  obj: Uint8Array,
  segment: number,
  khash: Uint8Array | null,
  since: number,
  flags: number,
];
export const REAP = 1;
export const UNREAP = 2;

export type HintRow = [id: number, target: string, key: string, partition: number, version: number, createdAt: number, obj: Uint8Array];

export type ToWorker =
  | { t: 'commit'; id: number; rows: CommitRow[] }
  | { t: 'hints'; id: number; upserts: HintRow[]; deletes: number[] }
  | { t: 'forget'; id: number; before: number }
  | { t: 'segments'; id: number; partition: number; hashes: Uint8Array[] }
  | { t: 'close' };

export type FromWorker =
  | { t: 'done'; id: number; keys?: string[] }
  | { t: 'failed'; id: number; code: string; message: string }
  | { t: 'fatal'; code: string; message: string };

/** Segment numbers are below 2^20 (SEGMENTS_MAX), so this packs (partition, segment) in one number. */
const SEGMENT_SLOTS = 2 ** 20;

/**
 * The persisted segment hashes, mirrored in memory so a commit updates them without reading the
 * table: every row's old contribution is XORed out and its new one in, and each touched segment
 * is written back in the same transaction. A failed transaction restores what it touched.
 */
class SegmentTable {
  private readonly hashes = new Map<number, Buffer>();
  private touched = new Map<number, Buffer | undefined>();

  constructor(rows: Array<{ partition: number; segment: number; hash: Buffer }>) {
    for (const r of rows) this.hashes.set(r.partition * SEGMENT_SLOTS + r.segment, Buffer.from(r.hash));
  }

  xor(partition: number, segment: number, h: Uint8Array): void {
    const slot = partition * SEGMENT_SLOTS + segment;
    let cur = this.hashes.get(slot);
    if (!this.touched.has(slot)) this.touched.set(slot, cur === undefined ? undefined : Buffer.from(cur));
    if (cur === undefined) this.hashes.set(slot, (cur = Buffer.alloc(h.length)));
    for (let i = 0; i < h.length; i++) cur[i] = cur[i]! ^ h[i]!;
  }

  set(partition: number, segment: number, h: Uint8Array): void {
    const slot = partition * SEGMENT_SLOTS + segment;
    if (!this.touched.has(slot)) this.touched.set(slot, this.hashes.get(slot));
    this.hashes.set(slot, Buffer.from(h));
  }

  /** Writes every touched segment through `write` and forgets the undo list. */
  flush(write: (partition: number, segment: number, hash: Buffer) => void): void {
    for (const slot of this.touched.keys()) write(Math.floor(slot / SEGMENT_SLOTS), slot % SEGMENT_SLOTS, this.hashes.get(slot)!);
  }

  commit(): void {
    this.touched = new Map();
  }

  rollback(): void {
    for (const [slot, old] of this.touched) {
      if (old === undefined) this.hashes.delete(slot);
      else this.hashes.set(slot, old);
    }
    this.touched = new Map();
  }
}

function describe(err: unknown): { code: string; message: string } {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  return { code, message: err instanceof Error ? err.message : String(err) };
}

function run(port: NonNullable<typeof parentPort>, cfg: CommitWorkerConfig): void {
  const send = (msg: FromWorker): void => port.postMessage(msg);
  let db: Database.Database;
  let commit: (rows: CommitRow[]) => void;
  let commitHints: (upserts: HintRow[], deletes: number[]) => void;
  let forget: (before: number) => string[];
  let replaceSegments: (partition: number, hashes: Uint8Array[]) => void;
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
    segments = new SegmentTable(
      db.prepare<[], { partition: number; segment: number; hash: Buffer }>('SELECT partition, segment, hash FROM segments').all(),
    );
    const old = db.prepare<[string], { partition: number; segment: number; khash: Buffer | null }>(
      'SELECT partition, segment, khash FROM objects WHERE key = ?',
    );
    const upsert = db.prepare<[string, number, number, number, number, Uint8Array | null, Uint8Array]>(
      `INSERT INTO objects (key, partition, segment, live, since, khash, obj) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, segment = excluded.segment, live = excluded.live,
         since = excluded.since, khash = excluded.khash, obj = excluded.obj`,
    );
    const remove = db.prepare<[string]>('DELETE FROM objects WHERE key = ?');
    const reap = db.prepare<[string, number, number, Uint8Array | null, Uint8Array, number]>(
      `INSERT INTO reaped (key, partition, segment, khash, obj, reaped_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, segment = excluded.segment, khash = excluded.khash,
         obj = excluded.obj, reaped_at = excluded.reaped_at`,
    );
    const unreap = db.prepare<[string]>('DELETE FROM reaped WHERE key = ?');
    const writeSegment = db.prepare<[number, number, Buffer]>(
      'INSERT INTO segments (partition, segment, hash) VALUES (?, ?, ?) ON CONFLICT (partition, segment) DO UPDATE SET hash = excluded.hash',
    );
    const tx = db.transaction((rows: CommitRow[]) => {
      for (const [key, partition, live, obj, segment, khash, since, flags] of rows) {
        // The row's old contribution comes from the row itself, so the persisted hashes always
        // equal the XOR of the persisted rows, whatever the main thread believed.
        const was = old.get(key);
        const unchanged = !(flags & REAP) && was !== undefined && khash !== null && was.khash !== null && was.partition === partition && was.segment === segment && Buffer.from(khash).equals(was.khash);
        if (was !== undefined && was.khash !== null && !unchanged) segments.xor(was.partition, was.segment, was.khash);
        if (flags & REAP) {
          remove.run(key);
          reap.run(key, partition, segment, khash, obj, since);
        } else {
          upsert.run(key, partition, segment, live, since, khash, obj);
          if (khash !== null && !unchanged) segments.xor(partition, segment, khash);
          if (flags & UNREAP) unreap.run(key);
        }
      }
      segments.flush((p, s, h) => writeSegment.run(p, s, h));
    });
    // BEGIN IMMEDIATE: take the write lock up front (waiting up to the busy timeout if the main
    // connection is writing metadata) rather than upgrading a read transaction mid-way.
    commit = (rows) => tx.immediate(rows);
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
      segments.flush((p, s, h) => writeSegment.run(p, s, h));
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
        db.close();
      } finally {
        port.close(); // nothing else keeps this thread alive: it exits
      }
      return;
    }
    let keys: string[] | undefined;
    try {
      // Each rolls back by itself when a statement or the COMMIT fails.
      if (msg.t === 'commit') commit(msg.rows);
      else if (msg.t === 'hints') commitHints(msg.upserts, msg.deletes);
      else if (msg.t === 'forget') keys = forget(msg.before);
      else replaceSegments(msg.partition, msg.hashes);
      segments.commit();
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
    send(keys === undefined ? { t: 'done', id: msg.id } : { t: 'done', id: msg.id, keys });
  });
}

if (parentPort !== null) run(parentPort, workerData as CommitWorkerConfig);
