// Dotted version vector sets (src/core/version.ts), tested against random *histories* rather than
// arbitrary objects: a few replicas, each coordinating writes as its own actor with a counter that
// only grows (the node-wide counter of docs/adr/002), reads that hand out contexts, and pairwise
// syncs. Beside the real states the test keeps an exact model: for every replica the set of dots it
// has seen, and for every issued dot whether some write's context covered it. The properties:
// - merge is commutative, associative and idempotent on reachable states;
// - a write with a context supersedes exactly what that context saw; a blind write removes nothing;
// - no acknowledged write is silently discarded: after merging every replica the surviving dots are
//   exactly the issued dots that no write's context covered;
// - a collected tombstone that survived somewhere never hides a later write with a fresh counter;
// - encodings round-trip, hashes ignore vector key order, and malformed input is refused by code.

import { expectNexusError } from '../helpers/errors.js';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import {
  covers,
  decodeContext,
  decodeObject,
  emptyObject,
  encodeContext,
  encodeObject,
  isDeleted,
  liveValues,
  merge,
  objectHash,
  sameState,
  siblingsAfterUpdate,
  update,
  type Sibling,
  type VersionVector,
  type VersionedObject,
} from '../../src/core/version.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const REPLICAS = 3;
const actorOf = (replica: number): string => `n${replica}~inc0`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (v: Uint8Array | null): string | null => (v === null ? null : Buffer.from(v).toString('hex'));
const dotOf = (actor: string, counter: number): string => `${actor}:${counter}`;
const dotKey = (s: Sibling): string => dotOf(s.actor, s.counter);
const dotsOf = (o: VersionedObject): string[] => o.siblings.map(dotKey).sort();

/** Siblings as comparable (dot, value) pairs, in the object's own order. */
const contents = (o: VersionedObject): [string, string | null][] => o.siblings.map((s) => [dotKey(s), hex(s.value)]);

/** Same causal state and the same sibling values (sameState alone does not compare values). */
function expectSame(a: VersionedObject, b: VersionedObject): void {
  expect(sameState(a, b)).toBe(true);
  expect(contents(a)).toEqual(contents(b));
  expect(objectHash(a).equals(objectHash(b))).toBe(true);
}

/** The representation invariants every reachable state must keep. */
function expectWellFormed(o: VersionedObject): void {
  const keys = o.siblings.map(dotKey);
  expect(new Set(keys).size).toBe(keys.length);
  for (let i = 1; i < o.siblings.length; i++) {
    const x = o.siblings[i - 1]!;
    const y = o.siblings[i]!;
    expect(x.actor < y.actor || (x.actor === y.actor && x.counter < y.counter)).toBe(true);
  }
  for (const s of o.siblings) expect(covers(o.vv, s.actor, s.counter)).toBe(true);
}

const expectCode = (f: () => unknown, code: string): void => void expectNexusError(f, code);

const withReversedVV = (o: VersionedObject): VersionedObject => ({
  vv: Object.fromEntries(Object.entries(o.vv).reverse()),
  siblings: o.siblings,
});

// ---------------------------------------------------------------------------------------------
// The history model

type Op =
  | { t: 'read'; replica: number }
  /** ctx: index (mod the number of reads so far) of the read whose context the client sends, or null for a blind write. */
  | { t: 'write'; replica: number; ctx: number | null; tombstone: boolean; skip: number }
  | { t: 'sync'; into: number; from: number }
  /** The replica merges a state kept from before a collection (a stale hint, a restored replica). */
  | { t: 'ghost'; into: number };

const replicaArb = fc.nat(REPLICAS - 1);
const readArb = fc.record({ t: fc.constant('read' as const), replica: replicaArb });
const writeArb = fc.record({
  t: fc.constant('write' as const),
  replica: replicaArb,
  ctx: fc.option(fc.nat(), { nil: null, freq: 3 }),
  tombstone: fc.nat(3).map((x) => x === 0),
  // Other keys consume the node-wide counter too, so a key sees gaps between its counters.
  skip: fc.nat(3),
});
const syncArb = fc.record({ t: fc.constant('sync' as const), into: replicaArb, from: replicaArb });
const ghostArb = fc.record({ t: fc.constant('ghost' as const), into: replicaArb });

const opsArb = (maxLength: number, ghosts = false): fc.Arbitrary<Op[]> =>
  fc.array(
    ghosts
      ? fc.oneof({ arbitrary: writeArb, weight: 3 }, { arbitrary: readArb, weight: 2 }, { arbitrary: syncArb, weight: 3 }, { arbitrary: ghostArb, weight: 1 })
      : fc.oneof({ arbitrary: writeArb, weight: 3 }, { arbitrary: readArb, weight: 2 }, { arbitrary: syncArb, weight: 3 }),
    { maxLength },
  );

interface Snapshot {
  obj: VersionedObject;
  /** Exactly the dots the read replica had seen: the model's meaning of its context. */
  seen: ReadonlySet<string>;
}

class World {
  readonly replicas: { obj: VersionedObject; seen: Set<string> }[] = [];
  /** The last counter each actor issued: one node-wide counter per actor, never reused. */
  readonly counters: number[] = new Array<number>(REPLICAS).fill(0);
  /** Every dot issued since the last collection, with its value. */
  issued = new Map<string, Uint8Array | null>();
  /** Dots that some write's context had seen: those writes superseded them. */
  covered = new Set<string>();
  reads: Snapshot[] = [];
  /** Every state reached, for the algebraic properties. */
  states: VersionedObject[] = [];
  ghost: VersionedObject = emptyObject();

  constructor() {
    for (let i = 0; i < REPLICAS; i++) this.replicas.push({ obj: emptyObject(), seen: new Set() });
  }

  run(ops: Op[]): this {
    for (const op of ops) this.apply(op);
    return this;
  }

  apply(op: Op): void {
    switch (op.t) {
      case 'read': {
        const r = this.replicas[op.replica]!;
        this.reads.push({ obj: r.obj, seen: new Set(r.seen) });
        break;
      }
      case 'write': {
        const snap = op.ctx === null || this.reads.length === 0 ? null : this.reads[op.ctx % this.reads.length]!;
        this.write(op.replica, snap, op.tombstone, op.skip);
        break;
      }
      case 'sync': {
        const into = this.replicas[op.into]!;
        const from = this.replicas[op.from]!;
        into.obj = merge(into.obj, from.obj);
        for (const d of from.seen) into.seen.add(d);
        break;
      }
      case 'ghost': {
        const into = this.replicas[op.into]!;
        into.obj = merge(into.obj, this.ghost);
        for (const d of dotsOf(this.ghost)) into.seen.add(d);
        break;
      }
    }
    for (const r of this.replicas) {
      this.states.push(r.obj);
      expectWellFormed(r.obj);
      // The header's claim: V[actor] >= counter stands for "seen", because an actor only issues a
      // dot while holding everything it issued before. Check it against the exact model.
      for (const d of this.issued.keys()) {
        const [actor, counter] = d.split(':') as [string, string];
        expect(covers(r.obj.vv, actor, Number(counter)), `covers ${d}`).toBe(r.seen.has(d));
      }
    }
  }

  write(replica: number, snap: Snapshot | null, tombstone: boolean, skip = 0): VersionedObject {
    const r = this.replicas[replica]!;
    const actor = actorOf(replica);
    this.counters[replica]! += 1 + skip;
    const counter = this.counters[replica]!;
    const dot = dotOf(actor, counter);
    const value = tombstone ? null : enc(dot);
    const ctx: VersionVector = snap ? snap.obj.vv : {};
    const ctxSeen = snap ? snap.seen : new Set<string>();

    const before = r.obj;
    const predicted = siblingsAfterUpdate(before, ctx);
    const after = update(before, ctx, actor, counter, value);

    // siblingsAfterUpdate predicts the result, so the sibling cap can be checked first.
    expect(after.siblings.length).toBe(predicted);
    // A write supersedes exactly the siblings its context saw; the rest stay beside the new one.
    // (Only dots issued since the last collection are tracked exactly; an old tombstone merged
    // back in may be superseded by any newer dot of its actor, which is harmless.)
    const tracked = (ds: string[]): string[] => ds.filter((d) => d === dot || this.issued.has(d));
    expect(tracked(dotsOf(after))).toEqual(tracked([...dotsOf(before).filter((d) => !ctxSeen.has(d)), dot].sort()));
    // A blind write removes nothing.
    if (snap === null) expect(dotsOf(after)).toEqual([...dotsOf(before), dot].sort());
    expect(after.siblings.find((s) => dotKey(s) === dot)!.value).toBe(value);

    r.obj = after;
    for (const d of ctxSeen) {
      r.seen.add(d);
      this.covered.add(d);
    }
    r.seen.add(dot);
    this.issued.set(dot, value);
    return after;
  }

  /** Every replica merges every other: afterwards they all hold the same state. */
  converge(): void {
    for (let i = 1; i < REPLICAS; i++) this.apply({ t: 'sync', into: 0, from: i });
    for (let i = 1; i < REPLICAS; i++) this.apply({ t: 'sync', into: i, from: 0 });
  }

  mergedAll(): VersionedObject {
    return this.replicas.reduce((acc, r) => merge(acc, r.obj), emptyObject());
  }

  /** The issued dots that no write's context covered: what must survive. */
  expectedSurvivors(): string[] {
    return [...this.issued.keys()].filter((d) => !this.covered.has(d)).sort();
  }

  /** Tombstone collection: every replica forgets the key; counters (node-wide) carry on. */
  collect(ghost: VersionedObject): void {
    for (const r of this.replicas) {
      r.obj = emptyObject();
      r.seen = new Set();
    }
    this.issued = new Map();
    this.covered = new Set();
    this.reads = [];
    this.ghost = ghost;
  }
}

const RUNS = { numRuns: 150 };

// ---------------------------------------------------------------------------------------------

describe('merge algebra on states reached by histories', () => {
  const pickArb = fc.tuple(opsArb(40), fc.nat(), fc.nat(), fc.nat());

  it('is commutative', () => {
    fc.assert(
      fc.property(pickArb, ([ops, i, j]) => {
        const { states } = new World().run(ops);
        if (states.length === 0) return;
        const a = states[i % states.length]!;
        const b = states[j % states.length]!;
        expectSame(merge(a, b), merge(b, a));
      }),
      RUNS,
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(pickArb, ([ops, i, j, k]) => {
        const { states } = new World().run(ops);
        if (states.length === 0) return;
        const a = states[i % states.length]!;
        const b = states[j % states.length]!;
        const c = states[k % states.length]!;
        expectSame(merge(merge(a, b), c), merge(a, merge(b, c)));
      }),
      RUNS,
    );
  });

  it('is idempotent, and the empty object is its identity', () => {
    fc.assert(
      fc.property(pickArb, ([ops, i, j]) => {
        const { states } = new World().run(ops);
        if (states.length === 0) return;
        const a = states[i % states.length]!;
        const b = states[j % states.length]!;
        expectSame(merge(a, a), a);
        expectSame(merge(a, emptyObject()), a);
        expectSame(merge(emptyObject(), a), a);
        // Merging again what was already merged changes nothing.
        expectSame(merge(merge(a, b), b), merge(a, b));
      }),
      RUNS,
    );
  });

  it('keeps states well formed (sorted, unique, covered siblings) and converges replicas', () => {
    fc.assert(
      fc.property(opsArb(60), (ops) => {
        const w = new World().run(ops);
        w.converge();
        const [first, ...rest] = w.replicas;
        for (const r of rest) expectSame(r.obj, first!.obj);
        expectSame(first!.obj, w.mergedAll());
      }),
      RUNS,
    );
  });
});

describe('no acknowledged write is silently discarded', () => {
  it('after merging all replicas, the survivors are exactly the issued dots no write context covered', () => {
    fc.assert(
      fc.property(opsArb(60), (ops) => {
        const w = new World().run(ops);
        const all = w.mergedAll();
        expect(dotsOf(all)).toEqual(w.expectedSurvivors());
        // And each survivor still carries the value its write gave it.
        for (const s of all.siblings) expect(hex(s.value)).toBe(hex(w.issued.get(dotKey(s))!));
      }),
      { numRuns: 300 },
    );
  });

  it('holds in a classic concurrent-write example', () => {
    // Two clients read the same state and write concurrently at different replicas: both survive;
    // a third write with the merged context supersedes both.
    const w = new World();
    w.write(0, null, false); // n0:1
    w.apply({ t: 'sync', into: 1, from: 0 });
    w.apply({ t: 'read', replica: 0 });
    w.apply({ t: 'read', replica: 1 });
    w.write(0, w.reads[0]!, false); // n0:2 supersedes n0:1
    w.write(1, w.reads[1]!, false); // n1:1 supersedes n0:1, concurrent with n0:2
    w.apply({ t: 'sync', into: 2, from: 0 });
    w.apply({ t: 'sync', into: 2, from: 1 });
    expect(dotsOf(w.replicas[2]!.obj)).toEqual(['n0~inc0:2', 'n1~inc0:1']);
    w.apply({ t: 'read', replica: 2 });
    w.write(2, w.reads[2]!, false);
    expect(dotsOf(w.mergedAll())).toEqual(['n2~inc0:1']);
  });
});

describe('update', () => {
  it('refuses a reused dot, whether the local vector or the context has seen it', () => {
    const a = update(emptyObject(), {}, 'a', 1, enc('x'));
    expect(() => update(a, {}, 'a', 1, enc('y'))).toThrow(NexusError);
    expect(() => update(a, {}, 'a', 1, enc('y'))).toThrow(/already issued/);
    // Any counter at or below what the vector has seen is a reuse.
    const b = update(a, a.vv, 'a', 5, enc('z'));
    expect(() => update(b, {}, 'a', 3, enc('y'))).toThrow(NexusError);
    // The context alone is enough to tell.
    expect(() => update(emptyObject(), { a: 7 }, 'a', 7, null)).toThrow(NexusError);
    expect(() => update(emptyObject(), { a: 7 }, 'a', 8, null)).not.toThrow();
  });

  it('refuses every already-issued dot at the replica that issued it (random histories)', () => {
    fc.assert(
      fc.property(opsArb(40), replicaArb, (ops, i) => {
        const w = new World().run(ops);
        const r = w.replicas[i]!;
        for (const d of w.issued.keys()) {
          const [actor, counter] = d.split(':') as [string, string];
          if (actor !== actorOf(i)) continue;
          expect(() => update(r.obj, {}, actor, Number(counter), null)).toThrow(NexusError);
        }
        // The next counter is always accepted.
        expect(() => update(r.obj, {}, actorOf(i), w.counters[i]! + 1, null)).not.toThrow();
      }),
      RUNS,
    );
  });

  it('siblingsAfterUpdate agrees with update for arbitrary contexts', () => {
    fc.assert(
      fc.property(opsArb(40), fc.nat(), replicaArb, (ops, k, i) => {
        const w = new World().run(ops);
        const local = w.replicas[i]!.obj;
        const ctxs = [{}, ...w.states.map((s) => s.vv)];
        const ctx = ctxs[k % ctxs.length]!;
        // A fresh dot from an actor no state has seen, so update never refuses it.
        expect(update(local, ctx, 'fresh~x', 1, null).siblings.length).toBe(siblingsAfterUpdate(local, ctx));
      }),
      RUNS,
    );
  });
});

describe('tombstone collection', () => {
  it('never lets a surviving old tombstone hide a later write with a fresh counter', () => {
    fc.assert(
      fc.property(opsArb(30), opsArb(30, true), replicaArb, fc.boolean(), (before, after, deleter, ghostFirst) => {
        const w = new World().run(before);
        // Delete with everything seen, and let every replica hold the tombstone.
        w.converge();
        w.apply({ t: 'read', replica: deleter });
        w.write(deleter, w.reads[w.reads.length - 1]!, true);
        w.converge();
        for (const r of w.replicas) {
          expect(isDeleted(r.obj)).toBe(true);
          expect(liveValues(r.obj)).toEqual([]);
          expect(r.obj.siblings).toHaveLength(1);
        }
        // The tombstone state survives somewhere (a hint, a partitioned replica) while the
        // replicas collect the key.
        const ghost = w.replicas[deleter]!.obj;
        w.collect(ghost);
        w.run(after);

        const final = w.mergedAll();
        const withGhost = ghostFirst ? merge(ghost, final) : merge(final, ghost);
        const ghostDots = new Set(dotsOf(ghost));
        for (const o of [final, withGhost]) {
          // Every write since the collection that no context covered is still there...
          expect(dotsOf(o).filter((d) => w.issued.has(d))).toEqual(w.expectedSurvivors());
          // ...and anything else can only be the old tombstone, never a resurrected value.
          for (const s of o.siblings) {
            if (w.issued.has(dotKey(s))) continue;
            expect(ghostDots.has(dotKey(s))).toBe(true);
            expect(s.value).toBeNull();
          }
        }
        // Live values are the same with or without the old tombstone.
        expect(liveValues(withGhost).map(hex).sort()).toEqual(liveValues(final).map(hex).sort());
      }),
      RUNS,
    );
  });

  it('shows why counters must come from the node, not the key: a restarted counter is hidden', () => {
    const v1 = update(emptyObject(), {}, 'a', 1, enc('v1'));
    const tomb = update(v1, v1.vv, 'a', 2, null);
    // After collection the key's own vector is gone; restarting from it would reuse a:1 …
    const reused = update(emptyObject(), {}, 'a', 1, enc('new'));
    expect(liveValues(merge(tomb, reused))).toEqual([]);
    // … while the node-wide counter gives a dot the old tombstone has never seen.
    const fresh = update(emptyObject(), {}, 'a', 3, enc('new'));
    expect(liveValues(merge(tomb, fresh)).map(hex)).toEqual([hex(enc('new'))]);
    expect(liveValues(merge(fresh, tomb)).map(hex)).toEqual([hex(enc('new'))]);
  });
});

describe('isDeleted and liveValues', () => {
  it('reads an empty object and an all-tombstone object as deleted', () => {
    expect(isDeleted(emptyObject())).toBe(true);
    expect(liveValues(emptyObject())).toEqual([]);
    const t1 = update(emptyObject(), {}, 'a', 1, null);
    const t2 = update(t1, {}, 'b', 1, null);
    expect(t2.siblings).toHaveLength(2);
    expect(isDeleted(t2)).toBe(true);
    expect(liveValues(t2)).toEqual([]);
  });

  it('leaves tombstones out of the live values, in sibling order', () => {
    const o = update(update(update(emptyObject(), {}, 'b', 1, enc('vb')), {}, 'a', 1, null), {}, 'c', 4, enc('vc'));
    expect(isDeleted(o)).toBe(false);
    expect(liveValues(o).map(hex)).toEqual([hex(enc('vb')), hex(enc('vc'))]);
    // A delete that saw everything leaves one tombstone and reads as deleted.
    const d = update(o, o.vv, 'a', 2, null);
    expect(d.siblings).toHaveLength(1);
    expect(isDeleted(d)).toBe(true);
  });
});

describe('object encoding', () => {
  it('round-trips every reachable state, byte for byte', () => {
    fc.assert(
      fc.property(opsArb(40), (ops) => {
        const w = new World().run(ops);
        for (const s of [...w.states.slice(-REPLICAS * 3), w.mergedAll()]) {
          const bytes = encodeObject(s);
          const back = decodeObject(bytes);
          expectSame(back, s);
          expect(encodeObject(back).equals(bytes)).toBe(true);
          expect(objectHash(back).equals(objectHash(s))).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('encodes and hashes equal states equally, whatever the vector key order', () => {
    fc.assert(
      fc.property(opsArb(40), fc.nat(), fc.nat(), (ops, i, j) => {
        const { states } = new World().run(ops);
        if (states.length === 0) return;
        const a = states[i % states.length]!;
        const b = states[j % states.length]!;
        expect(encodeObject(withReversedVV(a)).equals(encodeObject(a))).toBe(true);
        expect(objectHash(withReversedVV(a)).equals(objectHash(a))).toBe(true);
        // merge(a, b) and merge(b, a) build their vectors in different key orders.
        expect(objectHash(merge(a, b)).equals(objectHash(merge(b, a)))).toBe(true);
        // Different states hash differently.
        if (!sameState(a, b)) expect(objectHash(a).equals(objectHash(b))).toBe(false);
        expect(objectHash(a)).toHaveLength(16);
      }),
      RUNS,
    );
  });

  it('refuses structurally malformed objects with BAD_FRAME', () => {
    const cases: unknown[] = [
      'x',
      42,
      null,
      [],
      [[], [], []],
      [{ a: 1 }, []],
      [[['a', 0]], []], // counters start at 1
      [[['a', -1]], []],
      [[['a', 1.5]], []],
      [[[1, 1]], []], // actor must be a string
      [[['a', 1]], [['a', 2, null]]], // sibling not covered by its vector
      [[['a', 1]], [['a', 1, 'text']]], // value must be bytes or null
      [[['a', 1]], [['a', 1]]],
      [[['a', 1]], ['a']],
    ];
    for (const c of cases) expectCode(() => decodeObject(pack(c)), ErrorCodes.BAD_FRAME);
  });

  // Bytes reach decodeObject from peers (rput, rget replies) and from disk: MessagePack's own
  // "unexpected end" errors must not escape as plain Errors.
  it('refuses truncated encodings with BAD_FRAME', () => {
    const o = update(update(emptyObject(), {}, 'a', 1, enc('hello')), {}, 'b', 2, null);
    const bytes = encodeObject(o);
    for (let len = 0; len < bytes.length; len++) expectCode(() => decodeObject(bytes.subarray(0, len)), ErrorCodes.BAD_FRAME);
  });

  it('refuses random bytes with BAD_FRAME or decodes them into a well-formed object', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let o: VersionedObject;
        try {
          o = decodeObject(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(NexusError);
          expect((e as NexusError).code).toBe(ErrorCodes.BAD_FRAME);
          return;
        }
        expectWellFormed(o);
      }),
      { numRuns: 500 },
    );
  });
});

describe('causal context encoding', () => {
  // Actors are "<node id>~<incarnation>" (src/replica/identity.ts): member ids are 1-64 of
  // [A-Za-z0-9_.-], so an actor always contains '~' and never equals an Object.prototype key.
  const actorArb = fc
    .tuple(fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/), fc.stringMatching(/^[0-9a-f]{1,8}$/))
    .map(([id, inc]) => `${id}~${inc}`);
  const vvArb = fc
    .uniqueArray(fc.tuple(actorArb, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })), { selector: (p) => p[0], maxLength: 8 })
    .map((pairs) => Object.fromEntries(pairs) as VersionVector);

  it('round-trips any version vector', () => {
    fc.assert(
      fc.property(vvArb, (vv) => {
        const text = encodeContext(vv);
        expect(text.startsWith('c1.')).toBe(true);
        expect(decodeContext(text)).toEqual(vv);
        // Canonical: key order does not change the text.
        expect(encodeContext(Object.fromEntries(Object.entries(vv).reverse()))).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips the contexts of reachable states', () => {
    fc.assert(
      fc.property(opsArb(30), (ops) => {
        for (const s of new World().run(ops).states.slice(-REPLICAS)) expect(decodeContext(encodeContext(s.vv))).toEqual(s.vv);
      }),
      { numRuns: 50 },
    );
  });

  it('reads no context as the empty vector', () => {
    expect(decodeContext(undefined)).toEqual({});
    expect(decodeContext(null)).toEqual({});
    expect(decodeContext('')).toEqual({});
    expect(decodeContext(encodeContext({}))).toEqual({});
  });

  const b64 = (value: unknown): string => Buffer.from(pack(value)).toString('base64url');

  it('refuses junk with BAD_CONTEXT', () => {
    const junk: unknown[] = [
      'hello',
      'c1',
      'c2.' + b64([['a', 1]]), // wrong prefix
      'C1.' + b64([['a', 1]]),
      b64([['a', 1]]), // no prefix
      'c1.', // nothing after the prefix
      'c1.!!!!',
      'c1.' + b64({ a: 1 }), // valid base64 of a non-array
      'c1.' + b64('a string'),
      'c1.' + b64(17),
      'c1.' + b64(null),
      'c1.' + b64([['a', -1]]), // negative counter
      'c1.' + b64([['a', 0]]),
      'c1.' + b64([['a', 1.5]]),
      'c1.' + b64([['a', Number.MAX_SAFE_INTEGER + 2]]),
      'c1.' + b64([['a', '1']]),
      'c1.' + b64([[1, 1]]),
      'c1.' + b64([['a', 1, 2]]),
      'c1.' + b64([['a']]),
      'c1.' + b64(['a', 1]),
      'c1.' + 'A'.repeat(1024 * 1024 + 1), // over the size limit
      42,
      {},
    ];
    for (const j of junk) expectCode(() => decodeContext(j as string), ErrorCodes.BAD_CONTEXT);
  });

  it('refuses random strings and random payloads with BAD_CONTEXT, or decodes them into a valid vector', () => {
    const check = (text: string): void => {
      let vv: VersionVector;
      try {
        vv = decodeContext(text);
      } catch (e) {
        expect(e).toBeInstanceOf(NexusError);
        expect((e as NexusError).code).toBe(ErrorCodes.BAD_CONTEXT);
        return;
      }
      for (const c of Object.values(vv)) expect(Number.isSafeInteger(c) && c > 0).toBe(true);
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => 'c1.' + s),
          fc.uint8Array({ maxLength: 64 }).map((b) => 'c1.' + Buffer.from(b).toString('base64url')),
          fc.anything().map((v) => 'c1.' + b64(v)),
        ),
        (text) => check(text),
      ),
      { numRuns: 500 },
    );
  });
});
