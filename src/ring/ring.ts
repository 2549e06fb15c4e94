// The ring: who owns each partition and, per partition, who replicates it. Built from the cluster
// settings alone, so every node with the same settings sees the same ring. Everything outside
// src/ring asks this class and never looks at ownership itself, so that moving membership to a
// versioned ring document later (agreed by Raft) stays a change inside this folder.

import type { ClusterSettings } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { claimOwners } from './claim.js';
import { partitionOf } from './hash.js';

/** One node of a preference list. Fallbacks stand in (with hints) for primaries that are down. */
export interface PrefEntry {
  readonly node: string;
  readonly role: 'primary' | 'fallback';
}

export class Ring {
  readonly partitions: number;
  readonly n: number;
  /** Member ids in settings (join) order. */
  readonly members: readonly string[];
  private readonly owners: readonly string[];
  private readonly owned = new Map<string, number>();
  // Preference lists are asked for on every request: the walk runs once per partition, and callers
  // get a copy (a few entries) so that nothing they do can corrupt the cache.
  private readonly prefCache: (readonly PrefEntry[] | undefined)[];
  private readonly primaryCache: (readonly string[] | undefined)[];

  /** Settings are assumed valid (validateClusterSettings runs before anything starts). */
  constructor(settings: ClusterSettings) {
    this.partitions = settings.partitions;
    this.n = settings.n;
    this.members = Object.freeze(settings.members.map((m) => m.id));
    this.owners = Object.freeze(claimOwners([...this.members], this.partitions, this.n));
    for (const id of this.members) this.owned.set(id, 0);
    for (const id of this.owners) this.owned.set(id, (this.owned.get(id) ?? 0) + 1);
    this.prefCache = new Array(this.partitions);
    this.primaryCache = new Array(this.partitions);
  }

  /** The partition a key falls in. */
  partitionOf(key: string): number {
    return partitionOf(key, this.partitions);
  }

  /** The node that claimed this partition: the head of its preference list. */
  owner(partition: number): string {
    return this.owners[this.check(partition)];
  }

  /** How many partitions the node owns; over all members these add up to Q. 0 for a non-member. */
  ownedCount(nodeId: string): number {
    return this.owned.get(nodeId) ?? 0;
  }

  /**
   * Every member once: the owners of partition p, p+1, … (wrapping), skipping nodes already chosen;
   * members that own no partition at all (only when Q < members) come last, in settings order. The
   * first N are primaries, the rest fallbacks in the order the sloppy quorum should try them.
   */
  preferenceList(partition: number): PrefEntry[] {
    return [...this.cachedPref(this.check(partition))];
  }

  /** The N nodes that hold this partition's replicas when every node is up. */
  primaries(partition: number): string[] {
    const p = this.check(partition);
    let list = this.primaryCache[p];
    if (!list) {
      list = Object.freeze(this.cachedPref(p).slice(0, this.n).map((e) => e.node));
      this.primaryCache[p] = list;
    }
    return [...list];
  }

  /** Partitions (ascending) for which the node is one of the N primaries; [] for a non-member. */
  partitionsReplicatedBy(nodeId: string): number[] {
    const result: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (this.primaries(p).includes(nodeId)) result.push(p);
    return result;
  }

  private cachedPref(p: number): readonly PrefEntry[] {
    const cached = this.prefCache[p];
    if (cached) return cached;
    const order: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < this.partitions && seen.size < this.members.length; i++) {
      const node = this.owners[(p + i) % this.partitions];
      if (seen.has(node)) continue;
      seen.add(node);
      order.push(node);
    }
    for (const node of this.members) if (!seen.has(node)) order.push(node);
    const list = Object.freeze(
      order.map((node, i): PrefEntry => Object.freeze({ node, role: i < this.n ? 'primary' : 'fallback' })),
    );
    this.prefCache[p] = list;
    return list;
  }

  private check(partition: number): number {
    if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions)
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `partition ${partition} is outside 0..${this.partitions - 1}`);
    return partition;
  }
}

/** A replica chosen for one request: a primary, or a fallback holding a hint for `hintFor`. */
export interface ReplicaChoice extends PrefEntry {
  /** For a fallback: the down primary it stands in for (the hint's intended owner). */
  readonly hintFor?: string;
}

/**
 * The sloppy-quorum choice (riak_core_apl): the up primaries, and for each down primary the next up
 * fallback in preference order, at most n entries. A fallback is placed where the primary it stands
 * in for was, and names that primary in `hintFor`. Fewer than n entries means too few nodes are up.
 * Pure: liveness comes from `isUp`.
 */
export function selectReplicas(pref: readonly PrefEntry[], n: number, isUp: (node: string) => boolean): ReplicaChoice[] {
  const fallbacks = pref.slice(n);
  const chosen: ReplicaChoice[] = [];
  let next = 0;
  for (const primary of pref.slice(0, n)) {
    if (isUp(primary.node)) {
      chosen.push(primary);
      continue;
    }
    while (next < fallbacks.length && !isUp(fallbacks[next].node)) next++;
    if (next < fallbacks.length) chosen.push({ ...fallbacks[next++], hintFor: primary.node });
  }
  return chosen;
}
