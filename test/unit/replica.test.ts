// A replica merges incoming objects into its storage. After a tombstone is collected, its reaped
// record still takes part in that merge: a stale copy of what the delete superseded (a late hint,
// a replica that was away) merges into nothing new, while a concurrent or newer write survives.

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { emptyObject, liveValues, update } from '../../src/core/version.js';
import { NodeIdentity } from '../../src/replica/identity.js';
import { Replica } from '../../src/replica/replica.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (v: Uint8Array): string => new TextDecoder().decode(v);

async function collectedKey() {
  const storage = new MemoryStorage({ segments: 16 });
  const identity = NodeIdentity.open(storage, 'n1', { members: [{ id: 'n1', url: 'ws://127.0.0.1:1' }], n: 1, partitions: 4 }, silentLogger());
  const replica = new Replica(storage, identity, 100);
  const old = update(emptyObject(), {}, 'other~1', 1, enc('old'));
  await replica.apply('k', 0, old);
  const tomb = update(old, old.vv, 'other~1', 2, null); // the delete saw 'old'
  await replica.apply('k', 0, tomb);
  expect(await storage.collect('k', 0, storage.get('k')!)).toBe(true);
  return { storage, replica, old, tomb };
}

describe('Replica over a collected tombstone', () => {
  it('ignores a stale copy of the value the delete superseded', async () => {
    const { storage, replica, old } = await collectedKey();
    await replica.apply('k', 0, old);
    expect(storage.get('k')).toBeUndefined();
    expect(storage.reaped('k')).toBeDefined();
  });

  it('keeps a write the delete did not see, and a new coordinated write', async () => {
    const { storage, replica } = await collectedKey();
    const concurrent = update(emptyObject(), {}, 'third~1', 1, enc('concurrent'));
    await replica.apply('k', 0, concurrent);
    expect(liveValues(storage.get('k')!).map(text)).toEqual(['concurrent']);
    expect(storage.reaped('k')).toBeUndefined();

    const fresh = await collectedKey();
    const w = fresh.replica.coordinate('k', 0, {}, enc('new'));
    await w.durable;
    expect(liveValues(fresh.storage.get('k')!).map(text)).toEqual(['new']);
  });
});
