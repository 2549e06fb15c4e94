// The receiving side of handoff's rate limit. Each stand-in paces its own deliveries, but a node
// returning from an outage may hold hints on several stand-ins at once, and their rates add up.
// The returning node therefore admits handed-off hints at most at its own rate, whoever sends
// them: a batch waits its turn, the sender waits for the reply, and so the total is bounded.

import type { Clock } from '../core/clock.js';
import { ErrorCodes, NexusError } from '../core/errors.js';

export class Pacer {
  /** When the hints admitted so far will have been paid for at `ratePerSec` (clock ms). */
  private paidUntil = -Infinity;

  constructor(
    private readonly ratePerSec: number,
    private readonly clock: Clock,
  ) {}

  /**
   * Resolves when `n` more items may be processed: at once while under the rate, otherwise once
   * the earlier items' share of time has passed. Turns are taken in call order. Refuses at once
   * (OVERLOADED, nothing reserved) when the turn would come later than `maxWaitMs` from now, so a
   * sender is never kept past its deadline; it tries again later.
   */
  take(n: number, maxWaitMs: number): Promise<void> {
    const now = this.clock.now();
    const start = Math.max(now, this.paidUntil);
    const wait = start - now;
    if (wait > maxWaitMs) {
      return Promise.reject(new NexusError(ErrorCodes.OVERLOADED, `handoff intake is full: ${Math.round(wait)} ms of hints queued at ${this.ratePerSec}/s; try again later`));
    }
    this.paidUntil = start + (n / this.ratePerSec) * 1000;
    if (wait <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.clock.setTimeout(resolve, wait));
  }
}
