// The WAL checkpointer of SqliteStorage, on a worker thread with its own connection to the file.
//
// A checkpoint copies the pages of the WAL back into the database file and syncs both; run by
// SQLite's automatic checkpoint it would happen inside some COMMIT on the main thread and stall
// the event loop for its fsyncs (every ~1000 WAL pages). So the main connection's automatic
// checkpoint is off, and the main thread asks this thread for a PASSIVE checkpoint every few
// commits instead: it never blocks the writer (it copies what no reader still needs, and the next
// checkpoint takes the rest). The TRUNCATE checkpoint at close stays on the main thread.
//
// This file must not import from the rest of Nexus (better-sqlite3 and Node only): under vitest
// the main thread runs the TypeScript sources, but a worker is a plain Node thread that cannot load
// .ts, so it always runs the compiled dist/src/storage/sqlite-checkpointer.js (see
// `checkpointerUrl` in sqlite.ts), which must be valid on its own.
//
// Protocol: main → worker { t: 'checkpoint' } or { t: 'close' } (close the connection and exit);
//           worker → main { t: 'done', log, checkpointed } (WAL frames, and how many are now in
//           the database file) or { t: 'failed', message } after each checkpoint, or
//           { t: 'fatal', message } when the connection cannot be opened (the worker exits).

import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointerConfig {
  file: string;
  busyTimeoutMs: number;
}

export type ToCheckpointer = { t: 'checkpoint' } | { t: 'close' };
export type FromCheckpointer =
  | { t: 'done'; log: number; checkpointed: number }
  | { t: 'failed'; message: string }
  | { t: 'fatal'; message: string };

function run(port: NonNullable<typeof parentPort>, cfg: CheckpointerConfig): void {
  const send = (msg: FromCheckpointer): void => port.postMessage(msg);
  const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  let db: Database.Database;
  try {
    db = new Database(cfg.file, { timeout: cfg.busyTimeoutMs });
    // A checkpoint syncs the WAL before copying it and the database file after, unless synchronous
    // is OFF; FULL keeps those syncs (the main connection's syncs are its own business).
    db.pragma('synchronous = FULL');
    db.pragma('wal_autocheckpoint = 0');
  } catch (err) {
    send({ t: 'fatal', message: message(err) });
    port.close();
    return;
  }
  port.on('message', (msg: ToCheckpointer) => {
    if (msg.t === 'close') {
      try {
        db.close();
      } finally {
        port.close(); // nothing else keeps this thread alive: it exits
      }
      return;
    }
    try {
      const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
      send({ t: 'done', log: row?.log ?? 0, checkpointed: row?.checkpointed ?? 0 });
    } catch (err) {
      send({ t: 'failed', message: message(err) });
    }
  });
}

if (parentPort !== null) run(parentPort, workerData as CheckpointerConfig);
