// Segment hashes kept from storage change events stay equal to a rebuild from the stored data —
// through overwrites, deletes, writes staged while a batch is in flight, and failed batches that
// revert what was staged. (AntiEntropy keeps its hashes exactly this way.)

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyObject, update, type VersionedObject } from '../../src/core/version.js';
import { SegmentHashes } from '../../src/antientropy/segments.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('segment hashes from storage change events', () => {
  it('equal a rebuild after any sequence of puts, deletes and failed batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.integer({ min: 0, max: 15 }), del: fc.boolean(), fail: fc.boolean(), sameTick: fc.boolean() }), { minLength: 1, maxLength: 40 }),
        async (ops) => {
          let failing = false;
          const storage = new MemoryStorage({ failWrites: () => failing });
          const hashes = new Map<number, SegmentHashes>();
          const of = (p: number): SegmentHashes => hashes.get(p) ?? (hashes.set(p, new SegmentHashes(64)), hashes.get(p)!);
          storage.onChange((key, partition, before, after) => of(partition).apply(key, before, after));
          let counter = 0;
          let pending: Promise<void>[] = [];
          for (const op of ops) {
            const key = `k${op.key}`;
            const partition = op.key % 4;
            const local: VersionedObject = storage.get(key) ?? emptyObject();
            const next = update(local, local.vv, `a${++counter}~1`, counter, op.del ? null : enc(`v${counter}`));
            failing = op.fail;
            pending.push(storage.put(key, partition, next).catch(() => {}));
            if (!op.sameTick) {
              await Promise.all(pending);
              pending = [];
            }
          }
          failing = false;
          await Promise.all(pending);
          await storage.flush();
          for (let p = 0; p < 4; p++) expect(of(p).equals(SegmentHashes.rebuild(storage.scanPartition(p), 64))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});
