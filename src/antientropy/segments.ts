// Segment hashes: the leaves of a partition's anti-entropy tree, kept up to date on every write.
//
// Each key falls in one of `segments` segments. A segment's hash is the XOR, over the keys it
// holds, of H(key ‖ object) (`keyObjectHash`). XOR makes the hash independent of write order and lets a
// write update it from the old and new object alone: XOR out the old contribution, XOR in the new
// one. No rescan is ever needed, and a write that leaves an object's state unchanged (a merge with
// something older) XORs the same value out and in again: the segment does not move.
//
// Tombstones are objects like any other and contribute like values; only an absent key contributes
// nothing. Hashes are 128 bits, so a false match between replicas is out of reach in practice.
//
// Everything here is pure; storage decides where the hashes live (one blob, or one row per
// segment updated through `segmentDelta` in the write's own transaction).

// The one definition lives with the SQLite commit, which hashes every row it writes.
import { contribution } from '../storage/sqlite-commit.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeObject, type VersionedObject } from '../core/version.js';

/** Segments per partition unless configured otherwise. A power of two, as the tree requires. */
export const SEGMENTS_DEFAULT = 1024;

/** Bytes in a segment hash and in a key's contribution. */
export const HASH_BYTES = 16;

/** Upper bound on segments, to keep a partition's hashes small (2^20 × 16 B = 16 MiB). */
export const SEGMENTS_MAX = 1 << 20;

export function validateSegments(segments: number): void {
  if (!Number.isInteger(segments) || segments < 1 || segments > SEGMENTS_MAX || (segments & (segments - 1)) !== 0)
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `segments must be a power of two from 1 to ${SEGMENTS_MAX}, got ${segments}`);
}

/**
 * The segment (0..segments-1) a key falls in: FNV-1a over the key's UTF-16 code units, then
 * murmur3's finaliser so every output bit depends on every input bit. Not the ring's md5: keys of
 * one partition share their md5 prefix, so reusing it would pile them into few segments. Not a
 * cryptographic hash either: it runs on every write, and a crafted key can at worst crowd one
 * segment (making exchanges of it list more keys), never break correctness.
 */
export function segmentOf(key: string, segments: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % segments; // exact for a power of two ≤ 2^32: the low bits
}

/**
 * What `key` holding `obj` contributes to its segment, and the hash exchanged per key:
 * H(len(key) ‖ key ‖ canonical encoding of obj), sha256 cut to 128 bits. One hash over the
 * encoding rather than a hash of the object's hash: it runs on every write, in the SQLite commit
 * (`contribution` in sqlite-commit.ts, which this calls).
 */
export function keyObjectHash(key: string, obj: VersionedObject): Buffer {
  return keyEncodedHash(key, encodeObject(obj));
}

/** `keyObjectHash` from the object's `encodeObject` bytes (the same function as the SQLite commit's). */
export function keyEncodedHash(key: string, encoded: Uint8Array): Buffer {
  return contribution(key, encoded);
}

/** a ^= b, in place, over HASH_BYTES. */
export function xorInto(a: Buffer, b: Uint8Array): void {
  for (let i = 0; i < HASH_BYTES; i++) a[i] = a[i]! ^ b[i]!;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The change a write makes to its segment: XOR `delta` into segment `segment`. Null when the
 * write leaves the segment as it was (same state before and after, or absent both times).
 */
export function segmentDelta(
  key: string,
  oldObj: VersionedObject | undefined,
  newObj: VersionedObject | undefined,
  segments: number,
): { segment: number; delta: Buffer } | null {
  const delta = Buffer.alloc(HASH_BYTES);
  if (oldObj !== undefined) xorInto(delta, keyObjectHash(key, oldObj));
  if (newObj !== undefined) xorInto(delta, keyObjectHash(key, newObj));
  if (isZero(delta)) return null;
  return { segment: segmentOf(key, segments), delta };
}

/** One partition's segment hashes, held in one buffer of segments × HASH_BYTES (all zero = empty). */
export class SegmentHashes {
  readonly segments: number;
  private readonly buf: Buffer;

  constructor(segments: number = SEGMENTS_DEFAULT, buf?: Buffer) {
    validateSegments(segments);
    if (buf !== undefined && buf.length !== segments * HASH_BYTES)
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${segments} segments need ${segments * HASH_BYTES} bytes, got ${buf.length}`);
    this.segments = segments;
    this.buf = buf ?? Buffer.alloc(segments * HASH_BYTES);
  }

  /**
   * Records that `key` went from `oldObj` to `newObj` (undefined = absent). Callers pass exactly
   * what was stored before the write, or the hashes drift; `rebuild` is the check for that.
   * Returns the segment that changed, or -1 when none did.
   */
  apply(key: string, oldObj: VersionedObject | undefined, newObj: VersionedObject | undefined): number {
    const d = segmentDelta(key, oldObj, newObj, this.segments);
    if (d === null) return -1;
    this.xorSegment(d.segment, d.delta);
    return d.segment;
  }

  /** XORs a delta (from `segmentDelta`) into one segment. */
  xorSegment(segment: number, delta: Uint8Array): void {
    this.checkIndex(segment);
    const off = segment * HASH_BYTES;
    for (let i = 0; i < HASH_BYTES; i++) this.buf[off + i] = this.buf[off + i]! ^ delta[i]!;
  }

  /**
   * Sets segment i's hash to the 16 bytes of `src` at `offset`. A byte loop, not a subarray and
   * TypedArray set: this runs for every segment every commit changes, and those cost an object
   * and a call into the runtime each.
   */
  setSegmentFrom(i: number, src: Uint8Array, offset: number): void {
    this.checkIndex(i);
    if (offset < 0 || offset + HASH_BYTES > src.length) throw new RangeError(`no ${HASH_BYTES}-byte hash at offset ${offset} of ${src.length} bytes`);
    const off = i * HASH_BYTES;
    for (let j = 0; j < HASH_BYTES; j++) this.buf[off + j] = src[offset + j]!;
  }

  /**
   * The live bytes (segments × 16), not a copy: for the SQLite committer, which keeps them equal to
   * the committed rows in place (src/storage/sqlite-commit.ts). Anyone else: use the methods.
   */
  bytes(): Buffer {
    return this.buf;
  }

  /** A copy of segment i's hash. */
  get(i: number): Buffer {
    this.checkIndex(i);
    return Buffer.from(this.buf.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
  }

  /** Copies of every segment hash, in segment order: the tree's leaves. */
  toArray(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < this.segments; i++) out.push(this.get(i));
    return out;
  }

  equals(other: SegmentHashes): boolean {
    return this.segments === other.segments && this.buf.equals(other.buf);
  }

  /** The segments whose hashes differ from `other`'s (a local check; exchanges use the tree). */
  differingSegments(other: SegmentHashes): number[] {
    if (other.segments !== this.segments)
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `segment counts differ: ${this.segments} vs ${other.segments}`);
    const out: number[] = [];
    for (let i = 0; i < this.segments; i++) {
      const off = i * HASH_BYTES;
      if (this.buf.compare(other.buf, off, off + HASH_BYTES, off, off + HASH_BYTES) !== 0) out.push(i);
    }
    return out;
  }

  /** From scratch over every (key, object) of a partition: the startup / repair-command check. */
  static rebuild(entries: Iterable<readonly [string, VersionedObject]>, segments: number = SEGMENTS_DEFAULT): SegmentHashes {
    const hashes = new SegmentHashes(segments);
    for (const [key, obj] of entries) hashes.apply(key, undefined, obj);
    return hashes;
  }

  /** Storage form: a version byte, then the raw hashes (the segment count follows from the length). */
  toBuffer(): Buffer {
    return Buffer.concat([Buffer.from([FORMAT_VERSION]), this.buf]);
  }

  static fromBuffer(bytes: Uint8Array): SegmentHashes {
    const body = bytes.length - 1;
    if (bytes[0] !== FORMAT_VERSION || body <= 0 || body % HASH_BYTES !== 0)
      throw new NexusError(ErrorCodes.BAD_FRAME, `segment hashes are malformed (${bytes.length} bytes)`);
    // Copy: the hashes are mutated in place and must not alias the caller's buffer.
    return new SegmentHashes(body / HASH_BYTES, Buffer.from(bytes.subarray(1)));
  }

  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.segments)
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `segment ${i} is out of range 0..${this.segments - 1}`);
  }
}

const FORMAT_VERSION = 1;
