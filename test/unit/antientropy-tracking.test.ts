// Segment hashes are kept by the storage on every change of visible state and (SQLite) persisted in
// the write's own transaction. They must stay equal to a rebuild from the stored data through
// overwrites, deletes, tombstone collection, writes staged while a batch is in flight, failed
// batches that revert what was staged — and, on SQLite, across a reopen with no rebuild.

import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SegmentHashes } from '../../src/antientropy/segments.js';
import { emptyObject, isDeleted, update, type VersionedObject } from '../../src/core/version.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { SqliteStorage } from '../../src/storage/sqlite.js';
import type { Storage } from '../../src/storage/types.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const PARTITIONS = 4;

const opArb = fc.record({
  key: fc.integer({ min: 0, max: 7 }), // few keys, so deletes and collections often meet
  // 'checkpoint': SQLite writes its segment-hash checkpoint now, so the reopen below replays a
  // journal that starts mid-sequence.
  kind: fc.constantFrom('put', 'del', 'collect', 'checkpoint'),
  fail: fc.boolean(),
  sameTick: fc.boolean(),
});
type Op = { key: number; kind: 'put' | 'del' | 'collect' | 'checkpoint'; fail: boolean; sameTick: boolean };

/** Applies `ops`; `setFailing` (memory only) makes the next batches fail. */
async function run(storage: Storage, ops: Op[], setFailing: (f: boolean) => void): Promise<void> {
  let counter = 0;
  let pending: Promise<unknown>[] = [];
  for (const op of ops) {
    const key = `k${op.key}`;
    const partition = op.key % PARTITIONS;
    const local: VersionedObject = storage.get(key) ?? storage.reaped(key) ?? emptyObject();
    setFailing(op.fail);
    if (op.kind === 'checkpoint') {
      if (storage instanceof SqliteStorage) pending.push(storage.checkpointSegments());
    } else if (op.kind === 'collect') {
      if (storage.get(key) !== undefined && isDeleted(local)) pending.push(storage.collect(key, partition, local).catch(() => {}));
    } else {
      const next = update(local, local.vv, `a${++counter}~1`, counter, op.kind === 'del' ? null : enc(`v${counter}`));
      pending.push(storage.put(key, partition, next).catch(() => {}));
    }
    if (!op.sameTick) {
      await Promise.all(pending);
      pending = [];
    }
  }
  setFailing(false);
  await Promise.all(pending);
  await storage.flush();
}

function expectMatchesData(storage: Storage): void {
  for (let p = 0; p < PARTITIONS; p++) {
    expect(storage.segmentHashes(p).equals(SegmentHashes.rebuild(storage.scanPartition(p), storage.segments))).toBe(true);
  }
}

describe('segment hashes kept by the storage', () => {
  it('equal a rebuild after any sequence of puts, deletes, collections and failed batches (memory)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        let failing = false;
        const storage = new MemoryStorage({ failWrites: () => failing, segments: 64 });
        await run(storage, ops, (f) => (failing = f));
        expectMatchesData(storage);
      }),
      { numRuns: 150 },
    );
  });

  it('are persisted with each write: a reopened SQLite file has them right without a rebuild', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-seg-'));
        try {
          const first = SqliteStorage.open({ dir, durability: 'os', segments: 64 });
          await run(first, ops, () => {});
          expectMatchesData(first);
          // A second connection opened without closing the first reads only what was committed,
          // as a restart after kill -9 would.
          const second = SqliteStorage.open({ dir, durability: 'os', segments: 64 });
          expectMatchesData(second);
          for (let p = 0; p < PARTITIONS; p++) expect(second.segmentHashes(p).equals(first.segmentHashes(p))).toBe(true);
          await second.close();
          await first.close();
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 15 },
    );
  });
});
