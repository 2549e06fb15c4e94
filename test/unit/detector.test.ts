// The phi-accrual detector and the per-peer judge, on an injected clock: phi rises while
// heartbeats stop and falls back when they resume; link closes and timeouts act at once.

import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../src/core/clock.js';
import { FailureDetector } from '../../src/membership/detector.js';
import { PhiAccrualDetector } from '../../src/membership/phi.js';

class FakeClock implements Clock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
  setTimeout(): TimerHandle {
    throw new Error('not used');
  }
}

describe('PhiAccrualDetector', () => {
  it('rises steadily while heartbeats stop, and recovers when they resume', () => {
    const d = new PhiAccrualDetector({ minStdDevMs: 100, acceptablePauseMs: 500 });
    let t = 0;
    for (let i = 0; i < 50; i++) d.heartbeat((t += 200));
    expect(d.phi(t)).toBeLessThan(0.5);
    const samples = [200, 700, 1000, 1300, 2000].map((dt) => d.phi(t + dt));
    for (let i = 1; i < samples.length; i++) expect(samples[i]!).toBeGreaterThan(samples[i - 1]!);
    expect(d.phi(t + 700)).toBeLessThan(1); // within mean + acceptable pause: no suspicion
    expect(d.phi(t + 2000)).toBeGreaterThan(8); // well past it: judged down at the default threshold
    d.heartbeat(t + 2000);
    expect(d.phi(t + 2000)).toBeLessThan(0.01);
    expect(d.phi(t + 2050)).toBeLessThan(0.5);
  });

  it('learns a slower heartbeat and tolerates its jitter', () => {
    const d = new PhiAccrualDetector({ minStdDevMs: 50, acceptablePauseMs: 0 });
    let t = 0;
    for (let i = 0; i < 200; i++) d.heartbeat((t += i % 2 === 0 ? 900 : 1100));
    expect(d.phi(t + 1100)).toBeLessThan(1.5);
    expect(d.phi(t + 3000)).toBeGreaterThan(8);
  });

  it('stays finite far past the last heartbeat', () => {
    const d = new PhiAccrualDetector();
    d.heartbeat(0);
    d.heartbeat(200);
    expect(Number.isFinite(d.phi(10_000_000))).toBe(true);
  });
});

describe('FailureDetector', () => {
  function setup() {
    const clock = new FakeClock();
    const changes: string[] = [];
    const fd = new FailureDetector({ self: 'a', peers: ['a', 'b', 'c'], clock, onChange: (p, s, why) => changes.push(`${p} ${s} (${why})`) });
    const beat = (peer: string, times: number, every = 200): void => {
      for (let i = 0; i < times; i++) {
        clock.t += every;
        fd.heartbeat(peer);
        fd.tick();
      }
    };
    return { clock, fd, changes, beat };
  }

  it('starts peers down, marks them up on a heartbeat, always counts itself up', () => {
    const { fd, beat } = setup();
    expect(fd.isUp('a')).toBe(true);
    expect(fd.isUp('b')).toBe(false);
    beat('b', 1);
    expect(fd.isUp('b')).toBe(true);
    expect(fd.isUp('c')).toBe(false);
  });

  it('judges a silent peer down by phi within a few seconds, and up again when heartbeats resume', () => {
    const { clock, fd, beat, changes } = setup();
    beat('b', 50);
    const stoppedAt = clock.t;
    while (fd.isUp('b')) {
      clock.t += 50;
      fd.tick();
    }
    const detectMs = clock.t - stoppedAt;
    expect(detectMs).toBeGreaterThan(700);
    expect(detectMs).toBeLessThan(3000);
    expect(changes.at(-1)).toMatch(/^b down \(phi/);
    expect(fd.view('b')!.since).toBe(clock.t);
    beat('b', 1);
    expect(fd.isUp('b')).toBe(true);
  });

  it('judges a peer down at once when its link closes', () => {
    const { fd, beat, changes } = setup();
    beat('c', 10);
    fd.linkChanged('c', false);
    expect(fd.isUp('c')).toBe(false);
    expect(changes.at(-1)).toBe('c down (link closed)');
  });

  it('re-judges a peer at once when a request to it times out', () => {
    const { clock, fd, beat } = setup();
    beat('b', 50);
    clock.t += 5000; // no tick in between
    expect(fd.isUp('b')).toBe(true);
    fd.requestTimedOut('b');
    expect(fd.isUp('b')).toBe(false);
  });

  it('forgets the outage when a peer comes back, so the next failure is detected as fast', () => {
    const { clock, fd, beat } = setup();
    const detect = (): number => {
      beat('b', 50);
      const stoppedAt = clock.t;
      while (fd.isUp('b')) {
        clock.t += 50;
        fd.tick();
      }
      return clock.t - stoppedAt;
    };
    const first = detect();
    clock.t += 20_000; // a long outage
    const second = detect();
    expect(second).toBe(first);
  });

  it('judges no one on a tick that comes far too late: the pause was its own', () => {
    const { clock, fd, beat } = setup();
    beat('b', 20);
    fd.tick(200);
    clock.t += 10_000; // this process was stopped; b's heartbeats wait unread in the socket
    fd.tick(200);
    expect(fd.isUp('b')).toBe(true);
    fd.heartbeat('b');
    clock.t += 200;
    fd.tick(200);
    expect(fd.isUp('b')).toBe(true);
  });
});
