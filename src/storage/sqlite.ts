// A node's data in one SQLite file (`<dir>/nexus.db`) through better-sqlite3, in WAL mode.
//
// The main thread's connection does everything: reads, metadata, and the write transactions
// (sqlite-commit.ts), which run with synchronous=NORMAL and so never wait for the disk. Under
// 'fsync' durability a batch is acknowledged only after an fdatasync of the WAL file on libuv's
// thread pool (wal-sync.ts), which is the one thing synchronous=FULL adds in WAL mode; the event
// loop keeps serving meanwhile. At most one batch is in flight (staging.ts): the next one commits
// when it lands, so batches grow by themselves while a sync runs.
//
// SQLite's automatic checkpoint is off on this connection (it would run inside a COMMIT and wait
// for two fsyncs); a worker thread with its own connection runs PASSIVE checkpoints every
// CHECKPOINT_EVERY commits instead (sqlite-checkpointer.ts), and close runs a TRUNCATE checkpoint.
//
// The WAL file descriptor stays valid for the storage's life: SQLite deletes or recreates the WAL
// only when the last connection to the file closes, and the main connection closes last.

import Database from 'better-sqlite3';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeObject, type VersionedObject } from '../core/version.js';
import { HintMirror } from '../handoff/mirror.js';
import type { Hint, HintStore } from '../handoff/types.js';
import { SEGMENTS_DEFAULT, SegmentHashes, validateSegments } from '../antientropy/segments.js';
import { Committer, FRESH, REAP, UNREAP, type CommitRow, type HintRow } from './sqlite-commit.js';
// Importing the checkpointer module runs nothing here: it starts only on a worker thread.
import type { CheckpointerConfig, FromCheckpointer, ToCheckpointer } from './sqlite-checkpointer.js';
import { KeyFilter } from './key-filter.js';
import { PartitionRows } from './partition-rows.js';
import { WalSync } from './wal-sync.js';
import { decodeStored, ensureSchema, recoverSegments } from './sqlite-schema.js';
import { StagedStorage, type StagedInit, type StagedWrite } from './staging.js';
import type { EncodedState, KeyHash, SqliteStorageOptions, Storage } from './types.js';

export const DB_FILE_NAME = 'nexus.db';

/** How long a connection waits for another's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** How long close waits for the checkpointer to close its connection and exit before terminating it. */
const WORKER_CLOSE_TIMEOUT_MS = 10_000;

/**
 * Commits between two PASSIVE checkpoints. A commit of one row adds ~5 WAL pages and a loaded
 * node's batches 20–50, so the WAL grows to 640–6,400 pages (2.5–25 MB) between checkpoints.
 * It was 32: every checkpoint ends with the tail checkpoint on this thread (two fsyncs, see
 * `onCheckpointerMessage`), and pages rewritten by many commits were copied many times. In
 * workload A (R = W = 2, 64 clients) 128 took 0.4–9.5% less CPU per operation than 32 in four
 * pairs run side by side, and 256 0.7–3.9% less in four (README, "Tunable consistency").
 */
const CHECKPOINT_EVERY = 128;

/**
 * Rows read per turn by the scan at open that fills the key filter and the partition rows:
 * ~1.2 µs each here (200,000 rows of 100-byte values in ~0.24 s), so a turn takes ~2.5 ms.
 */
const OPEN_SCAN_CHUNK = 2000;

/**
 * The checkpointer script. Compiled, it is the sibling `sqlite-checkpointer.js`
 * (dist/src/storage/). Under vitest this module runs from its TypeScript source, so
 * `import.meta.url` is src/storage/sqlite.ts and no .js sibling exists, and a worker thread is
 * plain Node, which cannot run the .ts; so then the compiled copy in the package's dist/ is used
 * (`npm test` builds first; the worker has no imports from Nexus, so that copy only depends on
 * better-sqlite3).
 */
export function checkpointerUrl(): URL {
  const sibling = new URL('./sqlite-checkpointer.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const built = new URL('../../dist/src/storage/sqlite-checkpointer.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`the storage checkpointer script is missing (looked for ${fileURLToPath(sibling)} and ${fileURLToPath(built)}; run npm run build)`);
}

/** What the connection is actually running with, for health output and tests. */
export interface SqliteInfo {
  file: string;
  journalMode: string;
  synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
  /** Whether each commit is made durable by an fdatasync of the WAL before it is acknowledged ('fsync' durability). */
  syncsEachCommit: boolean;
  pageSize: number;
  /** SQLite's cap on the file size in pages (huge unless `maxDataBytes` was set). */
  maxPageCount: number;
}

interface Statements {
  getObj: Database.Statement<[string], Buffer>;
  getLive: Database.Statement<[string], number>;
  rowObjs: Database.Statement<[string, number], { key: string; obj: Buffer }>;
  rowHashes: Database.Statement<[string, number], { key: string; segment: number; khash: Buffer }>;
  tombstones: Database.Statement<[number, number, number], { key: string; obj: Buffer }>;
  getReaped: Database.Statement<[string], Buffer>;
  reapedHashes: Database.Statement<[number, number], { key: string; khash: Buffer | null }>;
  getMeta: Database.Statement<[string], string>;
  setMeta: Database.Statement<[string, string]>;
  rowsAfter: Database.Statement<[number, number], { id: number; key: string; partition: number; segment: number }>;
}

export class SqliteStorage extends StagedStorage implements Storage {
  private hints: HintMirror | undefined;
  /** Commits since the last checkpoint request. */
  private commitsSinceCheckpoint = 0;
  private checkpointRunning = false;
  /**
   * Set by the checkpointer's 'exit' event. Should it die before close, this thread takes over
   * its PASSIVE checkpoints (each then stalls the event loop for two fsyncs) rather than let the
   * WAL grow until close, and stats() says so.
   */
  private checkpointerExited = false;
  /** The last error the checkpointer reported (close names it if the thread exits abnormally). */
  private checkpointerError: string | undefined;
  /** Set when close begins: no more tail checkpoints. */
  private closingStore = false;
  /**
   * Every key committed to `objects` (key-filter.ts), so that reads of keys the store never held
   * skip SQLite. Filled at open by a scan that runs a chunk per turn (a million rows take ~1.2 s,
   * too long to hold up the start); until it ends (`rows.complete`), reads ask SQLite. Commits add
   * their keys all along, so the scan and the commits together cover every key.
   */
  private readonly keys: KeyFilter;
  /**
   * The same scan fills these, which also record how far it has got; a listing before it ends
   * finishes it first (finishOpenScan).
   */
  private readonly rows: PartitionRows;
  private openScan: NodeJS.Immediate | undefined;

  private constructor(
    private readonly db: Database.Database,
    private readonly committer: Committer,
    /** The WAL's fdatasync under 'fsync' durability; undefined under 'os'. */
    private readonly walSync: WalSync | undefined,
    private readonly walFd: number | undefined,
    private readonly checkpointer: Worker,
    private readonly file: string,
    private readonly stmts: Statements,
    rows: PartitionRows,
    init: StagedInit,
  ) {
    super(init);
    this.keys = new KeyFilter(init.liveKeys);
    this.rows = rows;
    this.scanRows();
    // An idle open storage never holds a process open; close waits for the exit explicitly.
    checkpointer.unref();
    checkpointer.on('message', (msg: FromCheckpointer) => this.onCheckpointerMessage(msg));
    // Listening to 'error' is what keeps an exception in the worker from crashing this process.
    checkpointer.on('error', (err: unknown) => {
      this.checkpointerError = err instanceof Error ? err.message : String(err);
    });
    checkpointer.on('exit', () => {
      this.checkpointerExited = true;
      this.checkpointRunning = false;
    });
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
      // Commits never wait for the disk here; 'fsync' durability syncs the WAL after them (WalSync).
      db.pragma('synchronous = NORMAL');
      // Checkpoints belong to the checkpointer thread (and to close).
      db.pragma('wal_autocheckpoint = 0');
      const segments = opts.segments ?? SEGMENTS_DEFAULT;
      ensureSchema(db, file, segments, opts.now ?? Date.now);
      let maxPageCount = 0;
      if (opts.maxDataBytes !== undefined && opts.maxDataBytes > 0) {
        // A size cap in pages. It is per connection (not stored in the file), so it is set at every
        // open; SQLite never sets it below the current size. Past it, writes
        // fail with SQLITE_FULL exactly as on a full disk, which is how tests simulate one. Set
        // after the schema exists so that even a tiny cap leaves a usable (if full) database.
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        maxPageCount = Math.max(1, Math.floor(opts.maxDataBytes / pageSize));
        db.pragma(`max_page_count = ${maxPageCount}`);
      }
      const stmts: Statements = {
        getObj: db.prepare<[string], Buffer>('SELECT obj FROM objects WHERE key = ?').pluck(),
        getLive: db.prepare<[string], number>('SELECT live FROM objects WHERE key = ?').pluck(),
        // The rows of a partition by rowid (a JSON array, in ascending order), in one statement.
        rowObjs: db.prepare<[string, number], { key: string; obj: Buffer }>(
          'SELECT key, obj FROM objects WHERE rowid IN (SELECT value FROM json_each(?)) AND partition = ? ORDER BY key',
        ),
        rowHashes: db.prepare<[string, number], { key: string; segment: number; khash: Buffer }>(
          'SELECT key, segment, khash FROM objects WHERE rowid IN (SELECT value FROM json_each(?)) AND partition = ? AND khash IS NOT NULL',
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
        // In rowid order (the table's own b-tree): each chunk starts where the last one ended.
        rowsAfter: db.prepare<[number, number], { id: number; key: string; partition: number; segment: number }>(
          'SELECT rowid AS id, key, partition, segment FROM objects WHERE rowid > ? ORDER BY rowid LIMIT ?',
        ),
      };
      // The one O(n) pass: from here on the count is maintained per put.
      const liveKeys = db.prepare<[], number>('SELECT count(*) FROM objects WHERE live = 1').pluck().get() ?? 0;
      const { hashes, replayed } = segments === 0 ? { hashes: new Map<number, SegmentHashes>(), replayed: [] } : recoverSegments(db, segments);
      const reapedKeys = new Set(db.prepare<[], string>('SELECT key FROM reaped').pluck().all());
      const rows = new PartitionRows();
      const committer = new Committer(db, {
        rows,
        segments,
        // The staging layer's own buffers (the same map becomes its committedHashes).
        partition: (p) => {
          let h = hashes.get(p);
          if (h === undefined) hashes.set(p, (h = new SegmentHashes(segments)));
          return h.bytes();
        },
        replayed,
      });
      // Reading above opened the WAL file; it stays the same file while this connection is open.
      let walFd: number | undefined;
      if (opts.durability === 'fsync') {
        walFd = openSync(`${file}-wal`, 'r+');
        if (fstatSync(walFd).ino !== statSync(`${file}-wal`).ino) throw new Error('the WAL file changed while it was opened');
      }
      // Last, so nothing above can fail with a thread left running.
      const workerData: CheckpointerConfig = { file, busyTimeoutMs: BUSY_TIMEOUT_MS };
      const checkpointer = new Worker(checkpointerUrl(), { workerData, name: 'nexus-storage-checkpoint' });
      const init: StagedInit = { liveKeys, segments, hashes, reapedKeys };
      if (opts.now !== undefined) init.now = opts.now;
      const walSync = walFd === undefined ? undefined : new WalSync(walFd);
      return new SqliteStorage(db, committer, walSync, walFd, checkpointer, file, stmts, rows, init);
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
   * Commits on its own, independent of staged puts, and durably whatever the durability setting:
   * the connection's synchronous setting is raised to FULL for this one statement (rare: identity
   * and counter blocks), so it returns only once the WAL is synced. (Earlier commits become
   * durable with it; that is harmless.)
   */
  setMeta(name: string, value: string): void {
    this.assertOpen();
    try {
      this.db.pragma('synchronous = FULL');
      try {
        this.stmts.setMeta.run(name, value);
      } finally {
        this.db.pragma('synchronous = NORMAL');
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
      syncsEachCommit: this.walSync !== undefined,
      pageSize: this.db.pragma('page_size', { simple: true }) as number,
      maxPageCount: this.db.pragma('max_page_count', { simple: true }) as number,
    };
  }

  // ---- The committed side ----

  protected readCommitted(key: string): EncodedState | undefined {
    if (this.rows.complete && !this.keys.mightHave(key)) return undefined;
    let bytes: Buffer | undefined;
    try {
      bytes = this.stmts.getObj.get(key);
    } catch (err) {
      throw storageFailure(err, `reading key "${key}"`);
    }
    // The row's bytes are the state's encoding, in a buffer of their own (better-sqlite3 copies a blob).
    return bytes === undefined ? undefined : { obj: decodeStored(key, bytes), bytes };
  }

  protected readCommittedLive(key: string): boolean {
    if (this.rows.complete && !this.keys.mightHave(key)) return false;
    try {
      return this.stmts.getLive.get(key) === 1;
    } catch (err) {
      throw storageFailure(err, `reading key "${key}"`);
    }
  }

  protected scanCommitted(partition: number): Array<[string, VersionedObject]> {
    let rows: Array<{ key: string; obj: Buffer }>;
    try {
      rows = this.stmts.rowObjs.all(this.rowidList(partition), partition);
    } catch (err) {
      throw storageFailure(err, `scanning partition ${partition}`);
    }
    return rows.map((r) => [r.key, decodeStored(r.key, r.obj)]);
  }

  protected keyHashesCommitted(partition: number, segments: ReadonlySet<number>): KeyHash[] {
    const out: KeyHash[] = [];
    try {
      // Only the rows of the segments asked for are read (no object is decoded); their segment is
      // checked again as read, like their partition.
      for (const r of this.stmts.rowHashes.iterate(this.rowidList(partition, segments), partition)) if (segments.has(r.segment)) out.push([r.key, r.khash]);
    } catch (err) {
      throw storageFailure(err, `listing the keys of partition ${partition}`);
    }
    return out;
  }

  /**
   * A partition's rowids (those in `segments`, if given) as a JSON array, ascending (the table's
   * order, so lookups walk it forward).
   */
  private rowidList(partition: number, segments?: ReadonlySet<number>): string {
    this.finishOpenScan();
    return JSON.stringify(Array.from(this.rows.rowids(partition, segments).sort()));
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
    return this.write('deleting old reaped records', () => this.committer.forget(before));
  }

  /**
   * Writes the segment hashes' checkpoint now instead of within the next seconds of commits (the
   * close does it too). For tests of the recovery that replays the journal written since.
   */
  checkpointSegments(): Promise<void> {
    this.assertOpen();
    return this.write('checkpointing the segment hashes', () => this.committer.checkpoint());
  }

  protected persistSegments(partition: number, hashes: SegmentHashes): Promise<void> {
    // The committer writes the new hashes into this layer's buffers too.
    return this.write(`replacing the segment hashes of partition ${partition}`, () => this.committer.replaceSegments(partition, hashes.toArray()));
  }

  /**
   * Commits the batch now, on this thread; under 'fsync' the promise resolves once the WAL is
   * synced (under 'os' there is nothing to wait for and the commit is synchronous).
   */
  protected commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): Promise<void> | void {
    const rows: CommitRow[] = new Array<CommitRow>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const [key, w] = batch[i]!;
      const flags = (w.reap !== undefined ? REAP : 0) | (w.unreap ? UNREAP : 0) | (w.committedObj === undefined ? FRESH : 0);
      rows[i] = [key, w.partition, w.live ? 1 : 0, w.bytes, w.segment, w.since, flags];
      // Before the commit: a key in the filter that failed to commit costs only a lookup.
      this.keys.add(key);
    }
    try {
      this.committer.commit(rows);
    } catch (err) {
      throw storageFailure(err, `committing ${batch.length} write(s)`);
    }
    this.committedWrite();
    return this.durable(`committing ${batch.length} write(s)`);
  }

  /**
   * The hint store kept in this file's `hints` table, loaded whole at the first call. Hint writes
   * are committed and synced like object writes.
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
    const rows: HintRow[] = upserts.map((h) => [h.id, h.target, h.key, h.partition, h.version, h.createdAt, encodeObject(h.obj)]);
    return this.write(`writing ${upserts.length + deletes.length} hint change(s)`, () => this.committer.commitHints(rows, deletes));
  }

  /** Runs a write transaction now and resolves with its result once it is durable. */
  private write<T>(doing: string, transaction: () => T): Promise<T> {
    let result: T;
    try {
      result = transaction();
    } catch (err) {
      return Promise.reject(storageFailure(err, doing));
    }
    this.committedWrite();
    const durable = this.durable(doing);
    return durable === undefined ? Promise.resolve(result) : durable.then(() => result);
  }

  /** After every write transaction: ask for a WAL checkpoint now and then. */
  private committedWrite(): void {
    if (++this.commitsSinceCheckpoint < CHECKPOINT_EVERY || this.checkpointRunning) return;
    this.commitsSinceCheckpoint = 0;
    if (this.checkpointerExited) return this.checkpointHere();
    this.checkpointRunning = true;
    this.checkpointer.postMessage({ t: 'checkpoint' } satisfies ToCheckpointer);
  }

  /** A PASSIVE checkpoint on this thread; a failure is kept for stats() and the next one retries. */
  private checkpointHere(): void {
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch (err) {
      this.checkpointerError = storageFailure(err, 'checkpointing the WAL').message;
    }
  }

  override stats(): { commits: number; writes: number; degraded?: string } {
    const counts = super.stats();
    if (!this.checkpointerExited || this.closingStore) return counts;
    const why = this.checkpointerError === undefined ? '' : ` (${this.checkpointerError})`;
    return { ...counts, degraded: `the WAL checkpoint thread exited${why}; the main thread checkpoints instead, stalling for its fsyncs` };
  }

  /**
   * Under 'fsync': a promise that resolves once what was committed so far is on disk. A failed
   * sync breaks writes for good (see wal-sync.ts): the commit happened, but whether it is on disk
   * is unknown. Under 'os': undefined (nothing to wait for).
   */
  private durable(doing: string): Promise<void> | undefined {
    if (this.walSync === undefined) return undefined;
    return this.walSync.sync().catch((err: unknown) => {
      const failure = storageFailure(err, `syncing the WAL after ${doing}`);
      this.breakWrites(failure);
      throw failure;
    });
  }

  /**
   * Whether the open scan has filled the key filter and the partition rows yet (until then reads
   * all ask SQLite, and a listing finishes the scan first).
   */
  openScanComplete(): boolean {
    return this.rows.complete;
  }

  /**
   * The open scan, one chunk per turn: adds the committed rows after the last one it read to the
   * key filter and the partition rows. A failed read stops it; reads then keep asking SQLite, which
   * is always right, and the next listing tries to finish it (finishOpenScan).
   */
  private scanRows(): void {
    this.openScan = undefined;
    if (this.closingStore) return;
    try {
      if (this.scanChunk()) this.openScan = setImmediate(() => this.scanRows());
    } catch {
      // stopped; see above
    }
  }

  /** Reads one chunk of the open scan; returns whether rows may remain. Throws what SQLite throws. */
  private scanChunk(): boolean {
    const chunk = this.stmts.rowsAfter.all(this.rows.scannedTo, OPEN_SCAN_CHUNK);
    for (const r of chunk) {
      this.keys.add(r.key);
      this.rows.scanned(r.partition, r.id, r.segment);
    }
    if (chunk.length === OPEN_SCAN_CHUNK) return true;
    this.rows.scanDone();
    return false;
  }

  /**
   * A listing needs every partition's rows: runs the rest of the open scan now, at once (~1.2 s
   * per million rows, once), rather than have each listing scan the whole table (0.3–0.55 s
   * per million rows, measured, for every partition listed) until the scan ends by itself.
   */
  private finishOpenScan(): void {
    if (this.rows.complete) return;
    if (this.openScan !== undefined) clearImmediate(this.openScan);
    this.openScan = undefined;
    while (this.scanChunk());
  }

  protected async closeStore(): Promise<void> {
    if (this.openScan !== undefined) clearImmediate(this.openScan);
    let failure: NexusError | undefined;
    let synced = true;
    this.closingStore = true;
    await this.hints?.flush();
    try {
      this.committer.checkpoint(); // a clean stop leaves no segment journal to replay
    } catch {
      // (e.g. a full disk) The journal stays valid: the next open replays it.
    }
    try {
      await this.durable('the last commits');
    } catch (err) {
      failure = storageFailure(err, 'syncing the WAL');
      synced = false;
    }
    if (!this.checkpointerExited) {
      try {
        await this.stopCheckpointer();
      } catch (err) {
        failure ??= storageFailure(err, 'closing the checkpoint connection');
      }
    }
    try {
      // Folds the WAL into the main file and empties it, so a copied or reopened file is complete.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      failure ??= storageFailure(err, 'the final WAL checkpoint');
    }
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.db.close();
    if (failure !== undefined) {
      throw new NexusError(ErrorCodes.STORAGE_FAILED, `closed, but ${failure.message}${synced ? ' (committed data is safe in the WAL)' : ''}`);
    }
  }

  // ---- The checkpointer ----

  private onCheckpointerMessage(msg: FromCheckpointer): void {
    if (msg.t === 'fatal') this.checkpointerError = `its connection could not be opened: ${msg.message}`;
    else if (msg.t === 'failed') this.checkpointerError = msg.message;
    this.checkpointRunning = false;
    if (msg.t !== 'done' || this.closingStore) return;
    // The WAL is reused from its start (instead of growing) only by a write that begins when every
    // frame is checkpointed, and commits made during the worker's checkpoint added frames. So the
    // tail is checkpointed here, where no commit can come between it and the next one: a few
    // frames, but two fsyncs (~0.4 ms here, once per CHECKPOINT_EVERY commits). A WAL that only
    // grows made every commit's sync slower (file size changes are metadata: 255 -> 470 µs).
    this.checkpointHere();
  }

  /** Asks the checkpointer to close its connection and waits for it to exit (terminating it if slow). */
  private stopCheckpointer(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => void this.checkpointer.terminate(), WORKER_CLOSE_TIMEOUT_MS);
      this.checkpointer.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(this.checkpointerError ?? `the checkpoint thread exited with code ${code}`));
      });
      this.checkpointer.ref();
      this.checkpointer.postMessage({ t: 'close' } satisfies ToCheckpointer);
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
