// SQLite-only behaviour: persistence across reopen, the schema check, a full disk, durability.

import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import { emptyObject, update, type VersionedObject } from '../../src/core/version.js';
import { DB_FILE_NAME, SCHEMA_VERSION, SqliteStorage } from '../../src/storage/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const valueObj = (value: Uint8Array | string, counter = 1): VersionedObject =>
  update(emptyObject(), {}, 'a', counter, typeof value === 'string' ? enc(value) : value);
const text = (o: VersionedObject | undefined): string => new TextDecoder().decode(o!.siblings[0]!.value!);

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
    dir = path.join(dir, 'nested', 'node1');
    const s = openStorage();
    expect(fs.existsSync(path.join(dir, DB_FILE_NAME))).toBe(true);
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

  it("runs 'os' durability with synchronous=NORMAL and 'fsync' with FULL", async () => {
    const s = openStorage({ durability: 'os' });
    expect(s.info().synchronous).toBe('NORMAL');
    s.setMeta('k', 'v'); // raised to FULL for the meta write only
    expect(s.info().synchronous).toBe('NORMAL');
    await s.close();
    expect(openStorage({ durability: 'fsync' }).info().synchronous).toBe('FULL');
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
});
