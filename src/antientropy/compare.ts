// The pure core of an exchange between two replicas of one partition, in three steps:
//   1. findDifferences: descend both Merkle trees from the root, asking the remote only for the
//      children of nodes that differ, down to the differing segments;
//   2. diffKeys: exchange the (key, key-object hash) lists of those segments only;
//   3. repairPlan: merge both sides' objects for the differing keys and say which side receives what.
// The remote replica is reached only through functions (riak's hashtree.erl takes a function to
// reach the other tree), so two in-memory stores can be compared in one process; the network
// binding supplies the same functions over a link. No I/O, timers or randomness here.
//
// Byte accounting counts the payload that would cross the wire either way: each node index and
// level number as 4 bytes, each hash at its length, each key as its UTF-8 bytes plus a 2-byte
// length. Framing (message headers, msgpack overhead) is the transport's and is not counted.

import { ErrorCodes, NexusError } from '../core/errors.js';
import { emptyObject, merge, sameState, type VersionedObject } from '../core/version.js';
import type { SegmentView } from './tree.js';

export type { SegmentView } from './tree.js';

/** The remote tree, as reachable over a link. Each call is one round trip. */
export interface RemoteSegments {
  /** The remote's segment count and root hash. */
  root(): Promise<{ segments: number; hash: Buffer }>;
  /** Hashes of nodes `indices` at `level` (0 = root), in the order asked. */
  nodes(level: number, indices: readonly number[]): Promise<Buffer[]>;
}

/** (key, keyObjectHash) pairs of one side, for the segments asked. */
export type KeyHashes = ReadonlyArray<readonly [string, Buffer]>;

export interface DifferenceResult {
  /** The differing segments, ascending. Empty when the roots match. */
  segments: number[];
  exchangedBytes: number;
  roundTrips: number;
}

export interface KeyDiff {
  /** Keys only the remote holds: fetch them. */
  missingHere: string[];
  /** Keys only we hold: send them. */
  missingThere: string[];
  /** Keys both hold with different objects: fetch, merge, write back where changed. */
  differing: string[];
  exchangedBytes: number;
  roundTrips: number;
}

export interface CompareOptions {
  /** Levels descended per round trip (default 1). Larger trades bytes for fewer round trips. */
  levelsPerRound?: number;
  /** Checked between round trips; the remote functions should honour it too. */
  signal?: AbortSignal;
}

/** Payload sizes used for accounting (see the header comment). */
export const INDEX_BYTES = 4;
export const KEY_LENGTH_BYTES = 2;

/** A local tree served as a RemoteSegments: the responder side of an exchange, and tests. */
export function serveSegments(view: SegmentView): RemoteSegments {
  return {
    root: async () => ({ segments: view.segments, hash: view.root() }),
    nodes: async (level, indices) => view.nodes(level, indices),
  };
}

/**
 * Finds the segments whose hashes differ between `local` and `remote`. Cost: one round trip when
 * the roots match; otherwise depth / levelsPerRound more, each carrying the children of the nodes
 * that differed one round earlier, so bytes grow with the differences, not with the data.
 */
export async function findDifferences(local: SegmentView, remote: RemoteSegments, opts: CompareOptions = {}): Promise<DifferenceResult> {
  const stride = opts.levelsPerRound ?? 1;
  if (!Number.isInteger(stride) || stride < 1)
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `levelsPerRound must be a positive integer, got ${stride}`);

  opts.signal?.throwIfAborted();
  const top = await remote.root();
  let bytes = INDEX_BYTES + top.hash.length; // the answer: segment count and root
  let roundTrips = 1;
  if (top.segments !== local.segments)
    throw new NexusError(ErrorCodes.INCOMPATIBLE, `segment counts differ: ${local.segments} here, ${top.segments} there`);
  if (top.hash.equals(local.root())) return { segments: [], exchangedBytes: bytes, roundTrips };

  let level = 0;
  let differing = [0];
  while (level < local.depth && differing.length > 0) {
    opts.signal?.throwIfAborted();
    const next = Math.min(level + stride, local.depth);
    const fanout = 1 << (next - level);
    const asked: number[] = [];
    for (const node of differing) for (let c = 0; c < fanout; c++) asked.push(node * fanout + c);

    const theirs = await remote.nodes(next, asked);
    roundTrips++;
    bytes += INDEX_BYTES + asked.length * INDEX_BYTES; // the request: level and indices
    if (theirs.length !== asked.length)
      throw new NexusError(ErrorCodes.BAD_FRAME, `asked for ${asked.length} hashes at level ${next}, got ${theirs.length}`);
    const ours = local.nodes(next, asked);
    differing = [];
    for (let i = 0; i < asked.length; i++) {
      bytes += theirs[i]!.length;
      if (!theirs[i]!.equals(ours[i]!)) differing.push(asked[i]!);
    }
    level = next;
  }
  // Roots that differ with no differing leaf would mean a corrupt tree; report nothing rather than guess.
  return { segments: level === local.depth ? differing : [], exchangedBytes: bytes, roundTrips };
}

/**
 * Compares the (key, hash) lists of the given segments. Only the remote's list crosses the wire
 * (we compare here); a responder that wants the diff too can be sent the result.
 */
export async function diffKeys(
  localKeys: (segments: readonly number[]) => KeyHashes | Promise<KeyHashes>,
  remoteKeys: (segments: readonly number[]) => Promise<KeyHashes>,
  segments: readonly number[],
): Promise<KeyDiff> {
  if (segments.length === 0) return { missingHere: [], missingThere: [], differing: [], exchangedBytes: 0, roundTrips: 0 };
  const [ours, theirs] = await Promise.all([localKeys(segments), remoteKeys(segments)]);
  let bytes = segments.length * INDEX_BYTES;

  const mine = new Map<string, Buffer>();
  for (const [key, hash] of ours) mine.set(key, hash);
  const missingHere: string[] = [];
  const differing: string[] = [];
  const seen = new Set<string>();
  for (const [key, hash] of theirs) {
    bytes += Buffer.byteLength(key, 'utf8') + KEY_LENGTH_BYTES + hash.length;
    seen.add(key);
    const h = mine.get(key);
    if (h === undefined) missingHere.push(key);
    else if (!h.equals(hash)) differing.push(key);
  }
  const missingThere = [...mine.keys()].filter((k) => !seen.has(k));
  return { missingHere: missingHere.sort(), missingThere: missingThere.sort(), differing: differing.sort(), exchangedBytes: bytes, roundTrips: 1 };
}

export interface RepairPlan {
  /** Merged objects to write locally (the local state differs or is absent). */
  toLocal: Array<[string, VersionedObject]>;
  /** Merged objects to send to the remote (its state differs or is absent). */
  toRemote: Array<[string, VersionedObject]>;
}

/**
 * For every key in either map, merges both sides' objects by their version vectors and says which
 * side must receive the merge: a side whose state already equals the merge receives nothing, so a
 * repaired pair stops differing and the next exchange repairs nothing. A key absent on one side
 * merges as an empty object. Tombstones are objects like any other: a tombstone whose vector covers
 * the other side's older value wins the merge, so a deleted key is never brought back; a delete
 * concurrent with a write leaves both as siblings. (A tombstone already collected on one side is
 * the caller's to filter out before planning, or it would be shipped back.)
 */
export function repairPlan(
  localObjs: ReadonlyMap<string, VersionedObject>,
  remoteObjs: ReadonlyMap<string, VersionedObject>,
): RepairPlan {
  const keys = [...new Set([...localObjs.keys(), ...remoteObjs.keys()])].sort();
  const plan: RepairPlan = { toLocal: [], toRemote: [] };
  for (const key of keys) {
    const here = localObjs.get(key);
    const there = remoteObjs.get(key);
    const merged = merge(here ?? emptyObject(), there ?? emptyObject());
    if (here === undefined || !sameState(here, merged)) plan.toLocal.push([key, merged]);
    if (there === undefined || !sameState(there, merged)) plan.toRemote.push([key, merged]);
  }
  return plan;
}
