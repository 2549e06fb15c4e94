// SQLite-only behaviour: persistence across reopen, the schema check, a full disk, durability.

import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import { SegmentHashes, segmentOf } from '../../src/antientropy/segments.js';
import { emptyObject, encodeObject, update, type VersionedObject } from '../../src/core/version.js';
import { DB_FILE_NAME, SCHEMA_VERSION, SqliteStorage } from '../../src/storage/index.js';
import { WalSync } from '../../src/storage/wal-sync.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const valueObj = (value: Uint8Array | string, counter = 1): VersionedObject =>
  update(emptyObject(), {}, 'a', counter, typeof value === 'string' ? enc(value) : value);
const text = (o: VersionedObject | undefined): string => new TextDecoder().decode(o!.siblings[0]!.value!);
const tombstone = (counter = 1): VersionedObject => update(emptyObject(), {}, 'a', counter, null);
/**
 * Lets the storage commit the batch the puts before staged: its trigger is a setImmediate
 * registered from a nextTick (staging.ts `afterTurn`), and this registers its own the same way
 * after it, so it runs right after the commit. Under 'fsync' the WAL sync runs on the thread pool
 * and its answer arrives in a later phase of the event loop, so right after this the batch is
 * still in flight.
 */
const nextTurn = (): Promise<void> => new Promise((resolve) => process.nextTick(() => setImmediate(resolve)));
const isDiskFull = (e: unknown): boolean =>
  e instanceof NexusError && e.code === ErrorCodes.STORAGE_FAILED && /disk full/.test(e.message);

describe('SqliteStorage', () => {
  let dir: string;
  let open: SqliteStorage[];

  const openStorage = (opts: Partial<Parameters<typeof SqliteStorage.open>[0]> = {}): SqliteStorage => {
    const s = SqliteStorage.open({ dir, durability: 'fsync', ...opts });
    open.push(s);
    return s;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-sqlite-'));
    open = [];
  });

  afterEach(async () => {
    for (const s of open) await s.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates the folder and file, in WAL mode', () => {
    const nested = path.join(dir, 'nested', 'node1'); // inside the test's folder, removed with it
    const s = openStorage({ dir: nested });
    expect(fs.existsSync(path.join(nested, DB_FILE_NAME))).toBe(true);
    expect(s.info().journalMode).toBe('wal');
  });

  it('keeps data, metadata and the live count across close and reopen', async () => {
    const s = openStorage();
    await Promise.all([
      s.put('a', 0, valueObj('1')),
      s.put('b', 1, valueObj('2')),
      s.put('dead', 1, update(emptyObject(), {}, 'a', 1, null)),
    ]);
    s.setMeta('actor', 'n1');
    const staged = s.put('c', 1, valueObj('3')); // still staged when close starts
    await s.close();
    await staged;
    // The final checkpoint folds the WAL into the main file.
    const wal = path.join(dir, `${DB_FILE_NAME}-wal`);
    expect(!fs.existsSync(wal) || fs.statSync(wal).size === 0).toBe(true);

    const again = openStorage();
    expect(text(again.get('a'))).toBe('1');
    expect(text(again.get('c'))).toBe('3');
    expect(again.get('dead')!.siblings[0]!.value).toBeNull();
    expect(again.liveKeyCount()).toBe(3);
    expect(again.getMeta('actor')).toBe('n1');
    expect(again.scanPartition(1).map(([k]) => k)).toEqual(['b', 'c', 'dead']);
  });

  it('refuses a file with another schema version, naming both versions', async () => {
    await openStorage().close();
    const raw = new Database(path.join(dir, DB_FILE_NAME));
    raw.pragma('user_version = 99');
    raw.close();
    let err: unknown;
    try {
      openStorage();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NexusError);
    expect((err as NexusError).code).toBe(ErrorCodes.STORAGE_FAILED);
    expect((err as NexusError).message).toContain('schema version 99');
    expect((err as NexusError).message).toContain(`schema version ${SCHEMA_VERSION}`);
  });

  it('refuses a file that is not a database', () => {
    fs.writeFileSync(path.join(dir, DB_FILE_NAME), 'x'.repeat(8192));
    expect(() => openStorage()).toThrowError(expect.objectContaining({ code: ErrorCodes.STORAGE_FAILED }));
  });

  it('rejects puts with "disk full" when the size cap is reached, and keeps serving', async () => {
    const s = openStorage({ maxDataBytes: 64 * 1024 });
    await s.put('small', 0, valueObj('kept'));
    const before = s.stats();

    const big = s.put('big', 0, valueObj(new Uint8Array(512 * 1024)));
    const overwrite = s.put('small', 0, valueObj('lost', 2)); // same batch: fails with it
    expect(s.liveKeyCount()).toBe(2);
    await expect(big).rejects.toSatisfy(
      (e: unknown) => e instanceof NexusError && e.code === ErrorCodes.STORAGE_FAILED && /disk full/.test(e.message),
    );
    await expect(overwrite).rejects.toMatchObject({ code: ErrorCodes.STORAGE_FAILED });

    // The previous state shows again, the count is undone, and the node keeps working.
    expect(s.get('big')).toBeUndefined();
    expect(text(s.get('small'))).toBe('kept');
    expect(s.liveKeyCount()).toBe(1);
    expect(s.stats()).toEqual(before);
    expect(s.scanPartition(0).map(([k]) => k)).toEqual(['small']);
    await s.put('other', 0, valueObj('fits'));
    expect(text(s.get('other'))).toBe('fits');
    expect(s.liveKeyCount()).toBe(2);
  });

  it("commits with synchronous=NORMAL, and under 'fsync' syncs the WAL after each commit", async () => {
    const s = openStorage({ durability: 'os' });
    expect(s.info()).toMatchObject({ synchronous: 'NORMAL', syncsEachCommit: false });
    s.setMeta('k', 'v'); // raised to FULL for the meta write only
    expect(s.info().synchronous).toBe('NORMAL');
    await s.close();
    const f = openStorage({ durability: 'fsync' });
    expect(f.info()).toMatchObject({ synchronous: 'NORMAL', syncsEachCommit: true });
    const walSync = (f as unknown as { walSync: WalSync }).walSync;
    const before = walSync.syncs;
    await Promise.all([f.put('a', 0, valueObj('1')), f.put('b', 0, valueObj('2'))]);
    await f.put('c', 0, valueObj('3'));
    expect(walSync.syncs - before).toBe(2); // one per batch, none for the meta write
  });

  it('checkpoints on the main thread once the checkpoint thread has died, and says so', async () => {
    const s = openStorage();
    const wal = path.join(dir, `${DB_FILE_NAME}-wal`);
    expect(s.stats().degraded).toBeUndefined();
    await (s as unknown as { checkpointer: Worker }).checkpointer.terminate();
    await vi.waitFor(() => expect(s.stats().degraded).toMatch(/WAL checkpoint thread exited.*main thread checkpoints/));
    // As in the test below: ~12 MB of WAL if nothing checkpointed it.
    for (let i = 0; i < 600; i++) await s.put(`k${i}`, i % 8, valueObj(`v${i}`));
    expect(fs.statSync(wal).size).toBeLessThan(4 * 1024 * 1024);
    await s.close();
    const again = openStorage();
    expect(text(again.get('k599'))).toBe('v599');
  });

  it('keeps reusing the WAL from its start instead of letting it grow', async () => {
    const s = openStorage();
    const wal = path.join(dir, `${DB_FILE_NAME}-wal`);
    // 600 commits of one row each write ~5 WAL pages apiece: ~12 MB if the WAL only grew. The
    // checkpoints (every 128 commits, the tail on this thread) let SQLite start it over.
    for (let i = 0; i < 600; i++) await s.put(`k${i}`, i % 8, valueObj(`v${i}`));
    expect(s.stats().commits).toBeGreaterThanOrEqual(600);
    expect(fs.statSync(wal).size).toBeLessThan(4 * 1024 * 1024);
  });

  it('rejects bad options before touching the disk', () => {
    expect(() => SqliteStorage.open({ dir: '', durability: 'os' })).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    );
    expect(() => SqliteStorage.open({ dir, durability: 'never' as 'os' })).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    );
    expect(() => SqliteStorage.open({ dir, durability: 'os', maxDataBytes: -1 })).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    );
  });

  it('reads the store once, not twice, for a get followed by a put of the same key', async () => {
    const s = openStorage();
    await s.put('k', 0, valueObj('v1'));
    s.get('k'); // cached from here on
    const read = vi.spyOn(s as unknown as { readCommitted(key: string): unknown }, 'readCommitted');
    expect(s.get('new')).toBeUndefined(); // not cached: one read of the store
    expect(read).toHaveBeenCalledTimes(1);
    await s.put('new', 0, valueObj('n')); // absent -> live, known from the get
    const cur = s.get('k')!; // cached by the read above
    await s.put('k', 0, update(cur, cur.vv, 'a', 2, null)); // live -> deleted, known from the get
    expect(read).toHaveBeenCalledTimes(1);
    expect(s.liveKeyCount()).toBe(1);
    await s.put('other', 0, valueObj('o')); // no get before: reads the committed state once
    expect(read).toHaveBeenCalledTimes(2);
    expect(s.liveKeyCount()).toBe(2);
  });

  it('skips SQLite for keys it never stored, and finds every stored key after a reopen', async () => {
    const s = openStorage();
    // More rows than several chunks of the scan at open, so the scan takes several turns.
    const stored = Array.from({ length: 12_000 }, (_, i) => `k${i}`);
    await Promise.all(stored.map((k, i) => s.put(k, i % 4, valueObj(k))));
    await s.close();

    const again = openStorage();
    expect(again.openScanComplete()).toBe(false);
    await again.put('written-during-the-scan', 0, valueObj('w'));
    await vi.waitFor(() => expect(again.openScanComplete()).toBe(true));
    // The scan is over: only the commit can add this one.
    await again.put('written-after-the-scan', 0, valueObj('a'));
    const lookups = vi.spyOn((again as unknown as { stmts: { getObj: { get(k: string): unknown } } }).stmts.getObj, 'get');
    for (const k of stored) expect(text(again.get(k))).toBe(k);
    expect(text(again.get('written-during-the-scan'))).toBe('w');
    expect(text(again.get('written-after-the-scan'))).toBe('a');
    expect(lookups).toHaveBeenCalledTimes(stored.length + 2);
    lookups.mockClear();
    for (let i = 0; i < 2000; i++) expect(again.get(`never-${i}`)).toBeUndefined();
    // Only the filter's false positives (well under 1% here) reach SQLite.
    expect(lookups.mock.calls.length).toBeLessThan(20);
  });

  it("lists each partition's rows rightly through inserts, moves and deletes made during the scan at open and after", async () => {
    // 'os': a commit lands in the turn it runs, with no WAL sync to wait for while the scan runs on.
    const s = openStorage({ segments: 16, durability: 'os' });
    // 20 chunks of the scan at open. Rowids follow the batch's order: k0 is 1, k39999 is 40000.
    const keys = Array.from({ length: 40_000 }, (_, i) => `k${i}`);
    await Promise.all(keys.map((k, i) => s.put(k, i % 4, valueObj(k))));
    await s.put('k5', 1, tombstone(2)); // rowid 6: the scan's first chunk covers it
    await s.put('k38005', 1, tombstone(2)); // rowid 38006: far beyond it
    await s.close();

    const expected = new Map<number, Set<string>>([0, 1, 2, 3].map((p) => [p, new Set(keys.filter((_, i) => i % 4 === p))]));
    const listed = (st: SqliteStorage, p: number): string[] => st.scanPartition(p).map(([k]) => k);
    const hashed = (st: SqliteStorage, p: number): string[] => st.keyHashes(p, Array.from({ length: 16 }, (_, i) => i)).map(([k]) => k).sort();
    const rows = (st: SqliteStorage): { covered: number; size: number } => (st as unknown as { rows: { covered: number; size: number } }).rows;
    const check = (st: SqliteStorage): void => {
      for (const [p, set] of expected) {
        const want = [...set].sort();
        expect(listed(st, p)).toEqual(want); // scanPartition is in key order
        expect(hashed(st, p)).toEqual(want);
        // Asking for some segments reads just their rows (their segments are kept in memory),
        // including the segment of k2, which moves partition below the scan's position.
        for (const segs of [[0], [5, 11], [3, 7, 15], [segmentOf('k2', 16)]]) {
          const got = st.keyHashes(p, segs).map(([k]) => k).sort();
          expect(got).toEqual(want.filter((k) => segs.includes(segmentOf(k, 16))));
        }
      }
      // Listings only need every row listed; this also rules out stale and doubled rowids.
      if (st.openScanComplete()) expect(rows(st).size).toBe([...expected.values()].reduce((n, set) => n + set.size, 0));
    };

    const again = openStorage({ segments: 16, durability: 'os' });
    expect(again.openScanComplete()).toBe(false);
    await Promise.all([
      // Rows the scan has passed: a deleted one, and one moved to another partition.
      again.collect('k5', 1, again.get('k5')!),
      again.put('k2', 3, valueObj('moved', 2)),
      // Rows it has not reached yet: a deleted one, a moved one and a new one (rowid 40001).
      again.collect('k38005', 1, again.get('k38005')!),
      again.put('k38002', 1, valueObj('moved', 2)),
      again.put('new', 0, tombstone(3)),
    ]);
    expect(rows(again).covered).toBeLessThan(38_000); // so the changes above did meet both cases
    for (const [from, to, k] of [[1, -1, 'k5'], [2, 3, 'k2'], [1, -1, 'k38005'], [2, 1, 'k38002'], [-1, 0, 'new']] as const) {
      expected.get(from)?.delete(k);
      expected.get(to)?.add(k);
    }
    expect(again.openScanComplete()).toBe(false);
    check(again); // the first listing finishes the scan at once
    expect(again.openScanComplete()).toBe(true);

    // SQLite gives a new row the deleted highest rowid again: it must count in its own partition only.
    expect(await again.collect('new', 0, again.get('new')!)).toBe(true);
    expected.get(0)!.delete('new');
    await again.put('reused', 2, valueObj('r'));
    expected.get(2)!.add('reused');
    check(again);
    await again.close();
    const third = openStorage({ segments: 16 });
    check(third); // listed right at open
    await third.close();
    const fourth = openStorage({ segments: 16 });
    await vi.waitFor(() => expect(fourth.openScanComplete()).toBe(true)); // by itself, in the background
    check(fourth);
  });

  it('upgrades a schema-3 file by dropping its index on partition', async () => {
    const s = openStorage();
    await Promise.all(Array.from({ length: 10 }, (_, i) => s.put(`k${i}`, i % 2, valueObj(`v${i}`))));
    await s.close();
    const raw = new Database(path.join(dir, DB_FILE_NAME));
    raw.exec('CREATE INDEX objects_by_partition ON objects (partition)');
    raw.pragma('user_version = 3');
    raw.close();
    const again = openStorage();
    expect(again.scanPartition(1).map(([k]) => k)).toEqual(['k1', 'k3', 'k5', 'k7', 'k9']);
    await again.close();
    const check = new Database(path.join(dir, DB_FILE_NAME), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(check.prepare("SELECT name FROM sqlite_master WHERE name = 'objects_by_partition'").all()).toEqual([]);
    check.close();
  });

  describe('segment hashes and reaped records', () => {
    const rebuilt = (st: SqliteStorage, p: number): SegmentHashes => SegmentHashes.rebuild(st.scanPartition(p), st.segments);

    it('finds and corrects persisted hashes that do not match the data', async () => {
      const s = openStorage({ segments: 16 });
      await Promise.all(Array.from({ length: 50 }, (_, i) => s.put(`k${i}`, i % 3, valueObj(`v${i}`))));
      await s.close();
      const raw = new Database(path.join(dir, DB_FILE_NAME));
      raw.prepare('UPDATE segments SET hashes = zeroblob(length(hashes)) WHERE partition = 1').run(); // damage
      raw.close();
      const again = openStorage({ segments: 16 });
      expect(again.segmentHashes(1).equals(rebuilt(again, 1))).toBe(false);
      expect(await again.checkSegments([0, 1, 2])).toEqual([1]);
      expect(again.segmentHashes(1).equals(rebuilt(again, 1))).toBe(true);
      await again.close();
      const third = openStorage({ segments: 16 });
      expect(await third.checkSegments([0, 1, 2])).toEqual([]); // the correction was persisted
    });

    it('re-indexes a file opened with another segment count', async () => {
      const s = openStorage({ segments: 16 });
      await Promise.all(Array.from({ length: 30 }, (_, i) => s.put(`k${i}`, 0, valueObj(`v${i}`))));
      await s.put('gone', 0, tombstone(7));
      expect(await s.collect('gone', 0, s.get('gone')!)).toBe(true);
      await s.close();
      const again = openStorage({ segments: 64 });
      expect(again.segments).toBe(64);
      expect(again.segmentHashes(0).equals(rebuilt(again, 0))).toBe(true);
      expect(await again.checkSegments([0])).toEqual([]);
      const seg = segmentOf('gone', 64);
      expect(again.reapedHashes(0, [seg]).map(([k]) => k)).toEqual(['gone']);
      // The rows' segments held in memory are the new ones.
      const k3 = segmentOf('k3', 64);
      const inK3 = Array.from({ length: 30 }, (_, i) => `k${i}`).filter((k) => segmentOf(k, 64) === k3);
      expect(again.keyHashes(0, [k3]).map(([k]) => k).sort()).toEqual(inK3.sort());
    });

    it('upgrades a schema-2 file: segment columns, hashes and the reaped table appear, data stays', async () => {
      const raw = new Database(path.join(dir, DB_FILE_NAME));
      raw.exec(`
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE objects (key TEXT PRIMARY KEY, partition INTEGER NOT NULL, live INTEGER NOT NULL, obj BLOB NOT NULL);
        CREATE INDEX objects_by_partition ON objects (partition, key);
        CREATE TABLE hints (id INTEGER PRIMARY KEY, target TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL,
          version INTEGER NOT NULL, created_at INTEGER NOT NULL, obj BLOB NOT NULL);
      `);
      const ins = raw.prepare('INSERT INTO objects (key, partition, live, obj) VALUES (?, ?, ?, ?)');
      for (let i = 0; i < 20; i++) ins.run(`k${i}`, i % 2, 1, encodeObject(valueObj(`v${i}`)));
      ins.run('dead', 0, 0, encodeObject(tombstone(3)));
      raw.pragma('user_version = 2');
      raw.close();
      const s = openStorage({ segments: 32 });
      expect(text(s.get('k7'))).toBe('v7');
      expect(s.liveKeyCount()).toBe(20);
      for (const p of [0, 1]) expect(s.segmentHashes(p).equals(rebuilt(s, p))).toBe(true);
      // Migrated tombstones count their age from the upgrade, not from the epoch.
      expect(s.tombstones(0, Date.now() - 60_000, 10)).toEqual([]);
      expect(s.tombstones(0, Date.now() + 1, 10).map(([k]) => k)).toEqual(['dead']);
      expect(await s.collect('dead', 0, s.get('dead')!)).toBe(true);
    });

    it('a write landing right after a collection still in flight deletes the new reaped record', async () => {
      const s = openStorage();
      await s.put('d', 0, tombstone(4));
      const t = s.get('d')!;
      const collected = s.collect('d', 0, t);
      await nextTurn(); // the collection's batch is now with the commit thread
      const back = s.put('d', 0, update(t, t.vv, 'a', 9, enc('back')));
      expect(await collected).toBe(true);
      await back;
      expect(s.reaped('d')).toBeUndefined();
      expect(s.reapedCount()).toBe(0);
      await s.close();
      const again = openStorage();
      expect(again.reaped('d')).toBeUndefined();
      expect(text(again.get('d'))).toBe('back');
    });

    it('keeps a collected tombstone out of the data and in the reaped table across reopen', async () => {
      const s = openStorage();
      await s.put('d', 2, tombstone(4));
      const t = s.get('d')!;
      await s.put('x', 2, valueObj('x'));
      expect(await s.collect('d', 2, t)).toBe(true);
      await s.close();
      const again = openStorage();
      expect(again.get('d')).toBeUndefined();
      expect(again.reaped('d')).toEqual(t);
      expect(again.reapedCount()).toBe(1);
      expect(again.segmentHashes(2).equals(rebuilt(again, 2))).toBe(true);
      await again.put('d', 2, valueObj('again', 9));
      await again.close();
      const third = openStorage();
      expect(third.reaped('d')).toBeUndefined();
      expect(text(third.get('d'))).toBe('again');
    });
  });

  describe('group commit, with the WAL synced off the main thread', () => {
    it('shows each committed batch to reads on the main connection as soon as its put resolves', async () => {
      const s = openStorage();
      // Read the main connection directly: `get` would answer these from the state cache.
      const committed = (key: string): VersionedObject | undefined => (s as unknown as { readCommitted(key: string): { obj: VersionedObject } | undefined }).readCommitted(key)?.obj;
      for (let i = 1; i <= 100; i++) {
        await Promise.all([s.put('k', 0, valueObj(`v${i}`, i)), s.put(`fresh${i}`, 1, valueObj(`f${i}`))]);
        expect(text(committed('k'))).toBe(`v${i}`);
        expect(text(committed(`fresh${i}`))).toBe(`f${i}`);
        expect(text(s.get('k'))).toBe(`v${i}`);
        expect(s.scanPartition(1)).toHaveLength(i);
      }
      // And they are in the file, for any other connection.
      const raw = new Database(path.join(dir, DB_FILE_NAME), { readonly: true });
      try {
        expect(raw.prepare('SELECT count(*) FROM objects').pluck().get()).toBe(101);
      } finally {
        raw.close();
      }
    });

    it('serves hot keys from its cache of committed states, coherent with every landed write', async () => {
      const s = openStorage();
      await s.put('hot', 0, valueObj('v1', 1));
      const readCommitted = vi.spyOn(s as unknown as { readCommitted(key: string): unknown }, 'readCommitted');
      // A blind write does not enter the cache; the first read does.
      expect(text(s.get('hot'))).toBe('v1');
      expect(readCommitted).toHaveBeenCalledTimes(1);
      readCommitted.mockClear();
      expect(text(s.get('hot'))).toBe('v1');
      await s.put('hot', 0, valueObj('v2', 2));
      expect(text(s.get('hot'))).toBe('v2'); // the landed write updated the cached entry
      expect(readCommitted).not.toHaveBeenCalled();
      // After a reopen the cache is empty: the first read goes to the file, the next does not.
      await s.close();
      const again = openStorage();
      const spy = vi.spyOn(again as unknown as { readCommitted(key: string): unknown }, 'readCommitted');
      expect(text(again.get('hot'))).toBe('v2');
      expect(text(again.get('hot'))).toBe('v2');
      expect(spy).toHaveBeenCalledTimes(1);
    });

    it('commits what is staged while a batch is in flight as the next batch, resolving all in order', async () => {
      const s = openStorage();
      await s.put('a', 0, valueObj('a1'));
      const before = s.stats();
      const order: string[] = [];
      const track = (name: string, p: Promise<void>): Promise<void> => p.then(() => void order.push(name));

      const first = [
        track('1a', s.put('a', 0, valueObj('a2', 2))),
        track('1b', s.put('b', 0, valueObj('b1'))),
        track('1t', s.put('t', 0, valueObj('t1'))),
      ];
      await nextTurn();
      expect(s.stats()).toEqual(before); // the first batch is in flight
      const second = [
        track('2a', s.put('a', 0, valueObj('a3', 3))), // re-staged while its earlier state is in flight
        track('2c', s.put('c', 1, valueObj('c1'))),
        track('2t', s.put('t', 0, tombstone(2))), // live (in flight) -> deleted
      ];
      expect(text(s.get('a'))).toBe('a3');
      expect(s.get('t')!.siblings[0]!.value).toBeNull();
      expect(s.liveKeyCount()).toBe(3);

      await s.flush(); // waits for both batches
      expect(order).toEqual(['1a', '1b', '1t', '2a', '2c', '2t']);
      await Promise.all([...first, ...second]);
      const after = s.stats();
      expect(after.commits - before.commits).toBe(2);
      expect(after.writes - before.writes).toBe(6);
      expect(text(s.get('a'))).toBe('a3');
      expect(s.liveKeyCount()).toBe(3);

      // Both batches' liveness bookkeeping holds for later writes too.
      await s.put('t', 0, update(s.get('t')!, {}, 'b', 1, enc('back'))); // deleted -> live
      expect(s.liveKeyCount()).toBe(4);
      await s.close();
      const again = openStorage();
      expect(again.liveKeyCount()).toBe(4);
      expect(['a', 'b', 'c'].map((k) => text(again.get(k)))).toEqual(['a3', 'b1', 'c1']);
    });

    it('close commits both the batch in flight and what is staged behind it', async () => {
      const s = openStorage();
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) inFlight.push(s.put(`x${i}`, i % 4, valueObj(`x${i}`)));
      await nextTurn();
      const staged: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) staged.push(s.put(`y${i}`, i % 4, valueObj(`y${i}`)));
      staged.push(s.put('x0', 0, valueObj('x0 again', 2)));
      await s.close();
      await Promise.all([...inFlight, ...staged]);
      expect(s.stats().writes).toBe(101);
      const wal = path.join(dir, `${DB_FILE_NAME}-wal`);
      expect(!fs.existsSync(wal) || fs.statSync(wal).size === 0).toBe(true);

      const again = openStorage();
      expect(again.liveKeyCount()).toBe(100);
      expect(text(again.get('x0'))).toBe('x0 again');
      expect(text(again.get('x49'))).toBe('x49');
      expect(text(again.get('y49'))).toBe('y49');
    });

    it('fails only the batch that hits the size cap, not the one staged behind it', async () => {
      const s = openStorage({ maxDataBytes: 64 * 1024 });
      await s.put('small', 0, valueObj('kept'));
      const before = s.stats();

      const big = expect(s.put('big', 0, valueObj(new Uint8Array(512 * 1024)))).rejects.toSatisfy(isDiskFull);
      const lost = expect(s.put('small', 0, valueObj('lost', 2))).rejects.toSatisfy(isDiskFull);
      expect(s.liveKeyCount()).toBe(2);
      await nextTurn(); // that batch failed in its transaction
      expect(s.liveKeyCount()).toBe(1);
      const after = s.put('small', 0, valueObj('after', 3));
      const other = s.put('other', 0, valueObj('fits'));
      expect(s.liveKeyCount()).toBe(2);

      await big;
      await lost;
      await expect(Promise.all([after, other])).resolves.toBeDefined();
      expect(s.get('big')).toBeUndefined();
      expect(text(s.get('small'))).toBe('after');
      expect(text(s.get('other'))).toBe('fits');
      expect(s.liveKeyCount()).toBe(2);
      expect(s.stats()).toEqual({ commits: before.commits + 1, writes: before.writes + 2 });

      // The other way round: a batch fails after the one in flight before it committed. Its keys
      // fall back to what that batch wrote (here: 'fresh' live again, so counted again).
      const fresh = s.put('fresh', 0, valueObj('f'));
      await nextTurn(); // in flight: committed, its WAL sync running
      const doomed = [s.put('fresh', 0, tombstone(2)), s.put('big2', 0, valueObj(new Uint8Array(512 * 1024)))].map((p) =>
        expect(p).rejects.toSatisfy(isDiskFull),
      );
      expect(s.liveKeyCount()).toBe(3); // small, other, big2
      await fresh;
      for (const p of doomed) await p;
      expect(text(s.get('fresh'))).toBe('f');
      expect(s.liveKeyCount()).toBe(3); // small, other, fresh
      // The failed batch's changes to the segment hashes were taken back: a later write to the same
      // key carries the committer's hash of its segment to the staging layer, and it must still
      // equal a rebuild from the stored rows.
      await s.put('fresh', 0, valueObj('f again', 3));
      expect(await s.checkSegments([0])).toEqual([]);

      await s.close();
      const again = openStorage({ maxDataBytes: 64 * 1024 });
      expect(again.get('big')).toBeUndefined();
      expect(text(again.get('small'))).toBe('after');
      expect(again.liveKeyCount()).toBe(3);
      expect(await again.checkSegments([0])).toEqual([]);
    });

    it('rejects pending and later puts with STORAGE_FAILED once a WAL sync fails, and keeps serving reads', async () => {
      const s = openStorage();
      await s.put('a', 0, valueObj('a'));
      // Every later fdatasync fails, as on a disk that went bad.
      const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      (s as unknown as { walSync: WalSync }).walSync = new WalSync(-1, (_fd, callback) => setImmediate(() => callback(eio)));
      const ioError = (e: unknown): boolean =>
        e instanceof NexusError && e.code === ErrorCodes.STORAGE_FAILED && /^I\/O error: syncing the WAL/.test(e.message);
      const pending = expect(s.put('b', 0, valueObj('b'))).rejects.toSatisfy(ioError);
      await nextTurn(); // committed, its sync running
      const staged = expect(s.put('c', 0, valueObj('c'))).rejects.toSatisfy(ioError);
      await pending;
      await staged;
      await expect(s.put('d', 0, valueObj('d'))).rejects.toSatisfy(ioError);

      expect(text(s.get('a'))).toBe('a');
      expect(s.get('c')).toBeUndefined();
      expect(s.get('d')).toBeUndefined();
      // 'b' was committed before its sync failed: whether it is on disk is unknown, and the count
      // follows the file.
      expect(text(s.get('b'))).toBe('b');
      expect(s.liveKeyCount()).toBe(2);
      await s.flush(); // nothing left to wait for
      // Close says what failed; the final checkpoint still folds the WAL into the file.
      await expect(s.close()).rejects.toSatisfy((e: unknown) => e instanceof NexusError && /^closed, but I\/O error/.test(e.message));
      expect(openStorage().liveKeyCount()).toBe(2);
    });
  });
});
