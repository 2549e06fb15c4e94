import { describe, expect, it } from 'vitest';
import { constant, empirical, exponential, predict, type WarsModel } from '../../src/bench/pbs.js';
import { Random } from '../../src/sim/random.js';

const TRIALS = 20_000;
const ts = [0, 1, 2, 5, 10, 20];

describe('the PBS (WARS) Monte Carlo', () => {
  const slow: WarsModel = { hop: exponential(0.3), commit: exponential(1), replicaDelay: exponential(8) };

  it('gives P(consistent) = 1 at every t when R + W > N', () => {
    for (const [r, w] of [[1, 3], [3, 1], [2, 2], [2, 3], [3, 3]] as const) {
      for (const p of predict(slow, { n: 3, r, w, versions: 2, ts, trials: 2_000 }, new Random(r * 10 + w))) {
        expect(p.consistent, `R=${r} W=${w} t=${p.t}`).toBe(1);
        expect(p.withinK).toEqual([1, 1]);
      }
    }
  });

  it('gives 1 for every setting when nothing takes time', () => {
    const zero: WarsModel = { hop: constant(0), commit: constant(0), replicaDelay: constant(0) };
    for (const [r, w] of [[1, 1], [1, 2], [2, 1]] as const)
      for (const p of predict(zero, { n: 3, r, w, versions: 1, ts, trials: 500 }, new Random(7))) expect(p.consistent).toBe(1);
  });

  it('matches the closed form derived by hand for R = W = 1 with instant hops', () => {
    // The coordinator acks after its commit c (a remote ack comes later still: D + c > c), the
    // client's read reaches another replica at c + t and is answered from its own state, which
    // holds the write iff its delay D ~ Exp(mean μ) is ≤ c + t. So P = 1 − e^(−(c+t)/μ). With two
    // versions written one after the other, version 1 is visible there iff D1 ≤ 2c + t, so
    // P(at most one behind) = 1 − e^(−(c+t)/μ) · e^(−(2c+t)/μ).
    const c = 1.5;
    const mu = 6;
    const model: WarsModel = { hop: constant(0), commit: constant(c), replicaDelay: exponential(mu) };
    const got = predict(model, { n: 3, r: 1, w: 1, versions: 2, ts, trials: TRIALS }, new Random(2012));
    for (const p of got) {
      const fresh = 1 - Math.exp(-(c + p.t) / mu);
      expect(Math.abs(p.consistent - fresh), `t=${p.t}`).toBeLessThan(0.015);
      expect(p.withinK[0]).toBe(p.consistent);
      expect(Math.abs(p.withinK[1]! - (1 - Math.exp(-(c + p.t) / mu) * Math.exp(-(2 * c + p.t) / mu))), `t=${p.t}`).toBeLessThan(0.015);
    }
  });

  it('R = 2 takes the coordinator\'s own answer and the first remote one (derived by hand)', () => {
    // W = 1, N = 3, commits instant, remote replicas far too slow to see the write in time: only
    // the writer (replica 0) holds it when read. The read coordinator's own copy is empty, so the
    // read is fresh iff the writer's answer is the first remote one. Each answer takes two hops,
    // each 0 or 10 ms with equal odds: sums 0, 10, 20 with odds 1/4, 1/2, 1/4. The writer wins
    // outright with P = 5/16 and ties with P = 3/8 (a tie goes to the lower replica, the writer):
    // P = 11/16.
    const model: WarsModel = { hop: empirical([0, 10]), commit: constant(0), replicaDelay: constant(1_000) };
    const [p] = predict(model, { n: 3, r: 2, w: 1, versions: 1, ts: [0], trials: TRIALS }, new Random(4));
    expect(Math.abs(p!.consistent - 11 / 16)).toBeLessThan(0.015);
  });

  describe('with reads coordinated by the client', () => {
    it('gives 1 at every t when R + W > N, and 1 for every setting when nothing takes time', () => {
      for (const [r, w] of [[1, 3], [3, 1], [2, 2]] as const)
        for (const p of predict(slow, { n: 3, r, w, versions: 2, ts, trials: 2_000, reads: 'direct' }, new Random(r * 10 + w))) expect(p.consistent, `R=${r} W=${w}`).toBe(1);
      const zero: WarsModel = { hop: constant(0), commit: constant(0), replicaDelay: constant(0) };
      for (const [r, w] of [[1, 1], [2, 1]] as const)
        for (const p of predict(zero, { n: 3, r, w, versions: 1, ts, trials: 500, reads: 'direct' }, new Random(7))) expect(p.consistent).toBe(1);
    });

    it('answers from the first R of all N replicas (derived by hand)', () => {
      // W = 1, N = 3, commits instant, remote replicas far too slow: only the writer (replica 0)
      // holds the write when read. The client asks all three at once and each answer takes two
      // client hops drawn alike (exponential: no ties), so each replica is equally likely to be
      // among the first R: P(fresh) = R/3. A node-coordinated read instead answers from its own
      // empty copy first: P = 0 at R = 1.
      const model: WarsModel = { hop: exponential(0.2), commit: constant(0), replicaDelay: constant(1_000) };
      for (const r of [1, 2]) {
        const [p] = predict(model, { n: 3, r, w: 1, versions: 1, ts: [0, 5], trials: TRIALS, reads: 'direct' }, new Random(40 + r));
        expect(Math.abs(p!.consistent - r / 3), `R=${r}`).toBeLessThan(0.015);
      }
      const [coordinated] = predict(model, { n: 3, r: 1, w: 1, versions: 1, ts: [0], trials: 2_000 }, new Random(9));
      expect(coordinated!.consistent).toBe(0);
    });
  });

  it('refuses impossible settings', () => {
    const m: WarsModel = { hop: constant(0), commit: constant(0), replicaDelay: constant(0) };
    expect(() => predict(m, { n: 3, r: 4, w: 1, versions: 1, ts: [0], trials: 1 }, new Random(1))).toThrow(/R and W/);
    expect(() => empirical([])).toThrow(/at least one sample/);
  });
});
