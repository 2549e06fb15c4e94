// The SQLite file's shape: the schema (version 4), upgrades from older versions, re-indexing the
// segment columns for another segment count, and recovering the segment hashes at open
// (checkpoint + journal, see sqlite-commit.ts). Used by SqliteStorage.open only, before the
// Committer starts.

import type Database from 'better-sqlite3';
import { keyEncodedHash, SegmentHashes, segmentOf } from '../antientropy/segments.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { SEGMENT_RECORD } from './sqlite-commit.js';
import { decodeObject, type VersionedObject } from '../core/version.js';
import { SCHEMA_VERSION } from './types.js';

// Writes a stand-in keeps for a down primary (src/handoff): one row per (target, key), its id and
// version chosen by the node (the in-memory mirror), loaded whole at open.
export const HINTS_SQL = `
  CREATE TABLE hints (
    id         INTEGER PRIMARY KEY,
    target     TEXT NOT NULL,
    key        TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    obj        BLOB NOT NULL
  );
`;

// Version 3: segment hashes (anti-entropy's tree leaves) persisted and kept in each write's own
// transaction, and collected tombstones remembered as reaped records. Version 4 is the same
// without the index on `objects (partition)`, so this makes a version-4 file.
const V3_SQL = `
  -- One row per partition: its segment hashes, segments × 16 bytes (each the XOR of the khash of
  -- every row in that segment) — a checkpoint, with the journal below (see sqlite-commit.ts).
  CREATE TABLE segments (
    partition INTEGER PRIMARY KEY,
    hashes    BLOB NOT NULL
  );
  -- Tombstones collected after every replica held them: later writes merge against these.
  CREATE TABLE reaped (
    key       TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    segment   INTEGER NOT NULL,
    khash     BLOB,
    obj       BLOB NOT NULL,
    reaped_at INTEGER NOT NULL
  );
  CREATE INDEX reaped_by_segment ON reaped (partition, segment);
  CREATE INDEX reaped_by_time ON reaped (reaped_at);
  -- Per commit since the segments table was last checkpointed: the XOR deltas it made to
  -- segments (see sqlite-commit.ts). Replayed onto the checkpoint at open.
  CREATE TABLE segment_journal (
    seq    INTEGER PRIMARY KEY,
    deltas BLOB NOT NULL
  );
  -- Tombstone collection walks a partition's tombstones. (Which rows a partition holds is kept in
  -- memory, not in an index: see partition-rows.ts.)
  CREATE INDEX objects_tombstones ON objects (partition, since) WHERE live = 0;
`;

// The schema version lives in the file header (PRAGMA user_version) rather than in `meta`, so no
// `setMeta` name can clobber it, and a fresh file reads as 0.
//
// `objects` keeps its rowid: WITHOUT ROWID stores whole rows in the b-tree's interior pages too,
// which SQLite advises against for rows over ~1/20 of a page, and values here are often larger.
// `khash` is what the row contributes to its segment's hash (NULL when hashes are off); `since`
// is when the state was stored (ms since the epoch), a tombstone's age.
export const SCHEMA_SQL = `
  CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE objects (
    key       TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    live      INTEGER NOT NULL,
    obj       BLOB NOT NULL,
    segment   INTEGER NOT NULL DEFAULT 0,
    since     INTEGER NOT NULL DEFAULT 0,
    khash     BLOB
  );
` + HINTS_SQL + V3_SQL;

/**
 * Creates the tables in a fresh file, upgrades an older schema, or refuses a file of another
 * version; then makes sure the segment columns and table follow `segments` (re-indexing when the
 * file was made with another count, or upgraded).
 */
export function ensureSchema(db: Database.Database, file: string, segments: number, now: () => number): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  const hasTables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number;
  if (version === 0 && hasTables === 0) {
    db.transaction(() => {
      db.exec(SCHEMA_SQL);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } else if (version === 1 || version === 2) {
    // Version 2 added the hints table; version 3 the segment columns, segments and reaped.
    // Straight to version 4 (V3_SQL makes no index on partition).
    db.transaction(() => {
      if (version === 1) db.exec(HINTS_SQL);
      db.exec(`
        ALTER TABLE objects ADD COLUMN segment INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE objects ADD COLUMN since INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE objects ADD COLUMN khash BLOB;
        DROP INDEX objects_by_partition; -- was (partition, key)
      `);
      // Rows of unknown age count from now, so no tombstone looks older than it may be.
      db.prepare('UPDATE objects SET since = ?').run(Math.floor(now()));
      db.exec(V3_SQL);
      db.prepare("DELETE FROM meta WHERE name = 'segments'").run(); // forces the re-index below
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } else if (version === 3) {
    // Version 4 dropped the index on partition (partition-rows.ts keeps that in memory).
    db.transaction(() => {
      db.exec('DROP INDEX IF EXISTS objects_by_partition');
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } else if (version !== SCHEMA_VERSION) {
    throw new NexusError(
      ErrorCodes.STORAGE_FAILED,
      `${file} has schema version ${version}, but this build of Nexus uses schema version ${SCHEMA_VERSION}; ` +
        'use a matching build or move the file away',
    );
  }
  const recorded = db.prepare<[], string>("SELECT value FROM meta WHERE name = 'segments'").pluck().get();
  if (recorded !== String(segments)) reindexSegments(db, segments);
}

/**
 * Recomputes every row's segment and contribution and the segments table, for a count of
 * `segments` (0: no hashes). O(n) over the objects; runs at open only, after an upgrade or when
 * the segment count changed.
 */
function reindexSegments(db: Database.Database, segments: number): void {
  const page = db.prepare<[number], { rowid: number; key: string; obj: Buffer }>('SELECT rowid, key, obj FROM objects WHERE rowid > ? ORDER BY rowid LIMIT 5000');
  const set = db.prepare<[number, Buffer | null, number]>('UPDATE objects SET segment = ?, khash = ? WHERE rowid = ?');
  const hashes = new Map<number, SegmentHashes>();
  db.transaction(() => {
    for (let after = 0; ; ) {
      const rows = page.all(after);
      if (rows.length === 0) break;
      for (const r of rows) {
        after = r.rowid;
        if (segments === 0) {
          set.run(0, null, r.rowid);
          continue;
        }
        decodeStored(r.key, r.obj); // a corrupt row fails the open here, naming its key
        const khash = keyEncodedHash(r.key, r.obj);
        const segment = segmentOf(r.key, segments);
        set.run(segment, khash, r.rowid);
      }
    }
    db.exec('DELETE FROM segments');
    if (segments !== 0) {
      const byPartition = db.prepare<[], { key: string; partition: number; khash: Buffer }>('SELECT key, partition, khash FROM objects');
      for (const r of byPartition.iterate()) {
        let h = hashes.get(r.partition);
        if (h === undefined) hashes.set(r.partition, (h = new SegmentHashes(segments)));
        h.xorSegment(segmentOf(r.key, segments), r.khash);
      }
      const write = db.prepare<[number, Buffer]>('INSERT INTO segments (partition, hashes) VALUES (?, ?)');
      for (const [p, h] of hashes) write.run(p, h.toBuffer().subarray(1));
      // Reaped records keep their contribution for exchanges; recompute it for the new count.
      const reaped = db.prepare<[], { key: string; obj: Buffer }>('SELECT key, obj FROM reaped').all();
      const setReaped = db.prepare<[number, Buffer, string]>('UPDATE reaped SET segment = ?, khash = ? WHERE key = ?');
      for (const r of reaped) setReaped.run(segmentOf(r.key, segments), keyEncodedHash(r.key, r.obj), r.key);
    }
    // The table now holds every row's contribution: nothing is left to replay.
    db.exec('DELETE FROM segment_journal');
    setMetaRow(db, 'segments', String(segments));
  })();
}

function setMetaRow(db: Database.Database, name: string, value: string): void {
  db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value);
}

/**
 * The committed segment hashes: the last checkpoint (the `segments` table) with the journal of the
 * commits since replayed onto it. Work in proportion to the commits since the checkpoint (none
 * after a clean stop). Read-only: the Committer starts from the result, marks the replayed
 * partitions dirty and writes them (emptying the journal) at its next checkpoint — so a full disk
 * at open cannot stop a node from opening. See sqlite-commit.ts.
 */
export function recoverSegments(db: Database.Database, segments: number): { hashes: Map<number, SegmentHashes>; replayed: number[] } {
  const hashes = new Map<number, SegmentHashes>();
  for (const r of db.prepare<[], { partition: number; hashes: Buffer }>('SELECT partition, hashes FROM segments').iterate()) {
    if (r.hashes.length !== segments * 16) continue; // made for another count: reindexSegments ran
    hashes.set(r.partition, new SegmentHashes(segments, Buffer.from(r.hashes)));
  }
  const replayed = new Set<number>();
  for (const deltas of db.prepare<[], Buffer>('SELECT deltas FROM segment_journal ORDER BY seq').pluck().iterate()) {
    for (let off = 0; off + SEGMENT_RECORD <= deltas.length; off += SEGMENT_RECORD) {
      const p = deltas.readUInt32BE(off);
      let h = hashes.get(p);
      if (h === undefined) hashes.set(p, (h = new SegmentHashes(segments)));
      h.xorSegment(deltas.readUInt32BE(off + 4), deltas.subarray(off + 8, off + SEGMENT_RECORD));
      replayed.add(p);
    }
  }
  return { hashes, replayed: [...replayed] };
}

export function decodeStored(key: string, bytes: Buffer): VersionedObject {
  try {
    return decodeObject(bytes);
  } catch (err) {
    throw new NexusError(ErrorCodes.STORAGE_FAILED, `stored object for key "${key}" is corrupt: ${NexusError.from(err).message}`);
  }
}
