// Key choosers for the YCSB workloads: uniform, and zipfian (θ = 0.99 by default) with ranks
// scrambled by a hash, as YCSB's ScrambledZipfianGenerator does, so the popular keys are spread
// over the key space (and the ring) rather than being k0, k1, k2… Ranks are drawn exactly, by
// inverting the cumulative distribution (a table of n doubles): YCSB's closed-form draw (Gray et
// al.) is only approximate for ranks past the first two — a chi-square test rejected it here.

import type { Random } from '../sim/random.js';

export interface KeyChooser {
  /** A record number in [0, n). */
  next(): number;
}

export function uniform(n: number, rnd: Random): KeyChooser {
  return { next: () => rnd.int(n) };
}

/** Ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^θ, unscrambled (rank 0 is the most popular). */
export class Zipfian implements KeyChooser {
  readonly zetan: number;
  /** cdf[k] = P(rank <= k). */
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    private readonly rnd: Random,
    readonly theta = 0.99,
  ) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) this.cdf[k] = sum += 1 / Math.pow(k + 1, theta);
    this.zetan = sum;
    for (let k = 0; k < n; k++) this.cdf[k] = this.cdf[k]! / sum;
  }

  next(): number {
    const u = this.rnd.next();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cdf[mid]! <= u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The probability of rank k under this distribution. */
  p(k: number): number {
    return 1 / Math.pow(k + 1, this.theta) / this.zetan;
  }
}

/** Zipfian popularity, with each rank mapped to a record by a fixed hash (YCSB's scrambled zipfian). */
export function scrambledZipfian(n: number, rnd: Random, theta = 0.99): KeyChooser {
  const z = new Zipfian(n, rnd, theta);
  return { next: () => fnv(z.next()) % n };
}

function fnv(x: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ ((x >>> (8 * i)) & 0xff), 0x01000193);
  }
  return h >>> 0;
}
