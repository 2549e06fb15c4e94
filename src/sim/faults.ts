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

  private async episode(kind: Kind, until: () => boolean): Promise<void> {
    const k = this.cluster.ids.length;
    // At most a minority at once, so a majority of every preference list can stay up.
    const victims = this.sample(this.rnd.between(1, Math.max(1, Math.floor((k - 1) / 2))));
    const hold = this.rnd.between(1000, 3000);
    if (kind === 'crash') {
      for (const i of victims) {
        await this.cluster.signal(i, 'SIGKILL');
        this.down.add(i);
      }
      this.record('kill', victims);
      await this.sleep(hold, until);
      await this.restart(victims);
    } else if (kind === 'pause') {
      for (const i of victims) {
        await this.cluster.signal(i, 'SIGSTOP');
        this.paused.add(i);
      }
      this.record('pause', victims);
      await this.sleep(hold, until);
      await this.resume(victims);
    } else if (kind === 'partition') {
      const [shape, blocked] = this.partitionShape();
      await this.setFaults(blocked, 0);
      this.record('partition', [...blocked.keys()].filter((i) => blocked.get(i)!.length > 0), shape);
      await this.sleep(hold, until);
      await this.setFaults(new Map(), 0);
      this.record('heal', []);
    } else {
      const delay = this.rnd.between(20, 200);
      const blocked = new Map<number, string[]>();
      await this.setFaults(blocked, delay, victims);
      this.record('slow', victims, `${delay} ms added to every frame`);
      await this.sleep(hold, until);
      await this.setFaults(new Map(), 0);
      this.record('heal', []);
    }
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
