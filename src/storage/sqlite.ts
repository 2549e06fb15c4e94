// A node's data in one SQLite file (`<dir>/nexus.db`) through better-sqlite3, in WAL mode, over
// two connections:
//
// - the main thread's, for everything synchronous: reads (`get`, scans), metadata, opening and the
//   schema, and the TRUNCATE checkpoint at close;
// - a worker thread's (sqlite-worker.ts), which commits the group-commit batches. A commit is
//   mostly an fsync wait, and better-sqlite3 waits synchronously; on the main thread that stalled
//   the event loop for most of a node's time under load (bench/core.ts), so it happens there.
//
// One batch is in flight at a time (see staging.ts). WAL lets the main connection read while the
// worker writes; a worker commit is complete before its "done" message is posted, so every read
// begun after that message sees it. SQLite's automatic checkpoint runs in the worker's commits and
// is off on the main connection, which only writes metadata. Both connections wait (busy_timeout)
// rather than fail when they meet the other's write lock: a `setMeta` may block the main thread for
// at most the length of one worker commit.

import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeObject, type VersionedObject } from '../core/version.js';
import { HintMirror } from '../handoff/mirror.js';
import type { Hint, HintStore } from '../handoff/types.js';
import { SEGMENTS_DEFAULT, SegmentHashes, validateSegments } from '../antientropy/segments.js';
// Importing the worker module runs nothing here: it starts only on a worker thread.
import { FRESH, REAP, SEGMENT_RECORD, UNREAP, type CommitRow, type CommitWorkerConfig, type FromWorker, type HintRow, type ToWorker } from './sqlite-worker.js';
import { decodeStored, ensureSchema, recoverSegments } from './sqlite-schema.js';
import { StagedStorage, type StagedInit, type StagedWrite } from './staging.js';
import type { KeyHash, SqliteStorageOptions, Storage } from './types.js';

export const DB_FILE_NAME = 'nexus.db';

/** How long either connection waits for the other's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** How long close waits for the worker to close its connection and exit before terminating it. */
const WORKER_CLOSE_TIMEOUT_MS = 10_000;

/**
 * The worker script. Compiled, it is the sibling `sqlite-worker.js` (dist/src/storage/). Under
 * vitest this module runs from its TypeScript source, so `import.meta.url` is
 * src/storage/sqlite.ts and no .js sibling exists, and a worker thread is plain Node, which cannot
 * run the .ts; so then the compiled copy in the package's dist/ is used (`npm test` builds first;
 * the worker has no imports from Nexus, so that copy only depends on better-sqlite3).
 */
export function commitWorkerUrl(): URL {
  const sibling = new URL('./sqlite-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const built = new URL('../../dist/src/storage/sqlite-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`the storage worker script is missing (looked for ${fileURLToPath(sibling)} and ${fileURLToPath(built)}; run npm run build)`);
}

/** What the connection is actually running with, for health output and tests. */
export interface SqliteInfo {
  file: string;
  journalMode: string;
  synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
  pageSize: number;
  /** SQLite's cap on the file size in pages (huge unless `maxDataBytes` was set). */
  maxPageCount: number;
}

interface Statements {
  getObj: Database.Statement<[string], Buffer>;
  getLive: Database.Statement<[string], number>;
  scan: Database.Statement<[number], { key: string; obj: Buffer }>;
  keyHashes: Database.Statement<[number], { key: string; segment: number; khash: Buffer }>;
  tombstones: Database.Statement<[number, number, number], { key: string; obj: Buffer }>;
  getReaped: Database.Statement<[string], Buffer>;
  reapedHashes: Database.Statement<[number, number], { key: string; khash: Buffer | null }>;
  getMeta: Database.Statement<[string], string>;
  setMeta: Database.Statement<[string, string]>;
}

interface PendingCommit {
  count: number;
  resolve: (keys?: string[]) => void;
  reject: (err: NexusError) => void;
}

export class SqliteStorage extends StagedStorage implements Storage {
  /** Commits sent to the worker and not yet answered, by request id (answered in order). */
  private readonly pending = new Map<number, PendingCommit>();
  private nextRequest = 1;
  private hints: HintMirror | undefined;
  /** Set by the worker's 'exit' event. */
  private workerExited = false;
  /** Set when close stops the worker: its exit is then expected. */
  private stoppingWorker = false;
  /** The last error the worker reported (uncaught exception, or its connection failing to open). */
  private workerError: string | undefined;

  private constructor(
    private readonly db: Database.Database,
    private readonly worker: Worker,
    private readonly file: string,
    private readonly durability: SqliteStorageOptions['durability'],
    private readonly stmts: Statements,
    init: StagedInit,
  ) {
    super(init);
    // The worker keeps the process alive only while a commit is in flight (or close waits on it),
    // as the single connection did: an idle open storage never holds a process open.
    worker.unref();
    worker.on('message', (msg: FromWorker) => this.onWorkerMessage(msg));
    worker.on('messageerror', (err) => {
      this.workerError = `a message could not be read: ${err.message}`;
      void this.worker.terminate();
    });
    // Listening to 'error' is what keeps an exception in the worker from crashing this process.
    worker.on('error', (err: unknown) => {
      this.workerError = err instanceof Error ? err.message : String(err);
    });
    worker.on('exit', (code) => this.onWorkerExit(code));
  }

  /**
   * Opens (creating if missing) `<dir>/nexus.db`. Throws INVALID_ARGUMENT for bad options and
   * STORAGE_FAILED when the folder or file cannot be used or the file has another schema version.
   */
  static open(opts: SqliteStorageOptions): SqliteStorage {
    validateOptions(opts);
    const file = join(opts.dir, DB_FILE_NAME);
    let db: Database.Database;
    try {
      mkdirSync(opts.dir, { recursive: true });
      db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw storageFailure(err, `opening ${file}`);
    }
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be enabled`);
      const synchronous = opts.durability === 'fsync' ? 'FULL' : 'NORMAL';
      db.pragma(`synchronous = ${synchronous}`);
      // This connection only writes metadata; checkpoints belong to the worker's commits.
      db.pragma('wal_autocheckpoint = 0');
      const segments = opts.segments ?? SEGMENTS_DEFAULT;
      ensureSchema(db, file, segments, opts.now ?? Date.now);
      let maxPageCount = 0;
      if (opts.maxDataBytes !== undefined && opts.maxDataBytes > 0) {
        // A size cap in pages. It is per connection (not stored in the file), so it is set at every
        // open, on both connections; SQLite never sets it below the current size. Past it, writes
        // fail with SQLITE_FULL exactly as on a full disk, which is how tests simulate one. Set
        // after the schema exists so that even a tiny cap leaves a usable (if full) database.
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        maxPageCount = Math.max(1, Math.floor(opts.maxDataBytes / pageSize));
        db.pragma(`max_page_count = ${maxPageCount}`);
      }
      const stmts: Statements = {
        getObj: db.prepare<[string], Buffer>('SELECT obj FROM objects WHERE key = ?').pluck(),
        getLive: db.prepare<[string], number>('SELECT live FROM objects WHERE key = ?').pluck(),
        scan: db.prepare<[number], { key: string; obj: Buffer }>(
          'SELECT key, obj FROM objects WHERE partition = ? ORDER BY key',
        ),
        keyHashes: db.prepare<[number], { key: string; segment: number; khash: Buffer }>(
          'SELECT key, segment, khash FROM objects WHERE partition = ? AND khash IS NOT NULL',
        ),
        tombstones: db.prepare<[number, number, number], { key: string; obj: Buffer }>(
          'SELECT key, obj FROM objects WHERE partition = ? AND live = 0 AND since < ? LIMIT ?',
        ),
        getReaped: db.prepare<[string], Buffer>('SELECT obj FROM reaped WHERE key = ?').pluck(),
        reapedHashes: db.prepare<[number, number], { key: string; khash: Buffer | null }>(
          'SELECT key, khash FROM reaped WHERE partition = ? AND segment = ?',
        ),
        getMeta: db.prepare<[string], string>('SELECT value FROM meta WHERE name = ?').pluck(),
        setMeta: db.prepare<[string, string]>(
          'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        ),
      };
      // The one O(n) pass: from here on the count is maintained per put.
      const liveKeys = db.prepare<[], number>('SELECT count(*) FROM objects WHERE live = 1').pluck().get() ?? 0;
      const { hashes, replayed } = segments === 0 ? { hashes: new Map<number, SegmentHashes>(), replayed: [] } : recoverSegments(db, segments);
      const reapedKeys = new Set(db.prepare<[], string>('SELECT key FROM reaped').pluck().all());
      // Last, so nothing above can fail with a thread left running. The worker opens its
      // connection while this one starts serving; a batch sent meanwhile waits in its queue.
      const workerData: CommitWorkerConfig = {
        file,
        synchronous,
        maxPageCount,
        busyTimeoutMs: BUSY_TIMEOUT_MS,
        segments,
        // Copies: the worker owns its table; this thread's copy follows from the worker's replies.
        hashes: [...hashes].map(([p, h]) => [p, h.toBuffer().subarray(1)]),
        replayed,
      };
      const worker = new Worker(commitWorkerUrl(), { workerData, name: 'nexus-storage-commit' });
      const init: StagedInit = { liveKeys, segments, hashes, reapedKeys };
      if (opts.now !== undefined) init.now = opts.now;
      return new SqliteStorage(db, worker, file, opts.durability, stmts, init);
    } catch (err) {
      db.close();
      throw storageFailure(err, `opening ${file}`);
    }
  }

  getMeta(name: string): string | undefined {
    this.assertOpen();
    try {
      return this.stmts.getMeta.get(name);
    } catch (err) {
      throw storageFailure(err, `reading meta "${name}"`);
    }
  }

  /**
   * Commits on its own, independent of staged puts, and always with synchronous=FULL: under 'os'
   * durability the setting is raised for this one statement and restored after. (In WAL mode a
   * FULL commit fsyncs the WAL, so earlier NORMAL commits become durable with it; that is harmless.)
   */
  setMeta(name: string, value: string): void {
    this.assertOpen();
    const raise = this.durability !== 'fsync';
    try {
      if (raise) this.db.pragma('synchronous = FULL');
      try {
        this.stmts.setMeta.run(name, value);
      } finally {
        if (raise) this.db.pragma('synchronous = NORMAL');
      }
    } catch (err) {
      throw storageFailure(err, `writing meta "${name}"`);
    }
  }

  /** The connection's effective settings. Throws STOPPING after close. */
  info(): SqliteInfo {
    this.assertOpen();
    const sync = this.db.pragma('synchronous', { simple: true }) as number;
    return {
      file: this.file,
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[sync] ?? 'FULL',
      pageSize: this.db.pragma('page_size', { simple: true }) as number,
      maxPageCount: this.db.pragma('max_page_count', { simple: true }) as number,
    };
  }

  // ---- The committed side ----

  protected readCommitted(key: string): VersionedObject | undefined {
    let bytes: Buffer | undefined;
    try {
      bytes = this.stmts.getObj.get(key);
    } catch (err) {
      throw storageFailure(err, `reading key "${key}"`);
    }
    return bytes === undefined ? undefined : decodeStored(key, bytes);
  }

  protected readCommittedLive(key: string): boolean {
    try {
      return this.stmts.getLive.get(key) === 1;
    } catch (err) {
      throw storageFailure(err, `reading key "${key}"`);
    }
  }

  protected scanCommitted(partition: number): Array<[string, VersionedObject]> {
    let rows: Array<{ key: string; obj: Buffer }>;
    try {
      rows = this.stmts.scan.all(partition);
    } catch (err) {
      throw storageFailure(err, `scanning partition ${partition}`);
    }
    return rows.map((r) => [r.key, decodeStored(r.key, r.obj)]);
  }

  protected keyHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[] {
    const out: KeyHash[] = [];
    try {
      // One pass over the partition's rows (no object is decoded), keeping the segments asked for.
      for (const r of this.stmts.keyHashes.iterate(partition)) if (segments.has(r.segment)) out.push([r.key, r.khash]);
    } catch (err) {
      throw storageFailure(err, `listing the keys of partition ${partition}`);
    }
    return out;
  }

  protected tombstonesCommitted(partition: number, before: number, limit: number): Array<[string, VersionedObject]> {
    try {
      return this.stmts.tombstones.all(partition, before, limit).map((r) => [r.key, decodeStored(r.key, r.obj)]);
    } catch (err) {
      throw storageFailure(err, `listing the tombstones of partition ${partition}`);
    }
  }

  protected readReaped(key: string): VersionedObject | undefined {
    let bytes: Buffer | undefined;
    try {
      bytes = this.stmts.getReaped.get(key);
    } catch (err) {
      throw storageFailure(err, `reading the reaped record of "${key}"`);
    }
    return bytes === undefined ? undefined : decodeStored(key, bytes);
  }

  protected reapedHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[] {
    const out: KeyHash[] = [];
    try {
      for (const seg of segments) {
        for (const r of this.stmts.reapedHashes.iterate(partition, seg)) if (r.khash !== null) out.push([r.key, r.khash]);
      }
    } catch (err) {
      throw storageFailure(err, `listing the reaped keys of partition ${partition}`);
    }
    return out;
  }

  protected deleteReaped(before: number): Promise<string[]> {
    const id = this.nextRequest++;
    return this.request(id, 1, () => this.send({ t: 'forget', id, before })).then((keys) => keys ?? []);
  }

  /**
   * Writes the segment hashes' checkpoint now instead of within the next second of commits (the
   * close does it too). For tests of the recovery that replays the journal written since.
   */
  checkpointSegments(): Promise<void> {
    this.assertOpen();
    const id = this.nextRequest++;
    return this.request(id, 0, () => this.send({ t: 'checkpoint', id })).then(() => {});
  }

  protected persistSegments(partition: number, hashes: SegmentHashes): Promise<void> {
    const id = this.nextRequest++;
    return this.request(id, hashes.segments, () => this.send({ t: 'segments', id, partition, hashes: hashes.toArray() })).then(() => {});
  }

  /**
   * Sends the batch to the worker. The encoded objects are copied into one ArrayBuffer that is
   * transferred, not cloned: each `bytes` is a view into msgpackr's shared 8 KiB buffer, and
   * cloning a view clones its whole underlying buffer.
   */
  protected commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): Promise<void> {
    let total = 0;
    for (const [, w] of batch) total += w.bytes.length;
    const data = new Uint8Array(total);
    const rows: CommitRow[] = new Array<CommitRow>(batch.length);
    let offset = 0;
    for (let i = 0; i < batch.length; i++) {
      const [key, w] = batch[i]!;
      data.set(w.bytes, offset);
      const flags = (w.reap !== undefined ? REAP : 0) | (w.unreap ? UNREAP : 0) | (w.committedObj === undefined ? FRESH : 0);
      rows[i] = [key, w.partition, w.live ? 1 : 0, data.subarray(offset, offset + w.bytes.length), w.segment, w.since, flags];
      offset += w.bytes.length;
    }
    const id = this.nextRequest++;
    return this.request(id, batch.length, () => this.send({ t: 'commit', id, rows }, [data.buffer])).then(() => {});
  }

  /**
   * The hint store kept in this file's `hints` table, loaded whole at the first call. Hint writes
   * are group-committed on the commit worker, like object writes.
   */
  hintStore(): HintStore {
    if (this.hints) return this.hints;
    this.assertOpen();
    const rows = this.db
      .prepare<[], { id: number; target: string; key: string; partition: number; version: number; created_at: number; obj: Buffer }>(
        'SELECT id, target, key, partition, version, created_at, obj FROM hints ORDER BY id',
      )
      .all();
    const existing: Hint[] = rows.map((r) => ({
      id: r.id,
      target: r.target,
      key: r.key,
      partition: r.partition,
      version: r.version,
      createdAt: r.created_at,
      obj: decodeStored(r.key, r.obj),
    }));
    this.hints = new HintMirror({ persist: (upserts, deletes) => this.persistHints(upserts, deletes) }, existing);
    return this.hints;
  }

  private persistHints(upserts: Hint[], deletes: number[]): Promise<void> {
    if (this.workerExited) return Promise.reject(new NexusError(ErrorCodes.STORAGE_FAILED, `storage commit thread stopped: ${this.workerError ?? 'exited'}`));
    const rows: HintRow[] = upserts.map((h) => [h.id, h.target, h.key, h.partition, h.version, h.createdAt, encodeObject(h.obj)]);
    const id = this.nextRequest++;
    return this.request(id, upserts.length + deletes.length, () => this.send({ t: 'hints', id, upserts: rows, deletes })).then(() => {});
  }

  private request(id: number, count: number, send: () => void): Promise<string[] | undefined> {
    return new Promise<string[] | undefined>((resolve, reject) => {
      this.pending.set(id, { count, resolve, reject });
      this.worker.ref();
      send();
    });
  }

  protected async closeStore(): Promise<void> {
    let failure: NexusError | undefined;
    await this.hints?.flush();
    if (!this.workerExited) {
      this.stoppingWorker = true;
      try {
        await this.stopWorker();
      } catch (err) {
        failure = storageFailure(err, 'closing the commit connection');
      }
    }
    try {
      // Folds the WAL into the main file and empties it, so a copied or reopened file is complete.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      failure ??= storageFailure(err, 'the final WAL checkpoint');
    }
    this.db.close();
    if (failure !== undefined) {
      throw new NexusError(ErrorCodes.STORAGE_FAILED, `closed, but ${failure.message} (committed data is safe in the WAL)`);
    }
  }

  // ---- The worker ----

  private send(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  private onWorkerMessage(msg: FromWorker): void {
    switch (msg.t) {
      case 'done':
      case 'failed': {
        const pending = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (this.pending.size === 0) this.worker.unref();
        if (pending === undefined) return; // cannot happen: the worker answers only what was sent
        if (msg.t === 'done') {
          if (msg.segs !== undefined) this.applyCommittedSegments(msg.segs);
          pending.resolve(msg.keys);
        }
        else pending.reject(storageFailure(Object.assign(new Error(msg.message), { code: msg.code }), `committing ${pending.count} write(s)`));
        return;
      }
      case 'fatal':
        // Its connection could not be opened; it exits next, and onWorkerExit reports this.
        this.workerError = storageFailure(Object.assign(new Error(msg.message), { code: msg.code }), 'opening the commit connection').message;
        return;
    }
  }

  /** Takes the new hashes of the segments a commit changed (see FromWorker `segs`). */
  private applyCommittedSegments(segs: Uint8Array): void {
    // Read in place: `segs.buffer` (to wrap it in a Buffer) is a call into V8's runtime, which
    // the profile of a loaded node showed at ~1% of its main thread.
    for (let off = 0; off + SEGMENT_RECORD <= segs.length; off += SEGMENT_RECORD)
      this.hashesOf(readU32BE(segs, off)).setSegmentFrom(readU32BE(segs, off + 4), segs, off + 8);
  }

  private onWorkerExit(code: number): void {
    this.workerExited = true;
    if (this.stoppingWorker) return;
    // Unexpected: writes are over for this storage (reads still work on the main connection).
    const cause = this.workerError ?? `it exited with code ${code}`;
    const err = new NexusError(ErrorCodes.STORAGE_FAILED, `storage commit thread stopped: ${cause}`);
    this.breakWrites(err);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }

  /** Asks the worker to close its connection and waits for it to exit (terminating it if slow). */
  private stopWorker(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => void this.worker.terminate(), WORKER_CLOSE_TIMEOUT_MS);
      this.worker.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(this.workerError ?? `the commit thread exited with code ${code}`));
      });
      this.worker.ref();
      this.send({ t: 'close' });
    });
  }
}

function validateOptions(opts: SqliteStorageOptions): void {
  const bad = (what: string): never => {
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `storage options: ${what}`);
  };
  if (typeof opts.dir !== 'string' || opts.dir === '') bad('dir must be a non-empty path');
  if (opts.durability !== 'fsync' && opts.durability !== 'os') bad(`durability must be 'fsync' or 'os', got ${String(opts.durability)}`);
  if (opts.segments !== undefined && opts.segments !== 0) validateSegments(opts.segments);
  const max = opts.maxDataBytes;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 0)) bad(`maxDataBytes must be a whole number >= 0, got ${String(max)}`);
}

/** Turns a SQLite or file-system error into STORAGE_FAILED whose message leads with the cause. */
export function storageFailure(err: unknown, doing: string): NexusError {
  if (err instanceof NexusError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const detail = err instanceof Error ? err.message : String(err);
  let cause = '';
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') cause = 'disk full';
  else if (code.startsWith('SQLITE_IOERR') || code === 'EIO') cause = 'I/O error';
  else if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') cause = 'storage is read-only or not permitted';
  else if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') cause = 'database file is corrupt';
  else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) cause = 'database is locked (is another process using it?)';
  const message = cause === '' ? `${doing} failed: ${detail}` : `${cause}: ${doing} failed (${detail})`;
  return new NexusError(ErrorCodes.STORAGE_FAILED, message, code === '' ? undefined : { code });
}

function readU32BE(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
