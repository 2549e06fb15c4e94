// How busy a node is, so background work (anti-entropy rounds) can step aside for foreground
// requests. Two signals: foreground requests in progress, and event-loop lag — how late a timer
// fires, sampled every `sampleMs` and remembered (halving per sample) so one late tick counts for
// about a second. On a virtual clock timers are never late, so the simulation sees no lag.

import type { Clock, TimerHandle } from './clock.js';

export interface LoadMonitorOptions {
  clock: Clock;
  /** Foreground requests in progress past which the node counts as overloaded. */
  maxInFlight: number;
  /** Event-loop lag past which the node counts as overloaded, ms (default 200). */
  maxLagMs?: number;
  sampleMs?: number;
}

export class LoadMonitor {
  private inFlight = 0;
  private lag = 0;
  private timer: TimerHandle | null = null;

  constructor(private readonly o: LoadMonitorOptions) {}

  start(): void {
    const every = this.o.sampleMs ?? 100;
    const sample = (expected: number): void => {
      const late = Math.max(0, this.o.clock.now() - expected);
      this.lag = Math.max(late, this.lag / 2);
      const next = this.o.clock.now() + every;
      this.timer = this.o.clock.setTimeout(() => sample(next), every);
    };
    const first = this.o.clock.now() + every;
    this.timer = this.o.clock.setTimeout(() => sample(first), every);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Counts a foreground request until the returned promise settles. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inFlight++;
    return work.finally(() => this.inFlight--);
  }

  overloaded(): boolean {
    return this.inFlight > this.o.maxInFlight || this.lag > (this.o.maxLagMs ?? 200);
  }

  stats(): { foregroundInFlight: number; loopLagMs: number } {
    return { foregroundInFlight: this.inFlight, loopLagMs: Math.round(this.lag) };
  }
}
