// Anti-entropy's pure core (src/antientropy/): segment hashes kept by XOR on every write, the
// Merkle tree over them, and the exchange steps (findDifferences → diffKeys → repairPlan) run
// between two in-memory stores in one process, the remote reached only through functions.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { decodeObject, emptyObject, encodeObject, isDeleted, merge, objectHash, sameState, update, type VersionedObject } from '../../src/core/version.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { SEGMENTS_DEFAULT, SegmentHashes, keyEncodedHash, keyObjectHash, segmentDelta, segmentOf } from '../../src/antientropy/segments.js';
import { contribution } from '../../src/storage/sqlite-commit.js';
import { SegmentTree, TreeCache } from '../../src/antientropy/tree.js';
import { diffKeys, findDifferences, repairPlan, serveSegments, type KeyHashes } from '../../src/antientropy/compare.js';

// ---------------------------------------------------------------------------------------------
// An in-memory replica of one partition: objects plus incrementally kept segment hashes.

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

class MemStore {
  readonly objs = new Map<string, VersionedObject>();
  hashes: SegmentHashes;
  constructor(readonly segments: number = SEGMENTS_DEFAULT) {
    this.hashes = new SegmentHashes(segments);
  }
  /** Stores `obj` as the key's new state (undefined = collected), keeping the hashes in step. */
  put(key: string, obj: VersionedObject | undefined): void {
    this.hashes.apply(key, this.objs.get(key), obj);
    if (obj === undefined) this.objs.delete(key);
    else this.objs.set(key, obj);
  }
  /** What a replica does with an object from elsewhere: merge it into what it holds. */
  receive(key: string, obj: VersionedObject): void {
    this.put(key, merge(this.objs.get(key) ?? emptyObject(), obj));
  }
  keyHashes(segs: readonly number[]): KeyHashes {
    const wanted = new Set(segs);
    const out: [string, Buffer][] = [];
    for (const [k, o] of this.objs) if (wanted.has(segmentOf(k, this.segments))) out.push([k, keyObjectHash(k, o)]);
    return out;
  }
  pick(keys: readonly string[]): Map<string, VersionedObject> {
    const out = new Map<string, VersionedObject>();
    for (const k of keys) {
      const o = this.objs.get(k);
      if (o !== undefined) out.set(k, o);
    }
    return out;
  }
  clone(): MemStore {
    const c = new MemStore(this.segments);
    for (const [k, o] of this.objs) c.objs.set(k, o);
    c.hashes = SegmentHashes.fromBuffer(this.hashes.toBuffer());
    return c;
  }
}

let counter = 0; // one counter for every actor, so no dot is ever issued twice
const write = (s: MemStore, key: string, actor: string, value: Uint8Array | null, blind = false): void => {
  const cur = s.objs.get(key) ?? emptyObject();
  s.put(key, update(cur, blind ? {} : cur.vv, actor, ++counter, value));
};

/** n keys written once by actor x, identical on both returned stores. */
function twinStores(n: number, segments = SEGMENTS_DEFAULT): [MemStore, MemStore] {
  const a = new MemStore(segments);
  for (let i = 0; i < n; i++) write(a, `key-${i}`, 'x~0', enc(`v${i}`));
  return [a, a.clone()];
}

/** One full exchange from a's point of view; both stores are repaired in place. */
async function exchange(a: MemStore, b: MemStore, levelsPerRound = 1) {
  const diff = await findDifferences(SegmentTree.build(a.hashes), serveSegments(SegmentTree.build(b.hashes)), { levelsPerRound });
  const keys = await diffKeys((s) => a.keyHashes(s), async (s) => b.keyHashes(s), diff.segments);
  const wanted = [...keys.missingHere, ...keys.missingThere, ...keys.differing];
  const plan = repairPlan(a.pick(wanted), b.pick(wanted));
  for (const [k, o] of plan.toLocal) a.receive(k, o);
  for (const [k, o] of plan.toRemote) b.receive(k, o);
  return { diff, keys, plan };
}

// ---------------------------------------------------------------------------------------------

describe('segment hashes', () => {
  const op = fc.record({
    key: fc.integer({ min: 0, max: 30 }),
    kind: fc.constantFrom('overwrite', 'blind', 'delete', 'collect', 'remerge'),
    actor: fc.constantFrom('a~0', 'b~0'),
  });

  it('kept incrementally they equal a rebuild, over random writes, overwrites, deletes and collections', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.constantFrom(1, 16, 1024), (ops, segments) => {
        const s = new MemStore(segments);
        const history = new Map<string, VersionedObject[]>();
        for (const { key: i, kind, actor } of ops) {
          const key = `k${i}`;
          const before = s.objs.get(key);
          if (kind === 'collect') {
            s.put(key, undefined);
            history.delete(key); // states from before a collection are not older than what follows
          }
          else if (kind === 'remerge') {
            // Merging in an older state of the key changes nothing, so the hashes must not move.
            const old = history.get(key)?.[0];
            if (old === undefined || before === undefined) continue;
            const snapshot = s.hashes.toBuffer();
            s.receive(key, old);
            expect(s.hashes.toBuffer().equals(snapshot)).toBe(true);
          } else write(s, key, actor, kind === 'delete' ? null : enc(`v${counter}`), kind === 'blind');
          const after = s.objs.get(key);
          if (after !== undefined) history.set(key, [...(history.get(key) ?? []), after]);
        }
        expect(s.hashes.equals(SegmentHashes.rebuild(s.objs, segments))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('a SQLite commit hashes a row exactly as keyObjectHash does', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), fc.uint8Array({ maxLength: 300 }), fc.boolean(), (key, value, del) => {
        const obj = update(emptyObject(), {}, 'n1~1', 1, del ? null : value);
        const bytes = encodeObject(obj);
        expect(contribution(key, bytes).equals(keyObjectHash(key, obj))).toBe(true);
        expect(keyEncodedHash(key, bytes).equals(keyObjectHash(key, obj))).toBe(true);
        // A stored object decoded and encoded again hashes the same (rebuilds rely on it).
        expect(keyObjectHash(key, decodeObject(bytes)).equals(keyObjectHash(key, obj))).toBe(true);
      }),
    );
  });

  it('apply with an unchanged state is a no-op, and absent → absent too', () => {
    const s = new MemStore();
    write(s, 'k', 'a~0', enc('v'));
    const obj = s.objs.get('k')!;
    const before = s.hashes.toBuffer();
    expect(s.hashes.apply('k', obj, { vv: { ...obj.vv }, siblings: obj.siblings.map((x) => ({ ...x })) })).toBe(-1);
    expect(s.hashes.apply('k', obj, merge(obj, emptyObject()))).toBe(-1);
    expect(s.hashes.apply('other', undefined, undefined)).toBe(-1);
    expect(segmentDelta('k', obj, obj, s.segments)).toBeNull();
    expect(s.hashes.toBuffer().equals(before)).toBe(true);
  });

  it('a tombstone contributes like a value, and differently from absence', () => {
    const s = new MemStore();
    write(s, 'k', 'a~0', enc('v'));
    const withValue = s.hashes.get(segmentOf('k', s.segments));
    write(s, 'k', 'a~0', null);
    const withTombstone = s.hashes.get(segmentOf('k', s.segments));
    expect(withTombstone.equals(withValue)).toBe(false);
    expect(withTombstone.equals(Buffer.alloc(16))).toBe(false);
  });

  it('is independent of the order of writes (XOR commutes)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 40 }), fc.integer(), (keys, seed) => {
        const objs = keys.map((k, i): [string, VersionedObject] => [k, update(emptyObject(), {}, 'a~0', i + 1, enc(`${k}${seed}`))]);
        const shuffled = [...objs].sort((x, y) => objectHash(x[1]).compare(objectHash(y[1])));
        expect(SegmentHashes.rebuild(objs, 64).equals(SegmentHashes.rebuild(shuffled, 64))).toBe(true);
        expect(SegmentHashes.rebuild(objs, 64).equals(SegmentHashes.rebuild(objs.reverse(), 64))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('round-trips through its storage form, applies deltas like apply, and refuses malformed bytes', () => {
    const [a] = twinStores(200, 64);
    const back = SegmentHashes.fromBuffer(a.hashes.toBuffer());
    expect(back.equals(a.hashes)).toBe(true);
    expect(back.segments).toBe(64);
    const obj = update(emptyObject(), {}, 'a~0', ++counter, enc('z'));
    const d = segmentDelta('new-key', undefined, obj, 64)!;
    back.xorSegment(d.segment, d.delta);
    a.hashes.apply('new-key', undefined, obj);
    expect(back.equals(a.hashes)).toBe(true);
    for (const bad of [Buffer.alloc(0), Buffer.from([1]), Buffer.alloc(1 + 17, 1), Buffer.concat([Buffer.from([9]), Buffer.alloc(16)]), Buffer.alloc(1 + 3 * 16, 1)])
      expect(() => SegmentHashes.fromBuffer(bad)).toThrow();
    expect(() => new SegmentHashes(1000)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }));
  });
});

describe('the Merkle tree over segment hashes', () => {
  const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

  it('has full binary levels: each node is sha256(left ‖ right), leaves are the segment hashes', () => {
    for (const segments of [1, 2, 8, SEGMENTS_DEFAULT]) {
      const [a] = twinStores(50, segments);
      const t = SegmentTree.build(a.hashes);
      expect(t.levelCount).toBe(Math.log2(segments) + 1);
      expect(t.level(t.depth)).toEqual(a.hashes.toArray());
      for (let l = 0; l < t.depth; l++) {
        const up = t.level(l);
        const down = t.level(l + 1);
        expect(up.length * 2).toBe(down.length);
        up.forEach((h, j) => expect(h.equals(sha(Buffer.concat([down[2 * j]!, down[2 * j + 1]!])))).toBe(true));
      }
      expect(t.root().equals(t.level(0)[0]!)).toBe(true);
    }
    expect(() => SegmentTree.build([Buffer.alloc(16), Buffer.alloc(16), Buffer.alloc(16)])).toThrow(/power of two/);
  });

  it('a kept tree is reused while its segment hashes are unchanged, and stays the snapshot it was', () => {
    const [a] = twinStores(50, 64);
    const cache = new TreeCache();
    const first = cache.tree(3, a.hashes);
    const root = Buffer.from(first.root());
    expect(cache.tree(3, a.hashes)).toBe(first);
    expect(cache.builds).toBe(1);
    a.hashes.xorSegment(7, Buffer.alloc(16, 1));
    const second = cache.tree(3, a.hashes);
    expect(second).not.toBe(first);
    expect(second.root().equals(root)).toBe(false);
    expect(first.root().equals(root)).toBe(true); // the first exchange's snapshot did not move
    expect(second.level(second.depth)).toEqual(a.hashes.toArray());
    expect(cache.builds).toBe(2);
  });

  it('roots are equal exactly when the segment hashes are', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { minLength: 64, maxLength: 64 }),
        fc.array(fc.record({ i: fc.integer({ min: 0, max: 63 }), byte: fc.integer({ min: 0, max: 15 }), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 3 }),
        (leaves, flips) => {
          const a = leaves.map((l) => Buffer.from(l));
          const b = a.map((l) => Buffer.from(l));
          for (const f of flips) b[f.i]![f.byte] ^= 1 << f.bit;
          const same = a.every((l, i) => l.equals(b[i]!));
          expect(SegmentTree.build(a).root().equals(SegmentTree.build(b).root())).toBe(same);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a tree made from the kept one equals merkle-tools' full build over the new hashes, and leaves the kept one as it was", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 64, 1024),
        fc.array(fc.record({ i: fc.nat(), byte: fc.integer({ min: 0, max: 15 }) }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.record({ i: fc.nat(), byte: fc.integer({ min: 0, max: 15 }) }), { maxLength: 40 }),
        (segments, first, second) => {
          const hashes = new SegmentHashes(segments);
          const flip = (changes: Array<{ i: number; byte: number }>): void => {
            for (const c of changes) {
              const delta = Buffer.alloc(16);
              delta[c.byte] = 1 + (c.i % 255);
              hashes.xorSegment(c.i % segments, delta);
            }
          };
          flip(first);
          const kept = SegmentTree.build(hashes);
          const keptLevels = Array.from({ length: kept.levelCount }, (_, l) => kept.level(l).map((h) => Buffer.from(h)));
          flip(second);
          const made = kept.withLeaves(hashes);
          const full = SegmentTree.build(hashes);
          for (let l = 0; l < full.levelCount; l++) expect(made.level(l)).toEqual(full.level(l));
          for (let l = 0; l < kept.levelCount; l++) expect(kept.level(l)).toEqual(keptLevels[l]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a partition's first tree, and the next after a change, are made from kept ones with every level right", () => {
    const [a] = twinStores(200, 1024);
    const cache = new TreeCache();
    const sameAsFullBuild = (made: SegmentTree): void => {
      const full = SegmentTree.build(a.hashes);
      expect(made.root()).toEqual(full.root());
      for (let l = 0; l < full.levelCount; l++) expect(made.level(l)).toEqual(full.level(l));
    };
    sameAsFullBuild(cache.tree(5, a.hashes)); // from the empty partition's tree
    for (let i = 0; i < 30; i++) a.put(`extra${i}`, update(emptyObject(), {}, 'n9', i + 1, enc(`v${i}`)));
    sameAsFullBuild(cache.tree(5, a.hashes)); // from the first
    expect(cache.builds).toBe(2);
  });
});

describe('exchange between two replicas', () => {
  type Side = 'a' | 'b';
  const divergence = fc.array(
    fc.record({
      kind: fc.constantFrom('overwrite', 'delete', 'blind', 'concurrent', 'new'),
      side: fc.constantFrom<Side>('a', 'b'),
      key: fc.nat(),
    }),
    { maxLength: 20 },
  );

  it('finds exactly the differing segments and keys, then repairs both sides to identical states', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 100, max: 400 }),
        fc.constantFrom(64, 1024),
        fc.constantFrom(1, 2, 3),
        divergence,
        async (n, segments, levelsPerRound, ops) => {
          const [a, b] = twinStores(n, segments);
          const stores = { a, b };
          const touched = new Map<string, string[]>();
          ops.forEach((o, i) => {
            const key = o.kind === 'new' ? `new-${o.side}-${i}` : `key-${o.key % n}`;
            touched.set(key, [...(touched.get(key) ?? []), `${o.kind}:${o.side}`]);
            const s = stores[o.side];
            if (o.kind === 'concurrent') {
              write(a, key, 'a~0', enc(`a${counter}`));
              write(b, key, 'b~0', enc(`b${counter}`));
            } else write(s, key, `${o.side}~0`, o.kind === 'delete' ? null : enc(`v${counter}`), o.kind === 'blind');
          });

          // What must be found: keys whose states differ, and the segments holding them.
          const all = [...new Set([...a.objs.keys(), ...b.objs.keys()])];
          const differs = (k: string): boolean => !a.objs.has(k) || !b.objs.has(k) || !sameState(a.objs.get(k)!, b.objs.get(k)!);
          const diffKeysExpected = all.filter(differs).sort();
          const segsExpected = [...new Set(diffKeysExpected.map((k) => segmentOf(k, segments)))].sort((x, y) => x - y);
          expect(a.hashes.differingSegments(b.hashes)).toEqual(segsExpected);
          const missingHere = diffKeysExpected.filter((k) => !a.objs.has(k));
          const missingThere = diffKeysExpected.filter((k) => !b.objs.has(k));
          const differing = diffKeysExpected.filter((k) => a.objs.has(k) && b.objs.has(k));

          const { diff, keys } = await exchange(a, b, levelsPerRound);
          expect(diff.segments).toEqual(segsExpected);
          if (segsExpected.length === 0) expect(diff).toEqual({ segments: [], exchangedBytes: 4 + 32, roundTrips: 1 });
          expect(keys).toMatchObject({ missingHere, missingThere, differing });

          // Converged: same state for every key, same hashes, still equal to a rebuild.
          for (const k of all) expect(sameState(a.objs.get(k)!, b.objs.get(k)!)).toBe(true);
          expect(a.hashes.equals(b.hashes)).toBe(true);
          expect(a.hashes.equals(SegmentHashes.rebuild(a.objs, segments))).toBe(true);
          // Deletes stay deleted; concurrent writes stay as siblings everywhere.
          for (const [k, t] of touched) {
            if (t.length === 1 && t[0]!.startsWith('delete')) expect(isDeleted(a.objs.get(k)!) && isDeleted(b.objs.get(k)!)).toBe(true);
            if (t.length === 1 && t[0]!.startsWith('concurrent')) expect(b.objs.get(k)!.siblings.length).toBe(2);
          }
          // A second exchange finds nothing and costs one root comparison.
          expect((await exchange(a, b)).diff).toEqual({ segments: [], exchangedBytes: 4 + 32, roundTrips: 1 });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a deleted key stays deleted: the tombstone wins over the older value it covers, in both directions', async () => {
    for (const deleter of ['a', 'b'] as const) {
      const [a, b] = twinStores(10);
      write(deleter === 'a' ? a : b, 'key-3', `${deleter}~0`, null);
      const { plan } = await exchange(a, b);
      expect(plan.toLocal.length + plan.toRemote.length).toBe(1);
      for (const s of [a, b]) {
        const o = s.objs.get('key-3')!;
        expect(isDeleted(o)).toBe(true);
        expect(o.siblings).toHaveLength(1); // the old value is gone, not a sibling
      }
      expect((await exchange(a, b)).plan).toEqual({ toLocal: [], toRemote: [] });
    }
  });

  it('exchanged bytes grow with the differences, not with the data', async () => {
    const diverge = (n: number, d: number) => {
      const [a, b] = twinStores(n);
      for (let i = 0; i < d; i++) write(i % 2 === 0 ? a : b, `key-${Math.floor((i * n) / d)}`, 'w~0', i % 3 === 0 ? null : enc(`d${i}`));
      return [a, b] as const;
    };
    const cost = async (n: number, d: number) => {
      const [a, b] = diverge(n, d);
      const r = await findDifferences(SegmentTree.build(a.hashes), serveSegments(SegmentTree.build(b.hashes)));
      expect(r.segments).toHaveLength(a.hashes.differingSegments(b.hashes).length);
      return r;
    };
    const zero = await cost(1_000, 0);
    expect(zero).toEqual({ segments: [], exchangedBytes: 36, roundTrips: 1 });
    const small1 = await cost(1_000, 1);
    const small10 = await cost(1_000, 10);
    const big10 = await cost(20_000, 10);
    expect(small1.roundTrips).toBe(1 + Math.log2(SEGMENTS_DEFAULT));
    // d = 10 costs several times d = 1 (the top of the tree is shared), far below all leaves' 16 KiB.
    expect(small10.exchangedBytes).toBeGreaterThan(3 * small1.exchangedBytes);
    expect(small10.exchangedBytes).toBeLessThan(10 * small1.exchangedBytes);
    expect(big10.exchangedBytes).toBeLessThan(SEGMENTS_DEFAULT * 16);
    // 20× the data, about the same bytes.
    const ratio = big10.exchangedBytes / small10.exchangedBytes;
    expect(ratio).toBeGreaterThan(0.67);
    expect(ratio).toBeLessThan(1.5);
  });

  it('refuses trees of different sizes and malformed remote answers', async () => {
    const t64 = SegmentTree.build(new SegmentHashes(64));
    const t1024 = SegmentTree.build(new SegmentHashes(1024));
    await expect(findDifferences(t64, serveSegments(t1024))).rejects.toMatchObject({ code: ErrorCodes.INCOMPATIBLE });
    const [a, b] = twinStores(20, 64);
    write(b, 'key-1', 'b~0', enc('x'));
    const tb = SegmentTree.build(b.hashes);
    const short = { root: serveSegments(tb).root, nodes: async () => [] };
    await expect(findDifferences(SegmentTree.build(a.hashes), short)).rejects.toMatchObject({ code: ErrorCodes.BAD_FRAME });
  });
});
