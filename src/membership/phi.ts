// The phi-accrual failure detector (Hayashibara et al. 2004; Cassandra's and Akka's choice).
// Instead of a yes/no timeout it gives a suspicion level: phi = -log10(P(a heartbeat arrives
// later than now)), with heartbeat inter-arrival times modelled as a normal distribution learned
// from a sliding window. phi = 8 means "a delay this long happens once in 10^8 heartbeats".
//
// As in Akka, the standard deviation has a floor and an "acceptable pause" is added to the mean,
// so a perfectly regular sender does not make the detector hair-triggered, and a short GC or
// fsync stall is not judged a failure.

export interface PhiOptions {
  /** Heartbeat intervals remembered (default 200). */
  windowSize?: number;
  /** Floor of the standard deviation, ms (default 100). */
  minStdDevMs?: number;
  /** Pause tolerated on top of the mean interval, ms (default 500). */
  acceptablePauseMs?: number;
  /** Assumed interval before any has been measured, ms (default 200). */
  firstIntervalMs?: number;
}

export class PhiAccrualDetector {
  private readonly intervals: number[] = [];
  private sum = 0;
  private sumSquares = 0;
  private last: number | null = null;
  private readonly windowSize: number;
  private readonly minStd: number;
  private readonly pause: number;

  constructor(opts: PhiOptions = {}) {
    this.windowSize = opts.windowSize ?? 200;
    this.minStd = opts.minStdDevMs ?? 100;
    this.pause = opts.acceptablePauseMs ?? 500;
    // Seed with two guesses around the expected interval so phi is meaningful from the start.
    const first = opts.firstIntervalMs ?? 200;
    this.record(first - first / 4);
    this.record(first + first / 4);
  }

  /** A heartbeat arrived at `now` (ms). */
  heartbeat(now: number): void {
    if (this.last !== null) this.record(Math.max(0, now - this.last));
    this.last = now;
  }

  /** Suspicion at `now`: 0 right after a heartbeat, growing while none arrives. */
  phi(now: number): number {
    if (this.last === null) return 0;
    const elapsed = now - this.last;
    const n = this.intervals.length;
    const mean = this.sum / n + this.pause;
    const variance = Math.max(0, this.sumSquares / n - (this.sum / n) ** 2);
    const std = Math.max(Math.sqrt(variance), this.minStd);
    // P(X > elapsed) for X ~ N(mean, std), via the logistic approximation of the normal CDF
    // (as Akka does): accurate to well under 1% and never exactly 0, so log10 stays finite.
    const y = (elapsed - mean) / std;
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
    const pLater = elapsed > mean ? e / (1 + e) : 1 - 1 / (1 + e);
    return -Math.log10(Math.max(pLater, 1e-300));
  }

  /** Last heartbeat time, or null before the first. */
  get lastHeartbeat(): number | null {
    return this.last;
  }

  private record(interval: number): void {
    this.intervals.push(interval);
    this.sum += interval;
    this.sumSquares += interval * interval;
    if (this.intervals.length > this.windowSize) {
      const old = this.intervals.shift()!;
      this.sum -= old;
      this.sumSquares -= old * old;
    }
  }
}
