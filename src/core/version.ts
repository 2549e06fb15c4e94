// Causality tracking for one key: a dotted version vector set in its "object clock + dotted
// siblings" form (Almeida, Baquero et al. 2014; the layout of Riak's ORSWOT-style causal context).
//
// An object is (V, S): V is a version vector that covers every dot the object has seen; S holds the
// live siblings, each tagged with the one dot that created it (a value, or a tombstone for a delete).
// A dot (actor, counter) is covered by V when V[actor] >= counter.
//
// Why V[actor] >= counter may stand for "seen": an actor only issues a dot for a key while holding
// everything it has issued before for that key (coordinators are the key's replicas, their data is
// durable, and a node that may have lost data takes a new actor id). Counters come from a node-wide
// counter, so they are unique per actor and only grow: a new dot is never covered by an old vector,
// even after the key's tombstone has been collected. See docs/adr/002-version-vectors.md.

import { pack, unpack } from 'msgpackr';
import { createHash } from 'node:crypto';
import { ErrorCodes, NexusError } from './errors.js';

export type Actor = string;

/** actor -> highest counter seen. Plain object; encode through `canonical*` for stable bytes. */
export type VersionVector = Record<Actor, number>;

export interface Sibling {
  actor: Actor;
  counter: number;
  /** The value's bytes, or null for a tombstone (a delete). */
  value: Uint8Array | null;
}

export interface VersionedObject {
  vv: VersionVector;
  /** Sorted by (actor, counter); every sibling's dot is covered by `vv`. */
  siblings: Sibling[];
}

export function emptyObject(): VersionedObject {
  return { vv: {}, siblings: [] };
}

export function covers(vv: VersionVector, actor: Actor, counter: number): boolean {
  const seen = vv[actor];
  return seen !== undefined && seen >= counter;
}

// Vectors are plain objects built here or by decodeObject (no inherited enumerable keys), so
// for-in walks exactly their entries, without the arrays Object.entries makes: merges run on every
// replica write and every read, and a profile of loaded nodes showed those arrays.

export function joinVV(a: VersionVector, b: VersionVector): VersionVector {
  const out: VersionVector = { ...a };
  for (const actor in b) {
    const c = b[actor]!;
    const mine = out[actor];
    if (mine === undefined || c > mine) out[actor] = c;
  }
  return out;
}

/** True when `a` has seen everything `b` has (a >= b pointwise). */
export function descends(a: VersionVector, b: VersionVector): boolean {
  for (const actor in b) if (!covers(a, actor, b[actor]!)) return false;
  return true;
}

function compareSiblings(x: Sibling, y: Sibling): number {
  if (x.actor !== y.actor) return x.actor < y.actor ? -1 : 1;
  return x.counter - y.counter;
}

/**
 * Merges two replicas' states of one key (commutative, associative, idempotent). A sibling
 * survives if both sides hold it, or if the other side has not seen its dot; a sibling that the
 * other side has seen but no longer holds was superseded there, so it goes.
 */
export function merge(a: VersionedObject, b: VersionedObject): VersionedObject {
  if (a === b) return a; // idempotent; objects are never changed in place
  // Both sibling lists are sorted by dot, so one pass pairs them up (no sets of dot strings, no
  // sort): a dot on both sides stays once; a dot on one side stays unless the other has seen it.
  const as = sortedSiblings(a.siblings);
  const bs = sortedSiblings(b.siblings);
  const out: Sibling[] = [];
  let i = 0;
  let j = 0;
  while (i < as.length && j < bs.length) {
    const x = as[i]!;
    const y = bs[j]!;
    const c = compareSiblings(x, y);
    if (c === 0) {
      out.push(x);
      i++;
      j++;
    } else if (c < 0) {
      if (!covers(b.vv, x.actor, x.counter)) out.push(x);
      i++;
    } else {
      if (!covers(a.vv, y.actor, y.counter)) out.push(y);
      j++;
    }
  }
  for (; i < as.length; i++) if (!covers(b.vv, as[i]!.actor, as[i]!.counter)) out.push(as[i]!);
  for (; j < bs.length; j++) if (!covers(a.vv, bs[j]!.actor, bs[j]!.counter)) out.push(bs[j]!);
  return { vv: joinVV(a.vv, b.vv), siblings: out };
}

/** The siblings in dot order: as they are (every object made here is sorted), else a sorted copy. */
function sortedSiblings(siblings: Sibling[]): Sibling[] {
  for (let i = 1; i < siblings.length; i++) if (compareSiblings(siblings[i - 1]!, siblings[i]!) > 0) return [...siblings].sort(compareSiblings);
  return siblings;
}

/**
 * A coordinator's write: the new value (or tombstone) gets the fresh dot; every local sibling the
 * client's context has seen is superseded; siblings it has not seen stay. Without a context
 * (ctx = {}) the write supersedes nothing and becomes a sibling of what is there.
 */
export function update(
  local: VersionedObject,
  ctx: VersionVector,
  actor: Actor,
  counter: number,
  value: Uint8Array | null,
): VersionedObject {
  if (covers(local.vv, actor, counter) || covers(ctx, actor, counter)) {
    // A reused dot would make two different writes indistinguishable: refuse loudly.
    throw new NexusError(ErrorCodes.INTERNAL, `dot ${actor}:${counter} was already issued`);
  }
  const kept = local.siblings.filter((s) => !covers(ctx, s.actor, s.counter));
  const siblings = [...kept, { actor, counter, value }].sort(compareSiblings);
  const vv = joinVV(joinVV(local.vv, ctx), { [actor]: counter });
  return { vv, siblings };
}

/** How many siblings `update(local, ctx, …)` would leave, to enforce the sibling cap first. */
export function siblingsAfterUpdate(local: VersionedObject, ctx: VersionVector): number {
  let kept = 0;
  for (const s of local.siblings) if (!covers(ctx, s.actor, s.counter)) kept++;
  return kept + 1;
}

/** The live values (tombstones left out). */
export function liveValues(o: VersionedObject): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const s of o.siblings) if (s.value !== null) out.push(s.value);
  return out;
}

/** True when no sibling holds a value: the key reads as not found. */
export function isDeleted(o: VersionedObject): boolean {
  return o.siblings.every((s) => s.value === null);
}

/** Same causal state: equal vectors and the same sibling dots (a dot names one write, so one value). */
export function sameState(a: VersionedObject, b: VersionedObject): boolean {
  if (a.siblings.length !== b.siblings.length) return false;
  for (let i = 0; i < a.siblings.length; i++) {
    const x = a.siblings[i]!;
    const y = b.siblings[i]!;
    if (x.actor !== y.actor || x.counter !== y.counter) return false;
  }
  return descends(a.vv, b.vv) && descends(b.vv, a.vv);
}

function sortedPairs(vv: VersionVector): [Actor, number][] {
  return Object.entries(vv).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

/** Stable bytes for an object: equal states encode equally on every replica (hashing, storage). */
export function encodeObject(o: VersionedObject): Buffer {
  return pack([sortedPairs(o.vv), o.siblings.map((s) => [s.actor, s.counter, s.value])]);
}

export function decodeObject(bytes: Uint8Array): VersionedObject {
  let raw: unknown;
  try {
    raw = unpack(bytes);
  } catch (e) {
    throw new NexusError(ErrorCodes.BAD_FRAME, `object encoding is undecodable (${(e as Error).message.slice(0, 80)})`);
  }
  if (!Array.isArray(raw) || raw.length !== 2 || !Array.isArray(raw[0]) || !Array.isArray(raw[1]))
    throw new NexusError(ErrorCodes.BAD_FRAME, 'object encoding is malformed');
  const vv: VersionVector = {};
  for (const pair of raw[0] as unknown[]) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !isCounter(pair[1]))
      throw new NexusError(ErrorCodes.BAD_FRAME, 'object version vector is malformed');
    vv[pair[0]] = pair[1];
  }
  const siblings: Sibling[] = [];
  for (const s of raw[1] as unknown[]) {
    if (!Array.isArray(s) || typeof s[0] !== 'string' || !isCounter(s[1]) || !(s[2] === null || s[2] instanceof Uint8Array))
      throw new NexusError(ErrorCodes.BAD_FRAME, 'object sibling is malformed');
    if (!covers(vv, s[0], s[1])) throw new NexusError(ErrorCodes.BAD_FRAME, 'object sibling is not covered by its vector');
    siblings.push({ actor: s[0], counter: s[1], value: s[2] as Uint8Array | null });
  }
  siblings.sort(compareSiblings);
  return { vv, siblings };
}

/** 128-bit hash over the canonical encoding; equal states hash equally everywhere. */
export function objectHash(o: VersionedObject): Buffer {
  return createHash('sha256').update(encodeObject(o)).digest().subarray(0, 16);
}

function isCounter(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
}

// ---- The opaque causal context handed to clients ----

const CONTEXT_PREFIX = 'c1.';

export function encodeContext(vv: VersionVector): string {
  return CONTEXT_PREFIX + Buffer.from(pack(sortedPairs(vv))).toString('base64url');
}

/** Decodes a client's context; anything that is not one we made is refused as BAD_CONTEXT. */
export function decodeContext(text: string | undefined | null): VersionVector {
  if (text === undefined || text === null || text === '') return {};
  const bad = (): never => {
    throw new NexusError(ErrorCodes.BAD_CONTEXT, 'the causal context is not one this cluster issued (pass the context string from a get unchanged)');
  };
  if (typeof text !== 'string' || !text.startsWith(CONTEXT_PREFIX) || text.length > 1024 * 1024) bad();
  let raw: unknown;
  try {
    raw = unpack(Buffer.from(text.slice(CONTEXT_PREFIX.length), 'base64url'));
  } catch {
    bad();
  }
  if (!Array.isArray(raw)) bad();
  const vv: VersionVector = {};
  for (const pair of raw as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || !isCounter(pair[1])) bad();
    vv[(pair as [string, number])[0]] = (pair as [string, number])[1];
  }
  return vv;
}
