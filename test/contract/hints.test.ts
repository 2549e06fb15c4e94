// The hint store contract, run against the in-memory store and the SQLite one (hints table,
// committed on the storage worker): merging per (target, key), delete by id and version only,
// per-target counts, and — for SQLite — hints that survive a restart.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyObject, liveValues, update, type VersionedObject } from '../../src/core/version.js';
import { MemoryHintStore } from '../../src/handoff/memory.js';
import type { HintStore } from '../../src/handoff/types.js';
import { SqliteStorage } from '../../src/storage/sqlite.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (o: VersionedObject | undefined): string[] => (o ? liveValues(o).map((v) => Buffer.from(v).toString()).sort() : []);
let counter = 0;
// Each write from its own actor: concurrent writes, so merging keeps them all as siblings.
const write = (value: string, base = emptyObject()): VersionedObject => update(base, {}, `a${++counter}~1`, counter, enc(value));

interface Harness {
  store: HintStore;
  reopen?: () => Promise<HintStore>;
  close: () => Promise<void>;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const implementations: Array<[string, () => Harness]> = [
  ['memory', () => ({ store: new MemoryHintStore(), close: async () => {} })],
  [
    'sqlite',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'nexus-hints-'));
      dirs.push(dir);
      let storage = SqliteStorage.open({ dir, durability: 'fsync' });
      const h: Harness = {
        store: storage.hintStore(),
        reopen: async () => {
          await storage.close();
          storage = SqliteStorage.open({ dir, durability: 'fsync' });
          return storage.hintStore();
        },
        close: () => storage.close(),
      };
      return h;
    },
  ],
];

describe.each(implementations)('hint store contract (%s)', (_name, make) => {
  it('merges writes for the same target and key into one hint, bumping its version', async () => {
    const h = make();
    try {
      await h.store.addHint('b', 'k', 3, write('one'), 1000);
      await h.store.addHint('b', 'k', 3, write('two'), 2000);
      await h.store.addHint('c', 'k', 3, write('three'), 3000);
      const forB = h.store.hintsFor('b', 10);
      expect(forB).toHaveLength(1);
      expect(forB[0]!.version).toBe(2);
      expect(forB[0]!.createdAt).toBe(1000);
      expect(dec(forB[0]!.obj)).toEqual(['one', 'two']);
      expect(dec(h.store.hintedState('k'))).toEqual(['one', 'three', 'two']);
      expect(h.store.hintedState('other')).toBeUndefined();
      expect(Object.fromEntries(h.store.pendingHints())).toEqual({ b: 1, c: 1 });
    } finally {
      await h.close();
    }
  });

  it('deletes a hint only at the version that was delivered', async () => {
    const h = make();
    try {
      await h.store.addHint('b', 'k', 3, write('one'), 1000);
      const sent = h.store.hintsFor('b', 10).map((x) => ({ id: x.id, version: x.version }));
      await h.store.addHint('b', 'k', 3, write('newer'), 1500); // arrives during delivery
      expect(h.store.removeHints(sent)).toBe(0);
      const again = h.store.hintsFor('b', 10);
      expect(dec(again[0]!.obj)).toEqual(['newer', 'one']);
      expect(h.store.removeHints(again.map((x) => ({ id: x.id, version: x.version })))).toBe(1);
      expect(h.store.hintsFor('b', 10)).toEqual([]);
      expect(h.store.pendingHints().size).toBe(0);
      expect(h.store.hintedState('k')).toBeUndefined();
    } finally {
      await h.close();
    }
  });

  it('lists hints older than a time, oldest first, up to a limit', async () => {
    const h = make();
    try {
      for (let i = 0; i < 5; i++) await h.store.addHint('b', `k${i}`, 0, write(`v${i}`), 1000 + i);
      expect(h.store.hintsOlderThan(1003, 10).map((x) => x.key)).toEqual(['k0', 'k1', 'k2']);
      expect(h.store.hintsOlderThan(1003, 2).map((x) => x.key)).toEqual(['k0', 'k1']);
      expect(h.store.hintsFor('b', 2).map((x) => x.key)).toEqual(['k0', 'k1']);
    } finally {
      await h.close();
    }
  });
});

describe('sqlite hint store', () => {
  it('keeps acknowledged hints across a restart', async () => {
    const h = implementations[1]![1]();
    try {
      await h.store.addHint('b', 'k1', 1, write('kept'), 1000);
      await h.store.addHint('c', 'k2', 2, write('delivered'), 1000);
      const delivered = h.store.hintsFor('c', 10).map((x) => ({ id: x.id, version: x.version }));
      expect(h.store.removeHints(delivered)).toBe(1);
      const after = await h.reopen!();
      expect(Object.fromEntries(after.pendingHints())).toEqual({ b: 1 });
      expect(dec(after.hintedState('k1'))).toEqual(['kept']);
      // New hints after a restart never reuse an id.
      await after.addHint('d', 'k3', 3, write('new'), 2000);
      const ids = [...after.hintsFor('b', 10), ...after.hintsFor('d', 10)].map((x) => x.id);
      expect(new Set(ids).size).toBe(2);
    } finally {
      await h.close();
    }
  });
});
