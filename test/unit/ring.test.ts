import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import type { ClusterSettings } from '../../src/core/config.js';
import { Ring, claimOwners, partitionOf, selectReplicas, type PrefEntry } from '../../src/ring/index.js';

const ids = (count: number, prefix = 'n'): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

function settings(memberIds: string[], partitions: number, n: number): ClusterSettings {
  return { members: memberIds.map((id, i) => ({ id, url: `ws://127.0.0.1:${7000 + i}` })), partitions, n };
}

function counts(owners: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const o of owners) m.set(o, (m.get(o) ?? 0) + 1);
  return m;
}

/** Every member owns floor(Q/S) or ceil(Q/S) partitions (members owning none count as 0). */
function expectBalanced(owners: string[], members: string[]): void {
  const q = owners.length;
  const c = counts(owners);
  for (const id of c.keys()) expect(members).toContain(id);
  for (const id of members) {
    const owned = c.get(id) ?? 0;
    expect(owned).toBeGreaterThanOrEqual(Math.floor(q / members.length));
    expect(owned).toBeLessThanOrEqual(Math.ceil(q / members.length));
  }
}

/** Appending x to the member list moves only partitions that x now owns. */
function expectMinimalMovement(before: string[], after: string[], x: string): void {
  for (let p = 0; p < before.length; p++) if (after[p] !== before[p]) expect(after[p]).toBe(x);
}

describe('partitionOf', () => {
  it('takes the top bits of the first 4 bytes of md5 over UTF-8', () => {
    // md5("") = d41d8cd9…, md5("hello") = 5d41402a…, md5(UTF-8 "é") = 66ddcd97…
    expect(partitionOf('', 256)).toBe(0xd4);
    expect(partitionOf('', 65536)).toBe(0xd41d);
    expect(partitionOf('hello', 64)).toBe(0x5d >> 2);
    expect(partitionOf('é', 256)).toBe(0x66);
    expect(partitionOf('anything', 1)).toBe(0);
  });

  it('stays in range', () => {
    for (const q of [1, 2, 8, 64, 1024, 65536])
      for (let i = 0; i < 1000; i++) {
        const p = partitionOf(`key-${i}`, q);
        expect(Number.isInteger(p) && p >= 0 && p < q).toBe(true);
      }
  });

  it('spreads 100k keys evenly over 64 partitions (each within ±20% of the mean)', () => {
    const q = 64;
    const hits = new Array<number>(q).fill(0);
    for (let i = 0; i < 100_000; i++) hits[partitionOf(`user:${i}`, q)]++;
    const mean = 100_000 / q;
    for (const h of hits) expect(Math.abs(h - mean)).toBeLessThanOrEqual(0.2 * mean);
  });

  it('refuses a partition count that is not a power of two up to 65536', () => {
    for (const q of [0, 3, 48, 131072, 1.5]) expect(() => partitionOf('k', q)).toThrow(/power of two/);
  });
});

describe('claimOwners', () => {
  it('is balanced for S = 1..10 and Q in {8, 64, 256}', () => {
    for (const q of [8, 64, 256])
      for (let s = 1; s <= 10; s++)
        for (const n of [1, 3]) {
          const owners = claimOwners(ids(s), q, n);
          expect(owners).toHaveLength(q);
          expectBalanced(owners, ids(s));
        }
  });

  it('moves only the partitions the new member takes when one is appended', () => {
    for (const q of [8, 64, 256])
      for (let s = 1; s <= 9; s++) {
        const before = claimOwners(ids(s), q, 3);
        const after = claimOwners(ids(s + 1), q, 3);
        expectMinimalMovement(before, after, `n${s}`);
        expect(counts(after).get(`n${s}`) ?? 0).toBe(Math.floor(q / (s + 1)));
      }
  });

  it('is deterministic, and the order of the member list (the join order) matters', () => {
    expect(claimOwners(['a', 'b', 'c', 'd'], 64, 3)).toEqual(claimOwners(['a', 'b', 'c', 'd'], 64, 3));
    expect(claimOwners(['a', 'b'], 8, 2)).not.toEqual(claimOwners(['b', 'a'], 8, 2));
  });

  it('gives every window of N consecutive partitions N distinct owners once S > N', () => {
    // The spread goal of the claim heuristic; a regression guard, not a promise for every (S, Q, N).
    for (const q of [64, 256, 1024])
      for (let s = 4; s <= 16; s++) {
        const owners = claimOwners(ids(s), q, 3);
        for (let p = 0; p < q; p++) expect(new Set([0, 1, 2].map((d) => owners[(p + d) % q])).size).toBe(3);
      }
  });

  it('refuses an empty or duplicated member list', () => {
    expect(() => claimOwners([], 8, 1)).toThrow(/at least one member/);
    expect(() => claimOwners(['a', 'b', 'a'], 8, 1)).toThrow(/distinct/);
  });

  it('property: balanced, deterministic and minimal movement for random lists, Q and N', () => {
    const arb = fc
      .record({
        members: fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 2, maxLength: 12 }),
        logQ: fc.integer({ min: 0, max: 10 }),
        n: fc.integer({ min: 1, max: 5 }),
      })
      .map(({ members, logQ, n }) => ({ members, q: 2 ** logQ, n }));
    fc.assert(
      fc.property(arb, ({ members, q, n }) => {
        const before = members.slice(0, -1);
        const x = members[members.length - 1];
        const owners = claimOwners(members, q, n);
        expectBalanced(owners, members);
        expect(claimOwners([...members], q, n)).toEqual(owners);
        expectMinimalMovement(claimOwners(before, q, n), owners, x);
      }),
      { numRuns: 200 },
    );
  });
});

describe('Ring', () => {
  const members = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
  const ring = new Ring(settings(members, 64, 3));

  it('exposes the settings and the claim', () => {
    expect(ring.partitions).toBe(64);
    expect(ring.n).toBe(3);
    expect(ring.members).toEqual(members);
    const owners = claimOwners(members, 64, 3);
    for (let p = 0; p < 64; p++) expect(ring.owner(p)).toBe(owners[p]);
    expect(members.reduce((sum, id) => sum + ring.ownedCount(id), 0)).toBe(64);
    expect(ring.ownedCount('nobody')).toBe(0);
    expect(ring.partitionOf('hello')).toBe(partitionOf('hello', 64));
  });

  it('builds preference lists: N distinct primaries, then every other member as a fallback', () => {
    for (let p = 0; p < 64; p++) {
      const pref = ring.preferenceList(p);
      expect(pref.map((e) => e.role)).toEqual(['primary', 'primary', 'primary', 'fallback', 'fallback']);
      expect(new Set(pref.map((e) => e.node))).toEqual(new Set(members));
      expect(pref[0].node).toBe(ring.owner(p));
      // The walk: each node enters at the first following partition it owns.
      const firstSeen = (node: string) => [...Array(64).keys()].find((d) => ring.owner((p + d) % 64) === node) ?? 64;
      const steps = pref.map((e) => firstSeen(e.node));
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(ring.primaries(p)).toEqual(pref.slice(0, 3).map((e) => e.node));
    }
  });

  it('hands out copies, so a caller cannot corrupt the cached lists', () => {
    const pref = ring.preferenceList(7);
    const primaries = ring.primaries(7);
    pref.reverse();
    primaries.pop();
    expect(ring.preferenceList(7)).not.toEqual(pref);
    expect(ring.primaries(7)).toHaveLength(3);
    expect(Object.isFrozen(ring.preferenceList(7)[0])).toBe(true);
  });

  it('lists the partitions each node replicates: N per partition, about N·Q/S per node', () => {
    const seen = new Array<number>(64).fill(0);
    for (const id of members) {
      const mine = ring.partitionsReplicatedBy(id);
      for (const p of mine) {
        expect(ring.primaries(p)).toContain(id);
        seen[p]++;
      }
      expect(mine.length).toBe(3 * ring.ownedCount(id));
    }
    expect(seen.every((c) => c === 3)).toBe(true);
    expect(ring.partitionsReplicatedBy('nobody')).toEqual([]);
  });

  it('refuses a partition outside the ring', () => {
    for (const p of [-1, 64, 1.5]) expect(() => ring.owner(p)).toThrow(/outside/);
  });

  it('puts members that own nothing (Q < S) at the end of every preference list', () => {
    const small = new Ring(settings(ids(4), 2, 2));
    for (const p of [0, 1]) {
      const pref = small.preferenceList(p);
      expect(pref).toHaveLength(4);
      expect(new Set(pref.map((e) => e.node)).size).toBe(4);
      expect(pref.filter((e) => e.role === 'primary')).toHaveLength(2);
    }
  });
});

describe('selectReplicas', () => {
  const pref: PrefEntry[] = [
    { node: 'a', role: 'primary' },
    { node: 'b', role: 'primary' },
    { node: 'c', role: 'primary' },
    { node: 'd', role: 'fallback' },
    { node: 'e', role: 'fallback' },
  ];
  const upExcept = (...down: string[]) => (node: string) => !down.includes(node);
  const nodes = (entries: PrefEntry[]) => entries.map((e) => `${e.node}:${e.role}`);

  it('takes the N primaries when all are up', () => {
    expect(selectReplicas(pref, 3, upExcept())).toEqual(pref.slice(0, 3));
  });

  it('puts the first up fallback in the place of a down primary', () => {
    expect(nodes(selectReplicas(pref, 3, upExcept('b')))).toEqual(['a:primary', 'd:fallback', 'c:primary']);
    expect(nodes(selectReplicas(pref, 3, upExcept('b', 'd')))).toEqual(['a:primary', 'e:fallback', 'c:primary']);
    expect(nodes(selectReplicas(pref, 3, upExcept('a', 'c')))).toEqual(['d:fallback', 'b:primary', 'e:fallback']);
  });

  it('names the down primary each fallback holds hints for', () => {
    expect(selectReplicas(pref, 3, upExcept('a', 'c')).map((e) => e.hintFor)).toEqual(['a', undefined, 'c']);
  });

  it('returns fewer than N entries when too few nodes are up', () => {
    expect(nodes(selectReplicas(pref, 3, upExcept('a', 'b', 'd')))).toEqual(['e:fallback', 'c:primary']);
    expect(selectReplicas(pref, 3, upExcept('a', 'b', 'c', 'd', 'e'))).toEqual([]);
  });

  it('works on a ring preference list', () => {
    const ring = new Ring(settings(ids(5), 64, 3));
    const list = ring.preferenceList(ring.partitionOf('k'));
    const down = list[0].node;
    const chosen = selectReplicas(list, 3, (node) => node !== down);
    expect(chosen).toHaveLength(3);
    expect(chosen[0]).toEqual({ ...list[3], hintFor: down });
    expect(chosen.map((e) => e.node)).not.toContain(down);
  });
});
