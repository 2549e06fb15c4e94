// The client's own read coordination (src/client/direct.ts) against scripted replicas: it answers at
// R replies with a context covering exactly those, hands a read to a node coordinator (a responsive
// one) when R is out of reach or a primary holds it up, and sends a repair read to a stale replica.
// The same paths against real processes are in test/integration/direct-reads.test.ts.

import { describe, expect, it } from 'vitest';
import { DirectReads, MAX_PENDING_CHECKS } from '../../src/client/direct.js';
import { NexusError, ErrorCodes } from '../../src/core/errors.js';
import { decodeContext, emptyObject, encodeObject, update } from '../../src/core/version.js';
import type { Link } from '../../src/transport/link.js';
import type { Replies, RequestOf } from '../../src/transport/protocol.js';

const MEMBERS = ['a', 'b', 'c'];
const urlOf = (id: string): string => `ws://${id}`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (v: Uint8Array): string => new TextDecoder().decode(v);

const v1 = update(emptyObject(), {}, 'a', 1, enc('v1'));
const v2 = update(v1, v1.vv, 'a', 2, enc('v2'));

/** What a scripted replica does with an rget: answer with a state (or null), fail, answer later, or never. */
type Behaviour = { obj: Uint8Array | null } | { fail: NexusError } | { later: Promise<{ obj: Uint8Array | null }> } | 'hang';

/** Lets pending promise callbacks run until `cond` holds (a bounded number of event-loop turns). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}

/** Lets `n` event-loop turns pass (promise callbacks run in between). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A clock that moves only when told to: the repair grace without real waiting. */
function manualClock() {
  let now = 0;
  let timers: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimeout(fn: () => void, ms: number) {
      const t = { at: now + ms, fn };
      timers.push(t);
      return { cancel: () => void (timers = timers.filter((x) => x !== t)) };
    },
    /** Moves time on by `ms`, running the timers that come due. */
    advance(ms: number): void {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
    get timers(): number {
      return timers.length;
    },
  };
}

function harness(behaviour: Record<string, Behaviour>, opts: { urls?: string[]; patienceMs?: number } = {}) {
  const asked: string[] = [];
  const clock = manualClock();
  const coordinated: Array<{ url: string | undefined; msg: RequestOf<'get'> }> = [];
  const link = (id: string): Link =>
    ({
      request: (msg: { t: string }) => {
        if (msg.t === 'ring')
          return Promise.resolve({ node: id, fingerprint: 'fp', members: MEMBERS, partitions: 8, n: 3, defaultR: 2 } satisfies Replies['ring']);
        asked.push(id);
        const b = behaviour[id]!;
        if (b === 'hang') return new Promise(() => {});
        if ('later' in b) return b.later;
        return 'fail' in b ? Promise.reject(b.fail) : Promise.resolve(b);
      },
    }) as unknown as Link;
  const reads = new DirectReads({
    urls: opts.urls ?? MEMBERS.map(urlOf),
    link: (url) => Promise.resolve(link(url.slice('ws://'.length))),
    coordinated: (msg, _timeoutMs, url) => {
      coordinated.push({ url, msg });
      return Promise.resolve({ found: true, values: [enc('from a coordinator')], ctx: '', siblings: 1 });
    },
    patienceMs: opts.patienceMs ?? 1000,
    repairGraceMs: GRACE,
    clock,
  });
  return { reads, asked, coordinated, clock, behaviour };
}

const GRACE = 500;

const get = (key = 'k', r?: number): RequestOf<'get'> => ({ t: 'get', key, ...(r !== undefined ? { r } : {}) });

describe('DirectReads', () => {
  it('answers at R replies with their merge and a context covering exactly those', async () => {
    // b answers after the answer: its newer state must be in neither the values nor the context,
    // and it then shows a and c stale, so a repair read goes to one of them.
    let answerB!: (x: { obj: Uint8Array | null }) => void;
    const h = harness({ a: { obj: encodeObject(v1) }, b: { later: new Promise((res) => (answerB = res)) }, c: { obj: null } });
    const res = await h.reads.get(get('k', 2), 5000);
    expect(res.values.map(text)).toEqual(['v1']);
    expect(decodeContext(res.ctx)).toEqual(v1.vv);
    expect(h.reads.stats).toMatchObject({ direct: 1, fallbacks: 0 });
    expect(h.coordinated).toEqual([]);
    answerB({ obj: encodeObject(v2) });
    await until(() => h.reads.pendingChecks === 1);
    h.clock.advance(GRACE); // a still holds v1 when checked: it is repaired
    await until(() => h.reads.stats.repairs === 1);
    expect(h.coordinated).toEqual([{ url: urlOf('a'), msg: { t: 'get', key: 'k', r: 1 } }]);
  });

  it('counts "not found" toward R, and the default R comes from the cluster', async () => {
    const h = harness({ a: { obj: null }, b: { obj: null }, c: 'hang' });
    const res = await h.reads.get(get('k'), 5000);
    expect(res.found).toBe(false);
    expect(h.reads.stats.direct).toBe(1);
  });

  it('hands the read to a node that answered when R is out of reach', async () => {
    const down = new NexusError(ErrorCodes.UNREACHABLE, 'connection refused');
    const h = harness({ a: { fail: down }, b: { obj: encodeObject(v1) }, c: { fail: down } });
    const res = await h.reads.get(get('k', 2), 5000);
    expect(res.values.map(text)).toEqual(['from a coordinator']);
    expect(h.reads.stats).toMatchObject({ direct: 0, fallbacks: 1 });
    // Handed over as soon as the second failure made R=2 unreachable, to b, which had answered.
    expect(h.coordinated.map((c) => c.url)).toEqual([urlOf('b')]);
  });

  it('hands the read over once a hanging primary holds it past the patience', async () => {
    const h = harness({ a: { obj: encodeObject(v1) }, b: 'hang', c: 'hang' }, { patienceMs: 20 });
    setTimeout(() => h.clock.advance(20), 5);
    const res = await h.reads.get(get('k', 2), 5000);
    expect(res.values.map(text)).toEqual(['from a coordinator']);
    expect(h.coordinated).toEqual([{ url: urlOf('a'), msg: expect.objectContaining({ key: 'k', r: 2 }) }]);
  });

  it('leaves a key to a node when it lacks a primary\'s URL, without asking any replica', async () => {
    const h = harness({ a: { obj: null }, b: { obj: null }, c: { obj: null } }, { urls: [urlOf('a'), urlOf('b')] });
    await h.reads.get(get('k', 2), 5000);
    expect(h.asked).toEqual([]);
    expect(h.reads.stats).toMatchObject({ direct: 0, fallbacks: 1 });
  });

  it('sends one repair read (R=1) to a replica still stale once the grace is over', async () => {
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v1) } });
    const res = await h.reads.get(get('k', 2), 5000);
    expect(res.values.map(text)).toEqual(['v2']);
    await until(() => h.reads.pendingChecks === 1);
    h.clock.advance(GRACE - 1);
    await turns(10);
    expect(h.asked).toEqual(['a', 'b', 'c']); // not checked before the grace is over
    h.clock.advance(1);
    await until(() => h.reads.stats.repairs === 1);
    expect(h.asked).toEqual(['a', 'b', 'c', 'c']); // the check asked c alone
    expect(h.coordinated).toEqual([{ url: urlOf('c'), msg: { t: 'get', key: 'k', r: 1 } }]);
    expect(h.reads.stats).toMatchObject({ repairs: 1, caughtUp: 0 });
    expect(h.reads.pendingChecks).toBe(0);
  });

  it('leaves a replica alone that received the write it lacked within the grace', async () => {
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v1) } });
    await h.reads.get(get('k', 2), 5000);
    await until(() => h.reads.pendingChecks === 1);
    // The write in flight to c lands, and a later one too: c is now past what the read saw.
    h.behaviour.c = { obj: encodeObject(update(v2, v2.vv, 'b', 1, enc('v3'))) };
    h.clock.advance(GRACE);
    await until(() => h.reads.stats.caughtUp === 1);
    expect(h.asked).toEqual(['a', 'b', 'c', 'c']);
    expect(h.reads.stats.repairs).toBe(0);
    expect(h.coordinated).toEqual([]);
  });

  it('repairs at once, as before the grace, once too many stale reads wait for their check', async () => {
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v1) } });
    for (let i = 0; i < MAX_PENDING_CHECKS; i++) await h.reads.get(get(`k${i}`, 3), 5000); // R=3: all in before the answer
    expect(h.reads.pendingChecks).toBe(MAX_PENDING_CHECKS);
    expect(h.reads.stats.repairs).toBe(0);
    await h.reads.get(get('one-more', 3), 5000);
    expect(h.reads.pendingChecks).toBe(MAX_PENDING_CHECKS);
    expect(h.coordinated).toEqual([{ url: urlOf('c'), msg: { t: 'get', key: 'one-more', r: 1 } }]);
    h.clock.advance(GRACE); // the waiting ones are checked (c is still behind): one repair read each
    await until(() => h.reads.stats.repairs === MAX_PENDING_CHECKS + 1);
    expect(h.reads.pendingChecks).toBe(0);
  });

  it('sends no repair for a check still waiting for its answer at close', async () => {
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v1) } });
    await h.reads.get(get('k', 2), 5000);
    await until(() => h.reads.pendingChecks === 1);
    let answerC!: (x: { obj: Uint8Array | null }) => void;
    h.behaviour.c = { later: new Promise((res) => (answerC = res)) };
    h.clock.advance(GRACE);
    await until(() => h.asked.length === 4); // the check has asked c
    h.reads.close();
    answerC({ obj: encodeObject(v1) }); // still behind, but the client is closed
    await turns(10);
    expect(h.reads.stats).toMatchObject({ repairs: 0, caughtUp: 0 });
    expect(h.coordinated).toEqual([]);
  });

  it('repairs no replica that does not answer the check, and checks nothing after close', async () => {
    const down = new NexusError(ErrorCodes.UNREACHABLE, 'connection refused');
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v1) } });
    await h.reads.get(get('k', 2), 5000);
    await until(() => h.reads.pendingChecks === 1);
    h.behaviour.c = { fail: down };
    h.clock.advance(GRACE);
    await until(() => h.asked.length === 4);
    await turns(10);
    expect(h.reads.stats).toMatchObject({ repairs: 0, caughtUp: 0 });

    h.behaviour.c = { obj: encodeObject(v1) };
    await h.reads.get(get('k2', 2), 5000);
    await until(() => h.reads.pendingChecks === 1);
    h.reads.close();
    expect(h.reads.pendingChecks).toBe(0);
    expect(h.clock.timers).toBe(0);
    h.clock.advance(GRACE);
    await turns(10);
    expect(h.asked.length).toBe(7); // 3 + 1 check + 3: nothing after close
    // A read after close still answers, but queues no check.
    await h.reads.get(get('k3', 2), 5000);
    await turns(10);
    expect(h.reads.pendingChecks).toBe(0);
    expect(h.clock.timers).toBe(0);
    expect(h.coordinated).toEqual([]);
  });

  it('sends no repair read when the replicas agree', async () => {
    const h = harness({ a: { obj: encodeObject(v2) }, b: { obj: encodeObject(v2) }, c: { obj: encodeObject(v2) } });
    await h.reads.get(get('k', 3), 5000); // R=3: answered only once all three are in
    expect(h.reads.stats).toMatchObject({ direct: 1, repairs: 0 });
    expect(h.coordinated).toEqual([]);
  });
});
