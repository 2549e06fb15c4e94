// A node's data in one SQLite file (`<dir>/nexus.db`) through better-sqlite3, in WAL mode.
//
// better-sqlite3 is synchronous: every statement here blocks the event loop, heartbeats included.
// So transactions are kept to one group commit of already-encoded rows, and the only deliberate
// checkpoint is the TRUNCATE one at close (SQLite's automatic checkpoint, every ~1000 WAL pages,
// still runs inside commits; see DESIGN.md "Storage" before changing that).

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { decodeObject, type VersionedObject } from '../core/version.js';
import { StagedStorage, type StagedWrite } from './staging.js';
import { SCHEMA_VERSION, type SqliteStorageOptions, type Storage } from './types.js';

export const DB_FILE_NAME = 'nexus.db';

// The schema version lives in the file header (PRAGMA user_version) rather than in `meta`, so no
// `setMeta` name can clobber it, and a fresh file reads as 0.
//
// `objects` keeps its rowid: WITHOUT ROWID stores whole rows in the b-tree's interior pages too,
// which SQLite advises against for rows over ~1/20 of a page, and values here are often larger.
const SCHEMA_SQL = `
  CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE objects (
    key       TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    live      INTEGER NOT NULL,
    obj       BLOB NOT NULL
  );
  -- For anti-entropy and handoff, which walk one partition in key order.
  CREATE INDEX objects_by_partition ON objects (partition, key);
`;

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
  upsert: Database.Statement<[string, number, number, Buffer]>;
  getMeta: Database.Statement<[string], string>;
  setMeta: Database.Statement<[string, string]>;
}

export class SqliteStorage extends StagedStorage implements Storage {
  private readonly commitTx: (batch: ReadonlyArray<readonly [string, StagedWrite]>) => void;

  private constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    private readonly durability: SqliteStorageOptions['durability'],
    private readonly stmts: Statements,
    liveKeys: number,
  ) {
    super(liveKeys);
    this.commitTx = db.transaction((batch: ReadonlyArray<readonly [string, StagedWrite]>) => {
      for (const [key, w] of batch) stmts.upsert.run(key, w.partition, w.live ? 1 : 0, w.bytes);
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
      db = new Database(file);
    } catch (err) {
      throw storageFailure(err, `opening ${file}`);
    }
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be enabled`);
      db.pragma(`synchronous = ${opts.durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
      ensureSchema(db, file);
      if (opts.maxDataBytes !== undefined && opts.maxDataBytes > 0) {
        // A size cap in pages. It is per connection (not stored in the file), so it is set at every
        // open; SQLite never sets it below the current size. Past it, writes fail with SQLITE_FULL
        // exactly as on a full disk, which is how tests simulate one. Set after the schema exists
        // so that even a tiny cap leaves a usable (if full) database.
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.pragma(`max_page_count = ${Math.max(1, Math.floor(opts.maxDataBytes / pageSize))}`);
      }
      const stmts: Statements = {
        getObj: db.prepare<[string], Buffer>('SELECT obj FROM objects WHERE key = ?').pluck(),
        getLive: db.prepare<[string], number>('SELECT live FROM objects WHERE key = ?').pluck(),
        scan: db.prepare<[number], { key: string; obj: Buffer }>(
          'SELECT key, obj FROM objects WHERE partition = ? ORDER BY key',
        ),
        upsert: db.prepare<[string, number, number, Buffer]>(
          `INSERT INTO objects (key, partition, live, obj) VALUES (?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, live = excluded.live, obj = excluded.obj`,
        ),
        getMeta: db.prepare<[string], string>('SELECT value FROM meta WHERE name = ?').pluck(),
        setMeta: db.prepare<[string, string]>(
          'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        ),
      };
      // The one O(n) pass: from here on the count is maintained per put.
      const liveKeys = db.prepare<[], number>('SELECT count(*) FROM objects WHERE live = 1').pluck().get() ?? 0;
      return new SqliteStorage(db, file, opts.durability, stmts, liveKeys);
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

  protected commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): void {
    try {
      this.commitTx(batch); // rolls back by itself when a statement or the COMMIT fails
    } catch (err) {
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // The original failure is the one worth reporting.
        }
      }
      throw storageFailure(err, `committing ${batch.length} write(s)`);
    }
  }

  protected closeStore(): void {
    let failure: unknown;
    try {
      // Folds the WAL into the main file and empties it, so a copied or reopened file is complete.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      failure = err;
    }
    this.db.close();
    if (failure !== undefined) {
      const e = storageFailure(failure, 'the final WAL checkpoint');
      throw new NexusError(ErrorCodes.STORAGE_FAILED, `closed, but ${e.message} (committed data is safe in the WAL)`);
    }
  }
}

function validateOptions(opts: SqliteStorageOptions): void {
  const bad = (what: string): never => {
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `storage options: ${what}`);
  };
  if (typeof opts.dir !== 'string' || opts.dir === '') bad('dir must be a non-empty path');
  if (opts.durability !== 'fsync' && opts.durability !== 'os') bad(`durability must be 'fsync' or 'os', got ${String(opts.durability)}`);
  const max = opts.maxDataBytes;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 0)) bad(`maxDataBytes must be a whole number >= 0, got ${String(max)}`);
}

/** Creates the tables in a fresh file, or checks an existing file's schema version. */
function ensureSchema(db: Database.Database, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  const hasTables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number;
  if (version === 0 && hasTables === 0) {
    db.transaction(() => {
      db.exec(SCHEMA_SQL);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
    return;
  }
  if (version !== SCHEMA_VERSION) {
    throw new NexusError(
      ErrorCodes.STORAGE_FAILED,
      `${file} has schema version ${version}, but this build of Nexus uses schema version ${SCHEMA_VERSION}; ` +
        'use a matching build or move the file away',
    );
  }
}

function decodeStored(key: string, bytes: Buffer): VersionedObject {
  try {
    return decodeObject(bytes);
  } catch (err) {
    throw new NexusError(ErrorCodes.STORAGE_FAILED, `stored object for key "${key}" is corrupt: ${NexusError.from(err).message}`);
  }
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
