// A closed-loop load generator: C workers each keep exactly one request outstanding, issuing the
// next as soon as the previous one completes. It runs a warm-up (not recorded), then a measured
// window; latencies of requests completing inside the window go into an HdrHistogram in
// microseconds. Throughput is completions in the window divided by its measured length.

import { newHistogram } from './hdr.js';
import { cpuPerOp, cpuSnapshot, machineCpuSeconds, type CpuPerOp } from './machine.js';

export interface LoadOptions {
  /** Requests kept outstanding. */
  concurrency: number;
  /** Measured window. */
  durationMs: number;
  /** Unrecorded run-in before the window (connections, JIT, SQLite caches). */
  warmupMs: number;
  /** Server processes whose CPU time is reported for the window. */
  serverPids?: number[];
  /** Stop the phase early once errors reach this many (default 1000) — the system is broken. */
  maxErrors?: number;
  /** How long to wait for stragglers after the window before giving up on them (default 15 s). */
  drainMs?: number;
  /** Called when the measured window starts (after the warm-up), e.g. to restart a node then. */
  onMeasureStart?: () => void;
  /** Ends the window early when it settles (durationMs is then the longest window). */
  until?: Promise<unknown>;
  /**
   * Called for every request completed inside the window with its completion time
   * (performance.now(), ms) and latency (µs), e.g. to take percentiles over a sub-interval.
   */
  onOp?: (endMs: number, latencyUs: number) => void;
}

export interface LoadResult {
  concurrency: number;
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  throughput: number;
  latencyUs: { p50: number; p90: number; p95: number; p99: number; p999: number; max: number; mean: number };
  /**
   * CPU used in the window, in cores (1.0 = one core busy the whole window): by the load generator,
   * by the server processes, and by everything else on the machine (other work skews results);
   * `steal` is the part of `other` the hypervisor took for other guests.
   */
  cpu: { client: number; servers: number | null; other: number | null; steal: number | null };
  /** The same per operation completed in the window, µs (absent when none completed). */
  cpuPerOp?: CpuPerOp;
}

/** `op(i)` performs one request; i counts requests issued in this phase. It should reject on failure. */
export async function runClosedLoop(op: (i: number) => Promise<unknown>, o: LoadOptions): Promise<LoadResult> {
  const hist = newHistogram();
  const maxErrors = o.maxErrors ?? 1000;
  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  let issued = 0;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let tStart = 0;
  let tEnd = 0;
  const snap = (): CpuSnap => ({ ...cpuSnapshot(o.serverPids), machine: machineCpuSeconds() });
  let cpuStart: CpuSnap = { client: 0, servers: null, machine: undefined };
  let cpuEnd: CpuSnap = cpuStart;

  let stopEarly: (() => void) | undefined;
  const worker = async (): Promise<void> => {
    while (phase !== 'stop') {
      const t0 = performance.now();
      try {
        await op(issued++);
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? e.message : String(e);
        if (errors >= maxErrors) stopEarly?.();
        // A failing op may reject without touching the event loop; yield so timers still run.
        await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      const t1 = performance.now();
      if (phase === 'measure') {
        ops++;
        const us = Math.max(1, Math.round((t1 - t0) * 1000));
        hist.recordValue(us);
        o.onOp?.(t1, us);
      }
    }
  };

  const windowDone = new Promise<void>((resolve) => {
    const end = (): void => {
      if (phase === 'stop') return;
      if (phase === 'warmup') tStart = performance.now(); // stopped during warm-up: empty window
      phase = 'stop';
      tEnd = performance.now();
      cpuEnd = snap();
      clearTimeout(t1);
      clearTimeout(t2);
      resolve();
    };
    stopEarly = end;
    const t1 = setTimeout(() => {
      if (phase !== 'warmup') return;
      // Errors during warm-up do not count against the window.
      errors = 0;
      firstError = undefined;
      phase = 'measure';
      tStart = performance.now();
      cpuStart = snap();
      o.onMeasureStart?.();
      o.until?.then(end, end);
    }, o.warmupMs);
    const t2 = setTimeout(end, o.warmupMs + o.durationMs);
  });

  const workers = Array.from({ length: o.concurrency }, () => worker());
  await windowDone;
  // Let outstanding requests finish (not recorded) so the next phase starts from a quiet system.
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(workers),
    new Promise<void>((r) => {
      drainTimer = setTimeout(r, o.drainMs ?? 15_000);
    }),
  ]);
  clearTimeout(drainTimer);

  const seconds = Math.max(1e-9, (tEnd - tStart) / 1000);
  const pct = (p: number): number => (hist.totalCount === 0 ? 0 : hist.getValueAtPercentile(p));
  const result: LoadResult = {
    concurrency: o.concurrency,
    ops,
    errors,
    seconds: round(seconds, 3),
    throughput: Math.round(ops / seconds),
    latencyUs: {
      p50: pct(50),
      p90: pct(90),
      p95: pct(95),
      p99: pct(99),
      p999: pct(99.9),
      max: hist.totalCount === 0 ? 0 : hist.maxValue,
      mean: round(hist.totalCount === 0 ? 0 : hist.mean, 1),
    },
    cpu: cpuUse(cpuStart, cpuEnd, seconds),
  };
  const perOp = cpuPerOp(cpuStart, cpuEnd, ops);
  if (perOp !== undefined) result.cpuPerOp = perOp;
  if (firstError !== undefined) result.firstError = firstError;
  hist.destroy();
  return result;
}

/** CPU seconds so far: this process, the server processes, the whole machine (see machine.ts). */
type CpuSnap = { client: number; servers: number | null; machine: ReturnType<typeof machineCpuSeconds> };

function cpuUse(a: CpuSnap, b: CpuSnap, seconds: number): LoadResult['cpu'] {
  const client = (b.client - a.client) / seconds;
  const servers = a.servers === null || b.servers === null ? null : (b.servers - a.servers) / seconds;
  const machine = a.machine === undefined || b.machine === undefined ? undefined : (b.machine.busy - a.machine.busy) / seconds;
  const steal = a.machine === undefined || b.machine === undefined ? null : (b.machine.steal - a.machine.steal) / seconds;
  const other = machine === undefined || servers === null ? null : Math.max(0, machine - client - servers);
  const r2 = (x: number | null): number | null => (x === null ? null : round(x, 2));
  return { client: round(client, 2), servers: r2(servers), other: r2(other), steal: r2(steal) };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
