// Time is a seam: replication logic asks a Clock instead of calling Date.now()/setTimeout, so the
// deterministic simulation can run the same code on virtual time.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary fixed origin; never goes backwards. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds unless cancelled. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout(fn, ms) {
    // Node fires timers longer than 2^31-1 ms at once; cap them instead.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    return { cancel: () => clearTimeout(t) };
  },
};
