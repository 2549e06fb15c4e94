// The load monitor that pauses anti-entropy: overloaded while too many foreground requests are in
// progress, or while the event loop runs late; back to normal once either passes.

import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../src/core/clock.js';
import { LoadMonitor } from '../../src/core/load.js';

/** A clock whose single pending timer the test fires by hand, as late as it likes. */
class StepClock implements Clock {
  t = 0;
  private pending: { at: number; fn: () => void } | null = null;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    this.pending = { at: this.t + ms, fn };
    return { cancel: () => (this.pending = null) };
  }
  /** Fires the pending timer `lateMs` after it was due. */
  fire(lateMs = 0): void {
    const p = this.pending!;
    this.pending = null;
    this.t = p.at + lateMs;
    p.fn();
  }
}

describe('LoadMonitor', () => {
  it('counts foreground requests until they settle', async () => {
    const m = new LoadMonitor({ clock: new StepClock(), maxInFlight: 2 });
    const gates: Array<() => void> = [];
    const work = () => m.track(new Promise<void>((r) => gates.push(r)));
    const done = [work(), work()];
    expect(m.overloaded()).toBe(false);
    done.push(work());
    expect(m.overloaded()).toBe(true);
    expect(m.stats().foregroundInFlight).toBe(3);
    gates.forEach((g) => g());
    await Promise.all(done);
    expect(m.overloaded()).toBe(false);
  });

  it('reports a late event loop, and forgets it within a few samples', () => {
    const clock = new StepClock();
    const m = new LoadMonitor({ clock, maxInFlight: 100, maxLagMs: 200, sampleMs: 100 });
    m.start();
    clock.fire(0);
    expect(m.overloaded()).toBe(false);
    clock.fire(900); // a 900 ms stall
    expect(m.overloaded()).toBe(true);
    expect(m.stats().loopLagMs).toBe(900);
    for (let i = 0; i < 3; i++) clock.fire(0);
    expect(m.overloaded()).toBe(false);
    m.stop();
  });
});
