// Probabilistically Bounded Staleness (Bailis et al., VLDB 2012): a Monte Carlo of the WARS model
// — W (a write reaching a replica), A (its ack coming back), R (a read reaching a replica) and S
// (the replica's answer coming back) — drawn from latency distributions, to predict how often a
// read t ms after a write's ack returns it (t-visibility), and how many versions behind it is when
// it does not (k-staleness).
//
// The model follows Nexus's own request path rather than the paper's generic coordinator:
//   - Every node is a replica of the key (K = N); the write coordinator is replica 0 and the read
//     coordinator another one, replica 1 (the staleness probe reads through another node).
//   - The coordinator's own write is visible at once (it is staged before the commit) and acks
//     when its commit is durable; it crosses no network.
//   - A remote replica sees the write one network hop plus its extra (injected) delay later,
//     acks after its own commit, and the ack takes one hop back.
//   - The write is acknowledged at the W-th ack; the client hears of it one client hop later, and
//     its next request (the next version, or the read t ms later) takes one more to a node.
//   - The read coordinator answers from its own state at once; each remote replica reads its
//     state one hop after the request is sent and its answer takes one hop back. The first R
//     answers make the result: the newest version any of them holds.
//   - Or, with `reads: 'direct'`, the client coordinates the read itself (client/direct.ts): it
//     sends the request to every replica at once, each reads its state one client hop later and
//     answers one client hop after that, and the first R answers make the result.
// Pure: no I/O, no clock; the randomness is the caller's seeded generator.

import type { Random } from '../sim/random.js';

/** A latency distribution, ms. */
export type Sampler = (rnd: Random) => number;

export const constant =
  (ms: number): Sampler =>
  () =>
    ms;

/** Exponential with the given mean (the paper's model of a write's propagation). */
export const exponential =
  (meanMs: number): Sampler =>
  (rnd) =>
    meanMs <= 0 ? 0 : -meanMs * Math.log(1 - rnd.next());

/** Draws from measured samples (each equally likely). */
export function empirical(samples: readonly number[]): Sampler {
  if (samples.length === 0) throw new Error('an empirical distribution needs at least one sample');
  const copy = Float64Array.from(samples);
  return (rnd) => copy[rnd.int(copy.length)]!;
}

/** The distributions of one run, ms. */
export interface WarsModel {
  /** One network hop between two nodes. */
  hop: Sampler;
  /** One hop between the client and a node (default: `hop`). */
  clientHop?: Sampler;
  /** A replica's commit: from the write being staged (visible) to durable (acked). */
  commit: Sampler;
  /** Extra delay before a remote replica applies a write (the injected per-replica delay). */
  replicaDelay: Sampler;
  /** How long the client really waits when asked to wait t ms (timers overshoot); default t. */
  wait?: (t: number, rnd: Random) => number;
}

export interface PbsQuery {
  n: number;
  r: number;
  w: number;
  /** Versions written one after another (each after the previous ack) before the read. */
  versions: number;
  /** Delays t (ms) after the last ack at which the read is sent. */
  ts: number[];
  trials: number;
  /** Who coordinates the read: another node (default) or the client itself. */
  reads?: 'coordinated' | 'direct';
}

export interface PbsPoint {
  t: number;
  /** P(the read returns the latest version). */
  consistent: number;
  /** withinK[k-1] = P(the newest version returned is at most k - 1 behind): k-staleness, k = 1…versions. */
  withinK: number[];
}

/** Predicts t-visibility and k-staleness by Monte Carlo over `q.trials` trials per t. */
export function predict(model: WarsModel, q: PbsQuery, rnd: Random): PbsPoint[] {
  if (q.n < 2 && q.reads !== 'direct') throw new Error('the model needs N >= 2 (the read goes through another replica)');
  if (q.r < 1 || q.r > q.n || q.w < 1 || q.w > q.n) throw new Error(`R and W must be from 1 to N=${q.n}`);
  if (q.versions < 1) throw new Error('versions must be at least 1');
  return q.ts.map((t) => {
    let consistent = 0;
    const within = new Array<number>(q.versions).fill(0);
    for (let i = 0; i < q.trials; i++) {
      const behind = trial(model, q, t, rnd);
      if (behind === 0) consistent++;
      for (let k = behind; k < q.versions; k++) within[k]!++;
    }
    return { t, consistent: consistent / q.trials, withinK: within.map((c) => c / q.trials) };
  });
}

/** One trial: how many versions behind the latest the read's answer is (versions = none at all). */
function trial(m: WarsModel, q: PbsQuery, t: number, rnd: Random): number {
  const client = m.clientHop ?? m.hop;
  // visible[v][j]: when version v (0-based) became visible at replica j.
  const visible: number[][] = [];
  let start = 0;
  let acked = 0;
  for (let v = 0; v < q.versions; v++) {
    const at: number[] = [];
    const acks: number[] = [];
    for (let j = 0; j < q.n; j++) {
      if (j === 0) {
        at.push(start);
        acks.push(start + m.commit(rnd));
      } else {
        const seen = start + m.hop(rnd) + m.replicaDelay(rnd);
        at.push(seen);
        acks.push(seen + m.commit(rnd) + m.hop(rnd));
      }
    }
    visible.push(at);
    acks.sort((a, b) => a - b);
    acked = acks[q.w - 1]!;
    // The client hears of the ack, then sends its next request.
    start = acked + client(rnd) + client(rnd);
  }
  const answers: Array<{ at: number; newest: number }> = [];
  const newestAt = (j: number, at: number): number => {
    for (let v = q.versions - 1; v >= 0; v--) if (visible[v]![j]! <= at) return v;
    return -1;
  };
  if (q.reads === 'direct') {
    // The client's requests leave together; each replica answers after a client round trip.
    const sentAt = acked + client(rnd) + (m.wait ? m.wait(t, rnd) : t);
    for (let j = 0; j < q.n; j++) {
      const readsAt = sentAt + client(rnd);
      answers.push({ at: readsAt + client(rnd), newest: newestAt(j, readsAt) });
    }
    return firstR(answers, q);
  }
  const readAt = acked + client(rnd) + (m.wait ? m.wait(t, rnd) : t) + client(rnd);
  // Answers: the read coordinator (replica 1) at once, the others after a round trip.
  // The coordinator's own answer first: on a tie it still counts first, as in Nexus, where it is
  // given to the quorum before any request leaves.
  for (const j of [1, ...Array.from({ length: q.n }, (_, i) => i).filter((i) => i !== 1)]) {
    const readsAt = j === 1 ? readAt : readAt + m.hop(rnd);
    const answersAt = j === 1 ? readAt : readsAt + m.hop(rnd);
    answers.push({ at: answersAt, newest: newestAt(j, readsAt) });
  }
  return firstR(answers, q);
}

/** How many versions behind the newest of the first R answers is (a stable sort: ties keep order). */
function firstR(answers: Array<{ at: number; newest: number }>, q: PbsQuery): number {
  answers.sort((a, b) => a.at - b.at);
  let newest = -1;
  for (let i = 0; i < q.r; i++) newest = Math.max(newest, answers[i]!.newest);
  return q.versions - 1 - newest;
}
