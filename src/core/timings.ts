// Recent timings of a node's replica traffic, and the per-replica write delay the benchmark can
// inject. `nexus bench` takes the timings (the `timings` request, which starts them afresh) to
// feed its PBS model with the latencies each step of the run itself produced: the coordinator's
// own commits, the round trips of replica reads and writes, and the delays it injected.

/** The latest `size` values of one measurement, ms (a ring buffer: old values are overwritten). */
export class Recent {
  private readonly buf: Float64Array;
  private count = 0;

  constructor(size = 4096) {
    this.buf = new Float64Array(size);
  }

  push(ms: number): void {
    this.buf[this.count++ % this.buf.length] = ms;
  }

  /** The values since the last `take` (the latest `size` of them), then starts afresh. */
  take(): number[] {
    const n = Math.min(this.count, this.buf.length);
    const start = this.count > this.buf.length ? this.count % this.buf.length : 0;
    const out = Array.from({ length: n }, (_, i) => this.buf[(start + i) % this.buf.length]!);
    this.count = 0;
    return out;
  }
}

export interface NodeTimings {
  /** The coordinator's own write: staged (visible) to durable. */
  commit: Recent;
  /** A replica write to another node: sent to acknowledged. */
  rput: Recent;
  /** A replica read from another node: sent to answered. */
  rget: Recent;
  /** The delay injected before this node applied a replica write (as slept, not as asked). */
  delay: Recent;
}

export function nodeTimings(): NodeTimings {
  return { commit: new Recent(), rput: new Recent(), rget: new Recent(), delay: new Recent() };
}

/** A delay distribution: "exp:MEAN", "const:MS" or "uniform:LO-HI" (ms), or "none". */
export interface DelaySpec {
  spec: string;
  /** A draw, ms, from a uniform number in [0, 1). */
  sample(u: number): number;
}

export function parseDelaySpec(spec: string): DelaySpec | null {
  if (spec === 'none' || spec === '') return null;
  const usage = `bad delay "${spec}": use exp:MEAN, const:MS or uniform:LO-HI, in ms from 0 to 60000`;
  const num = (s: string | undefined): number => {
    const n = Number(s);
    if (s === undefined || s === '' || !Number.isFinite(n) || n < 0 || n > 60_000) throw new Error(usage);
    return n;
  };
  const [kind, arg] = spec.split(':', 2);
  switch (kind) {
    case 'exp': {
      const mean = num(arg);
      return { spec, sample: (u) => Math.max(0, -mean * Math.log(1 - u)) };
    }
    case 'const': {
      const ms = num(arg);
      return { spec, sample: () => ms };
    }
    case 'uniform': {
      const [lo, hi] = (arg ?? '').split('-', 2).map((x) => num(x));
      if (hi! < lo!) throw new Error(`bad delay "${spec}": uniform:LO-HI needs LO <= HI`);
      return { spec, sample: (u) => lo! + u * (hi! - lo!) };
    }
    default:
      throw new Error(usage);
  }
}
