// Fault episodes on a real cluster: kill -9 and restart, SIGSTOP/SIGCONT pauses, network
// partitions (isolate one node, split in two, a ring of overlapping majorities) and slow links.
// Partitions and delay go through each node's fault layer (the `sim-fault` request, honoured only
// by nodes started with NEXUS_SIM_FAULTS=1). One episode at a time: apply, hold, heal, rest.
// Every choice comes from the run's seeded random source.

import { NexusClient } from '../client/client.js';
import type { LocalCluster } from './local-cluster.js';
import type { Random } from './random.js';

export type Scenario = 'crash' | 'pause' | 'partition' | 'mixed';
export const SCENARIOS: readonly Scenario[] = ['crash', 'pause', 'partition', 'mixed'];

export interface FaultEvent {
  /** Milliseconds since the run started. */
  at: number;
  action: 'kill' | 'restart' | 'pause' | 'resume' | 'partition' | 'heal' | 'slow';
  nodes: string[];
  detail?: string;
}

type Kind = 'crash' | 'pause' | 'partition' | 'slow';

/**
 * One episode of a schedule file (`nexus sim --schedule FILE`, a JSON array of these): at `at` ms
 * into the fault phase (or as soon as the previous episode ends), apply the fault for `holdMs`.
 *   {"at": 1000, "fault": "kill", "nodes": ["n2"], "holdMs": 2000}
 *   {"at": 5000, "fault": "pause", "nodes": ["n3", "n4"], "holdMs": 1500}
 *   {"at": 9000, "fault": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]], "holdMs": 3000}
 *   {"at": 14000, "fault": "slow", "nodes": ["n1"], "delayMs": 100, "holdMs": 2000}
 */
export interface ScheduledFault {
  at: number;
  fault: 'kill' | 'pause' | 'partition' | 'slow';
  holdMs: number;
  nodes?: string[];
  /** partition: nodes in different groups cannot reach each other. */
  groups?: string[][];
  /** slow: ms added to every frame the nodes send. */
  delayMs?: number;
}

/** Checks a parsed schedule file against the cluster's node ids; throws a message naming the problem. */
export function validateSchedule(x: unknown, ids: readonly string[]): ScheduledFault[] {
  const bad = (i: number, why: string): never => {
    throw new Error(`schedule entry ${i}: ${why}`);
  };
  if (!Array.isArray(x) || x.length === 0) throw new Error('a schedule is a non-empty JSON array of fault episodes');
  const known = new Set(ids);
  const nodeList = (i: number, v: unknown, what: string): string[] => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((n) => typeof n === 'string')) bad(i, `${what} must be a non-empty list of node ids`);
    for (const n of v as string[]) if (!known.has(n)) bad(i, `unknown node "${n}" (this cluster has ${ids.join(', ')})`);
    return v as string[];
  };
  return x.map((e: unknown, i) => {
    if (typeof e !== 'object' || e === null) bad(i, 'must be an object');
    const f = e as Record<string, unknown>;
    if (!(typeof f.at === 'number' && f.at >= 0)) bad(i, '"at" must be a number of ms >= 0');
    if (!(typeof f.holdMs === 'number' && f.holdMs >= 0)) bad(i, '"holdMs" must be a number of ms >= 0');
    const out: ScheduledFault = { at: f.at as number, fault: f.fault as ScheduledFault['fault'], holdMs: f.holdMs as number };
    if (f.fault === 'kill' || f.fault === 'pause' || f.fault === 'slow') out.nodes = nodeList(i, f.nodes, '"nodes"');
    else if (f.fault === 'partition') {
      if (!Array.isArray(f.groups) || f.groups.length < 2) bad(i, '"groups" must list at least two groups of node ids');
      out.groups = (f.groups as unknown[]).map((g) => nodeList(i, g, 'each group'));
    } else bad(i, `unknown fault ${JSON.stringify(f.fault)}: use kill, pause, partition or slow`);
    if (f.fault === 'slow') {
      if (!(typeof f.delayMs === 'number' && f.delayMs > 0)) bad(i, '"delayMs" must be a positive number of ms');
      out.delayMs = f.delayMs as number;
    }
    return out;
  }).sort((a, b) => a.at - b.at);
}

export class FaultInjector {
  readonly events: FaultEvent[] = [];
  private readonly down = new Set<number>();
  private readonly paused = new Set<number>();

  constructor(
    private readonly cluster: LocalCluster,
    private readonly rnd: Random,
    private readonly now: () => number,
  ) {}

  /** Runs episodes of `scenario` until `until()` says stop, then heals everything. */
  async run(scenario: Scenario, until: () => boolean): Promise<void> {
    try {
      while (!until()) {
        const kind: Kind = scenario === 'mixed' ? this.rnd.pick(['crash', 'pause', 'partition', 'slow'] as const) : scenario;
        await this.episode(kind, until);
        await this.sleep(this.rnd.between(300, 1000), until);
      }
    } finally {
      await this.healAll();
    }
  }

  /** Runs a schedule file's episodes in order (`start` = when the fault phase began), then heals. */
  async runSchedule(schedule: readonly ScheduledFault[], start: number): Promise<void> {
    const never = (): boolean => false;
    const index = (id: string): number => this.cluster.ids.indexOf(id);
    try {
      for (const e of schedule) {
        const wait = start + e.at - Date.now();
        if (wait > 0) await this.sleep(wait, never);
        const victims = (e.nodes ?? []).map(index);
        if (e.fault === 'kill') await this.crashFor(victims, e.holdMs, never);
        else if (e.fault === 'pause') await this.pauseFor(victims, e.holdMs, never);
        else if (e.fault === 'slow') await this.slowFor(victims, e.delayMs!, e.holdMs, never);
        else {
          const groupOf = new Map<string, number>();
          e.groups!.forEach((g, gi) => g.forEach((id) => groupOf.set(id, gi)));
          const blocked = new Map<number, string[]>();
          for (const [i, id] of this.cluster.ids.entries())
            blocked.set(i, this.cluster.ids.filter((other) => other !== id && groupOf.has(id) && groupOf.has(other) && groupOf.get(id) !== groupOf.get(other)));
          await this.partitionFor(blocked, e.groups!.map((g) => g.join(',')).join(' | '), e.holdMs, never);
        }
      }
    } finally {
      await this.healAll();
    }
  }

  private async episode(kind: Kind, until: () => boolean): Promise<void> {
    const k = this.cluster.ids.length;
    // At most a minority at once, so a majority of every preference list can stay up.
    const victims = this.sample(this.rnd.between(1, Math.max(1, Math.floor((k - 1) / 2))));
    const hold = this.rnd.between(1000, 3000);
    if (kind === 'crash') await this.crashFor(victims, hold, until);
    else if (kind === 'pause') await this.pauseFor(victims, hold, until);
    else if (kind === 'partition') {
      const [shape, blocked] = this.partitionShape();
      await this.partitionFor(blocked, shape, hold, until);
    } else await this.slowFor(victims, this.rnd.between(20, 200), hold, until);
  }

  /** kill -9 `victims`, hold, restart them on the same data. */
  private async crashFor(victims: number[], holdMs: number, until: () => boolean): Promise<void> {
    for (const i of victims) {
      await this.cluster.signal(i, 'SIGKILL');
      this.down.add(i);
    }
    this.record('kill', victims);
    await this.sleep(holdMs, until);
    await this.restart(victims);
  }

  /** SIGSTOP `victims`, hold, SIGCONT them. */
  private async pauseFor(victims: number[], holdMs: number, until: () => boolean): Promise<void> {
    for (const i of victims) {
      await this.cluster.signal(i, 'SIGSTOP');
      this.paused.add(i);
    }
    this.record('pause', victims);
    await this.sleep(holdMs, until);
    await this.resume(victims);
  }

  /** Cuts the links `blocked` names (per node, the peers it loses), hold, heal. */
  private async partitionFor(blocked: Map<number, string[]>, detail: string, holdMs: number, until: () => boolean): Promise<void> {
    await this.setFaults(blocked, 0);
    this.record('partition', [...blocked.keys()].filter((i) => blocked.get(i)!.length > 0), detail);
    await this.sleep(holdMs, until);
    await this.setFaults(new Map(), 0);
    this.record('heal', []);
  }

  /** Delays every frame `victims` send by `delayMs`, hold, back to normal. */
  private async slowFor(victims: number[], delayMs: number, holdMs: number, until: () => boolean): Promise<void> {
    await this.setFaults(new Map(), delayMs, victims);
    this.record('slow', victims, `${delayMs} ms added to every frame`);
    await this.sleep(holdMs, until);
    await this.setFaults(new Map(), 0);
    this.record('heal', []);
  }

  /** Picks one of the three partition shapes and says, per node, which peers it loses. */
  private partitionShape(): [string, Map<number, string[]>] {
    const ids = this.cluster.ids;
    const k = ids.length;
    const cut = new Map<number, Set<number>>(ids.map((_, i) => [i, new Set<number>()]));
    const sever = (a: number, b: number): void => {
      cut.get(a)!.add(b);
      cut.get(b)!.add(a);
    };
    const shape = this.rnd.pick(['isolate', 'halves', 'ring'] as const);
    if (shape === 'isolate') {
      const x = this.rnd.int(k);
      for (let i = 0; i < k; i++) if (i !== x) sever(x, i);
    } else if (shape === 'halves') {
      const order = this.sample(k);
      const left = new Set(order.slice(0, Math.floor(k / 2)));
      for (let a = 0; a < k; a++) for (let b = a + 1; b < k; b++) if (left.has(a) !== left.has(b)) sever(a, b);
    } else {
      // Each node keeps its ⌊k/2⌋ nearest neighbours on a ring: every node sees a majority, but
      // no two see the same one.
      const reach = Math.floor(k / 2) / 2;
      for (let a = 0; a < k; a++)
        for (let b = a + 1; b < k; b++) {
          const d = Math.min(b - a, k - (b - a));
          if (d > Math.ceil(reach)) sever(a, b);
        }
    }
    const blocked = new Map<number, string[]>();
    for (const [i, peers] of cut) blocked.set(i, [...peers].map((p) => ids[p]!));
    return [shape, blocked];
  }

  /** Sends each node its fault layer: the peers it loses, and (for `slowNodes`) the delay. */
  private async setFaults(blocked: Map<number, string[]>, delayMs: number, slowNodes: number[] = []): Promise<void> {
    await Promise.all(
      this.cluster.ids.map(async (_, i) => {
        if (this.down.has(i) || this.paused.has(i)) return;
        const c = new NexusClient({ nodes: [this.cluster.urls[i]!], timeoutMs: 3000 });
        try {
          await c.simFault(blocked.get(i) ?? [], slowNodes.includes(i) ? delayMs : 0);
        } catch {
          // A node that cannot be reached now keeps its last faults until the final heal.
        } finally {
          c.close();
        }
      }),
    );
  }

  private async restart(nodes: number[]): Promise<void> {
    for (const i of nodes) {
      this.cluster.restart(i);
      this.down.delete(i);
    }
    this.record('restart', nodes);
    await Promise.all(nodes.map((i) => this.cluster.waitServing(i, 60_000)));
  }

  private async resume(nodes: number[]): Promise<void> {
    for (const i of nodes) {
      await this.cluster.signal(i, 'SIGCONT');
      this.paused.delete(i);
    }
    this.record('resume', nodes);
  }

  /** Ends every fault: paused nodes resume, killed ones restart, partitions and delays go. */
  async healAll(): Promise<void> {
    if (this.paused.size > 0) await this.resume([...this.paused]);
    if (this.down.size > 0) await this.restart([...this.down]);
    await this.setFaults(new Map(), 0);
  }

  private sample(count: number): number[] {
    const pool = this.cluster.ids.map((_, i) => i);
    const out: number[] = [];
    while (out.length < count && pool.length > 0) out.push(pool.splice(this.rnd.int(pool.length), 1)[0]!);
    return out;
  }

  private record(action: FaultEvent['action'], nodes: number[], detail?: string): void {
    const e: FaultEvent = { at: Math.round(this.now()), action, nodes: nodes.map((i) => this.cluster.ids[i]!) };
    if (detail !== undefined) e.detail = detail;
    this.events.push(e);
  }

  /** Waits `ms`, but wakes early (within 100 ms) once `until()` says the fault phase is over. */
  private async sleep(ms: number, until: () => boolean): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end && !until()) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
  }
}
