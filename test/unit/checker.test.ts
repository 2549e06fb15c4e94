// The simulation's checker on hand-made histories: it must catch each kind of broken promise (a
// checker that never fails proves nothing) and accept what Dynamo-style semantics allow.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { check, type CheckInput } from '../../src/sim/checker.js';
import type { Op, ReplicaState } from '../../src/sim/history.js';

let nextId = 1;
function op(o: Partial<Op> & Pick<Op, 'kind' | 'key'>): Op {
  return { id: nextId++, client: 0, start: 0, end: 1, node: 'n1', result: 'ok', phase: 'fault', w: 2, r: 2, ...o };
}

/** Every replica (n1..n3) holding the same values per key. */
function everywhere(state: Record<string, string[]>): Map<string, ReplicaState> {
  const m = new Map<string, ReplicaState>();
  for (const node of ['n1', 'n2', 'n3']) m.set(node, new Map(Object.entries(state)));
  return m;
}

function input(history: Op[], finals: Map<string, ReplicaState>): CheckInput {
  return { history, finals, replicasOf: () => ['n1', 'n2', 'n3'], n: 3 };
}

describe('checker', () => {
  it('accepts a history where every acknowledged value is present or superseded', () => {
    const h = [
      op({ kind: 'write', key: 'a', value: 'a1', start: 0, end: 5 }),
      op({ kind: 'rmw', key: 'a', value: 'a2', covers: ['a1'], start: 6, end: 9 }),
      op({ kind: 'write', key: 'b', value: 'b1' }),
      op({ kind: 'write', key: 'b', value: 'b2' }), // blind: siblings
      op({ kind: 'read', key: 'a', seen: ['a2'], start: 10, end: 11 }),
    ];
    const v = check(input(h, everywhere({ a: ['a2'], b: ['b1', 'b2'] })));
    expect(v).toMatchObject({ ok: true, operations: 5, acknowledgedWrites: 4, lostWrites: 0, converged: true, staleReads: 0 });
    expect(v.siblings).toEqual({ max: 2, keysWithSiblings: 1 });
  });

  it('reports an acknowledged write that vanished without being superseded', () => {
    const h = [op({ kind: 'write', key: 'a', value: 'a1' }), op({ kind: 'write', key: 'a', value: 'a2' })];
    const v = check(input(h, everywhere({ a: ['a2'] })));
    expect(v.ok).toBe(false);
    expect(v.lost).toEqual([{ key: 'a', value: 'a1', op: h[0]!.id }]);
  });

  it('lets a timed-out or failed write supersede, but never requires it to be present', () => {
    const h = [
      op({ kind: 'write', key: 'a', value: 'a1' }),
      op({ kind: 'delete', key: 'a', covers: ['a1'], result: 'unknown' }),
      op({ kind: 'write', key: 'b', value: 'b1', result: 'failed' }),
    ];
    expect(check(input(h, everywhere({ a: [], b: [] }))).ok).toBe(true);
  });

  it('reports a deleted value that came back', () => {
    const h = [op({ kind: 'write', key: 'a', value: 'a1' }), op({ kind: 'delete', key: 'a', covers: ['a1'] })];
    const v = check(input(h, everywhere({ a: ['a1'] })));
    expect(v.ok).toBe(false);
    expect(v.resurrected).toEqual([{ key: 'a', value: 'a1', coveredBy: h[1]!.id }]);
  });

  it('reports replicas that did not converge', () => {
    const finals = everywhere({ a: ['a1'] });
    finals.set('n3', new Map([['a', []]]));
    const v = check(input([op({ kind: 'write', key: 'a', value: 'a1' })], finals));
    expect(v.converged).toBe(false);
    expect(v.divergentKeys).toEqual(['a']);
    expect(v.ok).toBe(false);
  });

  it('forbids stale reads only for strict quorums with R + W > N, and counts them otherwise', () => {
    const strict = (o: Partial<Op> & Pick<Op, 'kind' | 'key'>): Op => op({ ...o, strict: true });
    const h = [strict({ kind: 'write', key: 'a', value: 'a1', start: 0, end: 5 }), strict({ kind: 'read', key: 'a', seen: [], start: 6, end: 7 })];
    const v = check(input(h, everywhere({ a: ['a1'] })));
    expect(v).toMatchObject({ staleReads: 1, staleReadsForbidden: true, ok: false });

    const sloppy = h.map((o) => ({ ...o, strict: false }));
    expect(check(input(sloppy, everywhere({ a: ['a1'] })))).toMatchObject({ staleReads: 1, staleReadsForbidden: false, ok: true });

    const weak = h.map((o) => ({ ...o, r: 1, w: 1 }));
    expect(check(input(weak, everywhere({ a: ['a1'] })))).toMatchObject({ staleReadsForbidden: false, ok: true });
  });

  it('does not call a read stale when it overlapped the write', () => {
    const h = [op({ kind: 'write', key: 'a', value: 'a1', start: 0, end: 10, strict: true }), op({ kind: 'read', key: 'a', seen: [], start: 5, end: 7, strict: true })];
    expect(check(input(h, everywhere({ a: ['a1'] }))).staleReads).toBe(0);
  });

  it('reports availability and latency per phase', () => {
    const h = [
      op({ kind: 'write', key: 'a', value: 'x1', phase: 'fault', start: 0, end: 4 }),
      op({ kind: 'write', key: 'a', value: 'x2', phase: 'fault', result: 'failed', start: 0, end: 50 }),
      op({ kind: 'write', key: 'a', value: 'x3', phase: 'heal', start: 0, end: 2 }),
    ];
    const v = check(input(h, everywhere({ a: ['x1', 'x3'] })));
    expect(v.phases.fault).toMatchObject({ ops: 2, ok: 1, availability: 0.5, latencyMs: { p50: 4, max: 4 } });
    expect(v.phases.heal).toMatchObject({ ops: 1, ok: 1, availability: 1 });
  });

  it('counts stale reads as the plain definition does, on random histories', () => {
    const opArb = fc.record({
      kind: fc.constantFrom<Op['kind']>('write', 'rmw', 'delete', 'read'),
      key: fc.constantFrom('a', 'b'),
      start: fc.integer({ min: 0, max: 100 }),
      len: fc.integer({ min: 0, max: 20 }),
      result: fc.constantFrom<Op['result']>('ok', 'ok', 'failed', 'unknown'),
      pick: fc.array(fc.nat(), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (raw) => {
        const h: Op[] = [];
        raw.forEach((x, i) => {
          const prior = h.filter((o) => o.key === x.key && o.value !== undefined).map((o) => o.value!);
          const chosen = [...new Set(x.pick.filter(() => prior.length > 0).map((n) => prior[n % prior.length]!))];
          const o = op({ kind: x.kind, key: x.key, start: x.start, end: x.start + x.len, result: x.result });
          if (x.kind === 'write' || x.kind === 'rmw') o.value = `v${i}`;
          if (x.kind === 'rmw' || x.kind === 'delete') o.covers = chosen;
          if (x.kind === 'read') o.seen = chosen;
          h.push(o);
        });
        // The definition, written plainly: O(reads × writes).
        let naive = 0;
        for (const r of h) {
          if (r.kind !== 'read' || r.result !== 'ok') continue;
          const seen = new Set(r.seen);
          const missed = h.some(
            (w) =>
              w.key === r.key && w.kind !== 'read' && w.result === 'ok' && w.value !== undefined && w.end < r.start && !seen.has(w.value) &&
              !h.some((c) => c.kind !== 'read' && (c.covers ?? []).includes(w.value!) && c.start < r.end),
          );
          if (missed) naive++;
        }
        expect(check(input(h, everywhere({}))).staleReads).toBe(naive);
      }),
      { numRuns: 300 },
    );
  });
});
