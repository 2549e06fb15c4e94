// The hint store: writes a stand-in accepted for a down primary, kept durably until that primary
// acknowledges them. One hint per (target, key): a new write for the same key merges into it and
// bumps its version, so delivery can delete exactly what it delivered (by id and version) and never
// a newer write that arrived meanwhile.

import type { VersionedObject } from '../core/version.js';

export interface Hint {
  id: number;
  version: number;
  /** The primary this write belongs to. */
  target: string;
  key: string;
  partition: number;
  obj: VersionedObject;
  /** When the hint was first created (ms since the epoch). */
  createdAt: number;
}

export interface HintStore {
  /**
   * Merges `obj` into the hint for (target, key), creating it if absent, and resolves once durable
   * (group-committed like object writes). Rejects with STORAGE_FAILED when the disk refuses it.
   */
  addHint(target: string, key: string, partition: number, obj: VersionedObject, now: number): Promise<void>;

  /** Up to `limit` hints for `target`, oldest first. */
  hintsFor(target: string, limit: number): Hint[];

  /** The merge of every hint held for `key` (for any target), or undefined when none is held. */
  hintedState(key: string): VersionedObject | undefined;

  /** Deletes each hint that still has the given version; returns how many were deleted. */
  removeHints(done: ReadonlyArray<{ id: number; version: number }>): number;

  /** Pending hints per target (targets with none are absent). */
  pendingHints(): Map<string, number>;

  /** Up to `limit` hints created before `before`, oldest first (for the hint window). */
  hintsOlderThan(before: number, limit: number): Hint[];
}
