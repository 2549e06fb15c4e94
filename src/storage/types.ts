// The storage seam. One implementation keeps a node's data in SQLite; another keeps it in memory
// for unit tests and the deterministic simulation. Both pass test/contract/storage.test.ts.

import type { SegmentHashes } from '../antientropy/segments.js';
import type { VersionedObject } from '../core/version.js';

/** A key's state and its encoding (`encodeObject`); neither may be changed. */
export interface EncodedState {
  readonly obj: VersionedObject;
  readonly bytes: Buffer;
}

/** A key and what its state contributes to its segment hash (16 bytes). */
export type KeyHash = [key: string, hash: Buffer];

export interface Storage {
  /**
   * The key's current state, including writes staged by `put` whose commit has not finished yet
   * (so a read-merge-write on one key needs no lock: nothing awaits between get and put).
   * Returns undefined when the key has never been stored (not found is not an error).
   */
  get(key: string): VersionedObject | undefined;

  /** `get`'s state with its `encodeObject` bytes (undefined when none), reusing an encoding already made. */
  getEncoded(key: string): EncodedState | undefined;

  /**
   * Stages `obj` as the key's new state and resolves once it is durable. Writes staged in the same
   * tick are committed together in one transaction (group commit) before any of them resolves
   * (while an earlier commit is still in flight, writes of the following ticks join them too).
   * Rejects with NexusError STORAGE_FAILED (the message names the cause, e.g. disk full); then
   * the staged state is dropped and the previous one is visible again.
   */
  put(key: string, partition: number, obj: VersionedObject): Promise<void>;

  /** Keys holding at least one live (non-tombstone) sibling, staged writes included. O(1). */
  liveKeyCount(): number;

  /** Every stored key of one partition with its state, in key order (committed and staged). */
  scanPartition(partition: number): Array<[string, VersionedObject]>;

  /** Segments per partition for which hashes are kept (0 when turned off). */
  readonly segments: number;

  /**
   * The partition's segment hashes over the committed state, kept by every commit (and, on SQLite,
   * recoverable after a crash without a rescan). Callers must not change them.
   */
  segmentHashes(partition: number): SegmentHashes;

  /**
   * Rebuilds the segment hashes of the given partitions from the stored objects, compares them
   * with the kept ones and corrects (and persists) any that differ. Returns the partitions that
   * differed. O(data): for start-up or an idle node.
   */
  checkSegments(partitions: Iterable<number>): Promise<number[]>;

  /** (key, contribution) of every committed key in the given segments of a partition. */
  keyHashes(partition: number, segments: readonly number[]): KeyHash[];

  /**
   * Tombstones of a partition whose state was stored before `before` (ms since the epoch) and is
   * not being changed by a staged write; at most `limit`.
   */
  tombstones(partition: number, before: number, limit: number): Array<[string, VersionedObject]>;

  /**
   * Collects a tombstone: in one transaction the key's row goes and a reaped record of `expected`
   * takes its place, but only if the visible state is still exactly `expected`. Resolves true
   * once durable, false (doing nothing) when the state has changed.
   */
  collect(key: string, partition: number, expected: VersionedObject): Promise<boolean>;

  /**
   * The tombstone a collected key held, while its reaped record is kept; undefined otherwise
   * (never collected, written again since, or forgotten). Writes to the key merge against it.
   */
  reaped(key: string): VersionedObject | undefined;

  /** (key, contribution of its reaped tombstone) for the keys still reaped in some segments. */
  reapedHashes(partition: number, segments: readonly number[]): KeyHash[];

  /** Reaped records kept. */
  reapedCount(): number;

  /** Deletes reaped records made before `before` (ms since the epoch); resolves with the count. */
  forgetReaped(before: number): Promise<number>;

  /** A metadata value, or undefined when it was never set. */
  getMeta(name: string): string | undefined;

  /** Sets a metadata value durably (always fully synced, whatever the durability setting). */
  setMeta(name: string, value: string): void;

  /**
   * Calls `listener` on every change of a key's visible state, in order: when a put is staged
   * (before = the previous visible state), and when a failed batch reverts it. Listeners must be
   * cheap and must not call back into the storage.
   */
  onChange(listener: (key: string, partition: number, before: VersionedObject | undefined, after: VersionedObject | undefined) => void): void;

  /**
   * Counters for status and benchmarks: transactions committed and writes they carried; and
   * `degraded`, set while the store works around a fault of its own (said in status).
   */
  stats(): { commits: number; writes: number; degraded?: string };

  /** Resolves when everything staged so far is committed (or has failed). */
  flush(): Promise<void>;

  /** Commits what is staged, then closes. Further calls throw STOPPING. */
  close(): Promise<void>;
}

export interface SqliteStorageOptions {
  /** Folder for the database file (created if missing). The file is `<dir>/nexus.db`. */
  dir: string;
  /** 'fsync' = the WAL synced before each ack (survives power loss); 'os' = synchronous=NORMAL alone (survives a crash). */
  durability: 'fsync' | 'os';
  /** Optional cap on the database size in bytes (PRAGMA max_page_count); 0 or absent = none. */
  maxDataBytes?: number;
  /**
   * Segments per partition for the persisted segment hashes (default 1024). A file made with
   * another count is re-indexed at open. 0 keeps no hashes: only for measuring their cost.
   */
  segments?: number;
  /** Wall-clock ms since the epoch, for tombstone ages (default Date.now). */
  now?: () => number;
}

/** Bumped whenever the tables change shape; a node refuses to open a file with another version. */
export const SCHEMA_VERSION = 4;
