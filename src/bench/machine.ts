// What a benchmark ran on, and CPU time per process, so figures from different machines (and
// the share of the cores each side used) can be compared honestly.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  node: string;
  platform: string;
  memGiB: number;
  /** 1-minute load average when the benchmark started (other work on the machine skews results). */
  loadAvg1: number;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: os.availableParallelism?.() ?? cpus.length,
    cpuModel: (cpus[0]?.model ?? 'unknown').replace(/\s+/g, ' ').trim(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAvg1: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

// Linux reports per-process CPU time in clock ticks; USER_HZ is 100 on every mainstream kernel.
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) a process has used so far, read from /proc; undefined where /proc
 * is missing (not Linux) or the process is gone. Resolution is one tick (10 ms).
 */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces; everything after the last ')' is space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After comm: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return (utime + stime) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU seconds used by this process so far (microsecond resolution). */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU seconds so far of this process (the benchmark: the client) and of the server processes. */
export interface CpuSnapshot {
  client: number;
  /** Summed over `pids`; null when there are none or one cannot be read (gone, or no /proc). */
  servers: number | null;
}

export function cpuSnapshot(pids: readonly number[] | undefined): CpuSnapshot {
  let servers: number | null = pids !== undefined && pids.length > 0 ? 0 : null;
  for (const pid of pids ?? []) {
    const s = cpuSecondsOf(pid);
    if (s === undefined || servers === null) {
      servers = null;
      break;
    }
    servers += s;
  }
  return { client: ownCpuSeconds(), servers };
}

/**
 * CPU per operation between two snapshots, in µs: what the servers (a Nexus cluster's nodes, the
 * echo servers, etcd, Redis) and the benchmark process spent on each of `ops` operations. On a
 * machine the whole run keeps busy, this — not the client count — is what sets throughput.
 */
export interface CpuPerOp {
  servers: number | null;
  client: number;
}

export function cpuPerOp(a: CpuSnapshot, b: CpuSnapshot, ops: number): CpuPerOp | undefined {
  if (ops <= 0) return undefined;
  const us = (sec: number): number => Math.round((sec * 1e6) / ops);
  return { servers: a.servers === null || b.servers === null ? null : us(b.servers - a.servers), client: us(b.client - a.client) };
}

/**
 * CPU seconds the whole machine has been busy (all cores, everything but idle and iowait), read
 * from /proc/stat; undefined where /proc is missing. Compared with the benchmark's own processes it
 * shows how much other work competed for the cores during a phase.
 */
export function machineBusySeconds(): number | undefined {
  return machineCpuSeconds()?.busy;
}

/**
 * `machineBusySeconds` and, of it, the steal time: CPU seconds the hypervisor gave to other
 * guests while this machine's processes wanted to run (0 on bare metal). On a shared VM it is
 * part of why the same run measures differently from one hour to the next.
 */
export function machineCpuSeconds(): { busy: number; steal: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const [, ...fields] = line.trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
    const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
    if (!Number.isFinite(busy)) return undefined;
    return { busy: busy / TICKS_PER_SECOND, steal: (steal ?? 0) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/**
 * Waits until the machine has been nearly idle (at most `maxBusyCores` busy) over a `sampleMs`
 * window, or until `timeoutMs` passed. Returns the busy cores of the last window, so a caller can
 * warn that a phase started on a machine that was not quiet. Without /proc it returns at once.
 */
export async function waitForQuiet(maxBusyCores: number, timeoutMs: number, sampleMs = 500): Promise<{ busyCores: number; waitedMs: number } | undefined> {
  const t0 = performance.now();
  for (;;) {
    const a = machineBusySeconds();
    if (a === undefined) return undefined;
    await new Promise((r) => setTimeout(r, sampleMs));
    const b = machineBusySeconds();
    if (b === undefined) return undefined;
    const busyCores = (b - a) / (sampleMs / 1000);
    const waitedMs = performance.now() - t0;
    if (busyCores <= maxBusyCores || waitedMs >= timeoutMs) return { busyCores: Math.round(busyCores * 100) / 100, waitedMs: Math.round(waitedMs) };
  }
}

/**
 * The source the benchmark ran: HEAD's commit and whether src/ had uncommitted changes (dist/ is
 * built from the working tree, so a dirty src/ means figures of code that is in no commit).
 */
export function sourceVersion(root: string): { commit: string; srcDirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit, srcDirty: dirty.length > 0 };
  } catch {
    return { commit: 'unknown', srcDirty: null };
  }
}
