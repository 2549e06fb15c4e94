// A node's local replica of the keys it holds: reads and merges objects into local storage.
// It never talks to other nodes; the coordinator does that.

import { ErrorCodes, NexusError } from '../core/errors.js';
import {
  emptyObject,
  merge,
  sameState,
  siblingsAfterUpdate,
  update,
  type VersionVector,
  type VersionedObject,
} from '../core/version.js';
import type { EncodedState, Storage } from '../storage/types.js';
import type { NodeIdentity } from './identity.js';

export interface CoordinatedWrite {
  obj: VersionedObject;
  /** The new dot's counter (under `actor`). */
  actor: string;
  counter: number;
  /** Resolves once the new state is durable locally. */
  durable: Promise<void>;
}

export class Replica {
  constructor(
    private readonly storage: Storage,
    private readonly identity: NodeIdentity,
    private readonly maxSiblings: number,
    /**
     * A deliberately broken build, for proving the simulation's checker can fail: incoming
     * objects overwrite the local state instead of merging with it. Never set in production
     * (node.ts honours NEXUS_BREAK=no-merge only together with NEXUS_SIM_FAULTS=1).
     */
    private readonly breakMerge = false,
  ) {}

  /** The local state, or undefined when this replica has never stored the key. */
  read(key: string): VersionedObject | undefined {
    return this.storage.get(key);
  }

  /** `read`, with the state's encoding (undefined when the key was never stored). */
  readEncoded(key: string): EncodedState | undefined {
    return this.storage.getEncoded(key);
  }

  /**
   * Merges an object from another node into the local state and resolves once the result is
   * durable. Merging is idempotent, so a repeated delivery changes nothing.
   */
  async apply(key: string, partition: number, incoming: VersionedObject): Promise<void> {
    // A collected tombstone still counts: whatever it superseded merges into nothing new.
    const local = this.storage.get(key) ?? this.storage.reaped(key);
    if (local === undefined || this.breakMerge) return this.storage.put(key, partition, incoming);
    const merged = merge(local, incoming);
    if (sameState(merged, local)) return this.storage.flush(); // already held; make sure it is durable
    return this.storage.put(key, partition, merged);
  }

  /**
   * The coordinator's local step: issue a fresh dot, supersede what `ctx` has seen, stage the new
   * state. Synchronous up to the returned promise, so no other write to the key can interleave.
   */
  coordinate(key: string, partition: number, ctx: VersionVector, value: Uint8Array | null): CoordinatedWrite {
    // Over a collected tombstone, as over the tombstone itself: a write without its context
    // becomes a sibling of the delete, never hidden by it.
    const local = this.storage.get(key) ?? this.storage.reaped(key) ?? emptyObject();
    const count = siblingsAfterUpdate(local, ctx);
    if (count > this.maxSiblings)
      throw new NexusError(
        ErrorCodes.TOO_MANY_SIBLINGS,
        `key would hold ${count} siblings, more than the limit of ${this.maxSiblings}: read the key and write with its context to resolve them`,
      );
    const actor = this.identity.actor;
    const counter = this.identity.nextCounter();
    const obj = update(local, ctx, actor, counter, value);
    const durable = this.storage.put(key, partition, obj).catch((err: unknown) => {
      // Replicas may now hold a dot our own state lacks: never issue from this actor again.
      this.identity.renew(`local write failed: ${(err as Error).message}`);
      throw err;
    });
    return { obj, actor, counter, durable };
  }
}
