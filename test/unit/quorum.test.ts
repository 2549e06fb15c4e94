// Pure quorum counting (src/coordinator/quorum.ts), tested without a network as riak_kv tests its
// put/get cores. Pins down: success at exactly W (or R) answers; "decided" as soon as the answer is
// known either way (W reached, or too many failures for W to be reachable); failure messages that
// say how many acks arrived and what happened to every other replica; not-found replies counting
// toward R; the merged answer covering only replies received; and which replicas read repair fixes.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { GetQuorum, PutQuorum } from '../../src/coordinator/quorum.js';
import type { WireError } from '../../src/core/errors.js';
import { emptyObject, merge, sameState, update, type VersionedObject } from '../../src/core/version.js';

const NODES = ['a', 'b', 'c'];
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const err = (message: string, code = 'UNREACHABLE'): WireError => ({ code, message });
const dots = (o: VersionedObject): string[] => o.siblings.map((s) => `${s.actor}:${s.counter}`);

// Three states of one key: v1, then v2 written with v1's context, and a concurrent blind write v3.
const v1 = update(emptyObject(), {}, 'a', 1, enc('v1'));
const v2 = update(v1, v1.vv, 'a', 2, enc('v2'));
const v3 = update(emptyObject(), {}, 'b', 1, enc('v3'));

describe('PutQuorum', () => {
  it('succeeds and is decided at exactly W acks', () => {
    const q = new PutQuorum(2, NODES);
    expect(q.decided()).toBe(false);
    q.ack('a');
    expect(q.acks).toBe(1);
    expect(q.succeeded()).toBe(false);
    expect(q.decided()).toBe(false);
    q.ack('b');
    expect(q.acks).toBe(2);
    expect(q.succeeded()).toBe(true);
    expect(q.decided()).toBe(true);
  });

  it('counts a repeated ack from one node once', () => {
    const q = new PutQuorum(2, NODES);
    q.ack('a');
    q.ack('a');
    expect(q.acks).toBe(1);
    expect(q.succeeded()).toBe(false);
  });

  it('is not decided while W is still reachable, and decided-as-failed once it is not', () => {
    const q = new PutQuorum(2, NODES);
    q.fail('a', err('connection refused'));
    expect(q.decided()).toBe(false); // b and c can still make W=2
    q.ack('b');
    expect(q.decided()).toBe(false);
    q.fail('c', err('disk full', 'STORAGE_FAILED'));
    expect(q.decided()).toBe(true);
    expect(q.succeeded()).toBe(false);
  });

  it('with W = N, decides as failed on the first failure', () => {
    const q = new PutQuorum(3, NODES);
    q.ack('a');
    q.fail('b', err('timed out', 'TIMEOUT'));
    expect(q.decided()).toBe(true);
    expect(q.succeeded()).toBe(false);
  });

  it('names the acks that arrived and each failed or missing node with its reason', () => {
    const q = new PutQuorum(2, NODES);
    q.ack('a');
    q.fail('b', err('link closed mid-request'));
    // c never answered (the deadline fired).
    const m = q.failureMessage();
    expect(m).toContain('1 of 2 required');
    expect(m).toContain('W=2');
    expect(m).toContain('b: link closed mid-request');
    expect(m).toContain('c: no answer before the deadline');
    expect(m).not.toMatch(/\ba: /); // a acked: it is not a reason for failure
  });

  it('reports zero acks when nothing arrived', () => {
    const q = new PutQuorum(3, NODES);
    const m = q.failureMessage();
    expect(m).toContain('0 of 3 required');
    for (const n of NODES) expect(m).toContain(`${n}: no answer before the deadline`);
  });

  it('decides exactly when W acks arrived or W became unreachable (random event orders)', () => {
    const eventsArb = fc.tuple(fc.integer({ min: 1, max: 5 }), fc.nat()).chain(([n, wSeed]) =>
      fc.record({
        n: fc.constant(n),
        w: fc.constant(1 + (wSeed % n)),
        // Each node answers at most once, ack or failure, in a random order.
        outcomes: fc.shuffledSubarray(
          Array.from({ length: n }, (_, i) => i),
          { minLength: 0, maxLength: n },
        ).chain((order) => fc.tuple(fc.constant(order), fc.array(fc.boolean(), { minLength: order.length, maxLength: order.length }))),
      }),
    );
    fc.assert(
      fc.property(eventsArb, ({ n, w, outcomes: [order, acks] }) => {
        const replicas = Array.from({ length: n }, (_, i) => `n${i}`);
        const q = new PutQuorum(w, replicas);
        let acked = 0;
        let failed = 0;
        order.forEach((node, i) => {
          if (acks[i]) {
            q.ack(replicas[node]!);
            acked++;
          } else {
            q.fail(replicas[node]!, err('boom'));
            failed++;
          }
          expect(q.acks).toBe(acked);
          expect(q.succeeded()).toBe(acked >= w);
          expect(q.decided()).toBe(acked >= w || n - failed < w);
        });
        if (!q.succeeded()) expect(q.failureMessage()).toContain(`${acked} of ${w} required`);
      }),
    );
  });
});

describe('GetQuorum', () => {
  it('succeeds and is decided at exactly R replies', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', v1);
    expect(q.answers).toBe(1);
    expect(q.succeeded()).toBe(false);
    expect(q.decided()).toBe(false);
    q.reply('b', v2);
    expect(q.succeeded()).toBe(true);
    expect(q.decided()).toBe(true);
    expect(q.complete()).toBe(false);
  });

  it('counts not-found replies toward R (notfound_ok)', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', undefined);
    q.reply('b', undefined);
    expect(q.answers).toBe(2);
    expect(q.succeeded()).toBe(true);
    // All not found: the answer is the empty object, and there is nothing to repair.
    const final = q.merged();
    expect(final.siblings).toEqual([]);
    expect(final.vv).toEqual({});
    expect(q.stale(final)).toEqual([]);
  });

  it('decides as failed once too many replicas failed for R', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', v1);
    q.fail('b', err('timed out', 'TIMEOUT'));
    expect(q.decided()).toBe(false);
    q.fail('c', err('bad frame', 'BAD_FRAME'));
    expect(q.decided()).toBe(true);
    expect(q.succeeded()).toBe(false);
    const m = q.failureMessage();
    expect(m).toContain('1 of 2 required');
    expect(m).toContain('R=2');
    expect(m).toContain('b: timed out');
    expect(m).toContain('c: bad frame');
  });

  it('names missing replicas in the failure message', () => {
    const q = new GetQuorum(3, NODES);
    q.reply('a', undefined);
    q.fail('b', err('refused'));
    const m = q.failureMessage();
    expect(m).toContain('1 of 3 required');
    expect(m).toContain('b: refused');
    expect(m).toContain('c: no answer before the deadline');
  });

  it('is complete once every replica has answered or failed', () => {
    const q = new GetQuorum(1, NODES);
    q.reply('a', v1);
    expect(q.complete()).toBe(false);
    q.fail('b', err('x'));
    expect(q.complete()).toBe(false);
    q.reply('c', undefined);
    expect(q.complete()).toBe(true);
  });

  it('merges only the replies received', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', v1);
    q.reply('b', v3);
    const answer = q.merged();
    // v1 and v3 are concurrent: both siblings, and the context covers exactly them.
    expect(dots(answer)).toEqual(['a:1', 'b:1']);
    expect(answer.vv).toEqual({ a: 1, b: 1 });
    // A later reply changes the next merge, not the one already answered.
    q.reply('c', v2);
    expect(answer.vv).toEqual({ a: 1, b: 1 });
    expect(dots(q.merged())).toEqual(['a:2', 'b:1']);
    expect(sameState(q.merged(), merge(merge(v1, v3), v2))).toBe(true);
  });

  it('ignores failed replicas in the merge', () => {
    const q = new GetQuorum(1, NODES);
    q.fail('a', err('x'));
    q.reply('b', v1);
    expect(sameState(q.merged(), v1)).toBe(true);
  });

  it('lists replicas that are missing (not found) or behind as stale', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', v2);
    q.reply('b', v1); // behind: v2 supersedes v1
    q.reply('c', undefined); // missing
    const final = q.merged();
    expect(sameState(final, v2)).toBe(true);
    expect(q.stale(final).sort()).toEqual(['b', 'c']);
  });

  it('lists a replica holding only one side of concurrent writes as stale', () => {
    const q = new GetQuorum(2, NODES);
    q.reply('a', v1);
    q.reply('b', v3);
    expect(q.stale(q.merged()).sort()).toEqual(['a', 'b']);
  });

  it('lists nothing as stale when all replies are equal', () => {
    const q = new GetQuorum(3, NODES);
    // Equal states built separately (and with vectors in another key order) still count as equal.
    const w1 = merge(v1, v3);
    const w2 = merge(v3, v1);
    q.reply('a', w1);
    q.reply('b', w2);
    q.reply('c', merge(w1, w2));
    expect(q.stale(q.merged())).toEqual([]);
  });

  it('does not list replicas that never answered (there is nothing to compare)', () => {
    const q = new GetQuorum(1, NODES);
    q.reply('a', v2);
    q.fail('b', err('x'));
    expect(q.stale(q.merged())).toEqual([]);
  });
});
