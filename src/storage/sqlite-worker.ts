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

export type CommitRow = [key: string, partition: number, live: 0 | 1, obj: Uint8Array];

export type HintRow = [id: number, target: string, key: string, partition: number, version: number, createdAt: number, obj: Uint8Array];

export type ToWorker =
  | { t: 'commit'; id: number; rows: CommitRow[] }
  | { t: 'hints'; id: number; upserts: HintRow[]; deletes: number[] }
  | { t: 'close' };

export type FromWorker =
  | { t: 'done'; id: number }
  | { t: 'failed'; id: number; code: string; message: string }
  | { t: 'fatal'; code: string; message: string };

function describe(err: unknown): { code: string; message: string } {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  return { code, message: err instanceof Error ? err.message : String(err) };
}

function run(port: NonNullable<typeof parentPort>, cfg: CommitWorkerConfig): void {
  const send = (msg: FromWorker): void => port.postMessage(msg);
  let db: Database.Database;
  let commit: (rows: CommitRow[]) => void;
  let commitHints: (upserts: HintRow[], deletes: number[]) => void;
  try {
    db = new Database(cfg.file, { timeout: cfg.busyTimeoutMs });
    // WAL is a property of the file (the main thread set it); asking again is cheap and checks it.
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be enabled`);
    db.pragma(`synchronous = ${cfg.synchronous}`);
    // SQLite's automatic checkpoint (every ~1000 WAL pages) stays on here, so checkpoints run
    // inside this thread's commits, off the main thread.
    if (cfg.maxPageCount > 0) db.pragma(`max_page_count = ${cfg.maxPageCount}`);
    const upsert = db.prepare<[string, number, number, Uint8Array]>(
      `INSERT INTO objects (key, partition, live, obj) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, live = excluded.live, obj = excluded.obj`,
    );
    const tx = db.transaction((rows: CommitRow[]) => {
      for (const [key, partition, live, obj] of rows) upsert.run(key, partition, live, obj);
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
  } catch (err) {
    send({ t: 'fatal', ...describe(err) });
    port.close();
    return;
  }

  port.on('message', (msg: ToWorker) => {
    if (msg.t === 'commit' || msg.t === 'hints') {
      try {
        // Each rolls back by itself when a statement or the COMMIT fails.
        if (msg.t === 'commit') commit(msg.rows);
        else commitHints(msg.upserts, msg.deletes);
      } catch (err) {
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
      send({ t: 'done', id: msg.id });
    } else if (msg.t === 'close') {
      try {
        db.close();
      } finally {
        port.close(); // nothing else keeps this thread alive: it exits
      }
    }
  });
}

if (parentPort !== null) run(parentPort, workerData as CommitWorkerConfig);
