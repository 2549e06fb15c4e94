// The storage seam. One implementation keeps a node's data in SQLite; another keeps it in memory
// for unit tests and the deterministic simulation. Both pass test/contract/storage.test.ts.

import type { VersionedObject } from '../core/version.js';

export interface Storage {
  /**
   * The key's current state, including writes staged by `put` whose commit has not finished yet
   * (so a read-merge-write on one key needs no lock: nothing awaits between get and put).
   * Returns undefined when the key has never been stored (not found is not an error).
   */
  get(key: string): VersionedObject | undefined;

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

  /** Counters for status and benchmarks: transactions committed and writes they carried. */
  stats(): { commits: number; writes: number };

  /** Resolves when everything staged so far is committed (or has failed). */
  flush(): Promise<void>;

  /** Commits what is staged, then closes. Further calls throw STOPPING. */
  close(): Promise<void>;
}

export interface SqliteStorageOptions {
  /** Folder for the database file (created if missing). The file is `<dir>/nexus.db`. */
  dir: string;
  /** 'fsync' = synchronous=FULL (survives power loss); 'os' = synchronous=NORMAL (survives a crash). */
  durability: 'fsync' | 'os';
  /** Optional cap on the database size in bytes (PRAGMA max_page_count); 0 or absent = none. */
  maxDataBytes?: number;
}

/** Bumped whenever the tables change shape; a node refuses to open a file with another version. */
export const SCHEMA_VERSION = 2;
