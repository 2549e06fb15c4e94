// The Merkle tree over one partition's segment hashes, made when an exchange needs it: the
// segment hashes are the durable state, the tree is a snapshot of them (a merkle-tools build,
// sha256, is ~3.7 ms and a few thousand small buffers for 1024 leaves). A tree is packed into one
// buffer and kept by `TreeCache` while its leaves still equal the partition's segment hashes, so a
// round over unchanged partitions compares 16 KiB per partition instead of making every tree again.
//
// Under steady writes every partition changes between exchanges, and building every tree again
// (~350 builds per round on 3 nodes) made a loaded cluster spend 33-39% more CPU per operation once
// exchanges began (ADR 007). So a changed partition's next tree is made from the kept one
// (`withLeaves`): a copy in which only the ancestors of changed leaves are hashed again, with the
// same sha256(left ‖ right) as merkle-tools (a test checks every level against its full build). A
// partition's first tree is made the same way from the all-zero tree, which merkle-tools builds once
// per segment count.
//
// Only power-of-two leaf counts are supported. merkle-tools promotes an odd node to the next level
// unhashed (its `makeTree`), so for other counts the levels would not be a full binary tree and
// "the children of node j are 2j and 2j+1" would stop holding; with 2^k leaves every level is full.
//
// Levels are numbered from the root: level 0 holds the root, level `depth` holds the segment
// hashes (16 bytes each); inner nodes are sha256(left ‖ right), 32 bytes.

import * as crypto from 'node:crypto';
import MerkleTools from 'merkle-tools';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { HASH_BYTES, SegmentHashes, validateSegments } from './segments.js';

/** Read access to one side's tree: what the compare needs, and what a responder serves. */
export interface SegmentView {
  /** Leaf count: a power of two, equal on both sides of an exchange. */
  readonly segments: number;
  /** log2(segments): the level of the leaves. */
  readonly depth: number;
  root(): Buffer;
  /** Hashes of nodes `indices` at `level`, in the order asked. Throws on an index out of range. */
  nodes(level: number, indices: readonly number[]): Buffer[];
}

export class SegmentTree implements SegmentView {
  readonly segments: number;
  readonly depth: number;
  /** Every level in one buffer, root first, leaves (HASH_BYTES each) last; inner nodes 32 bytes. */
  private readonly packed: Buffer;
  /** Where each level starts in `packed`, and one past the end. */
  private readonly offsets: number[];

  private constructor(depth: number, packed: Buffer, offsets: number[]) {
    this.depth = depth;
    this.segments = 1 << depth;
    this.packed = packed;
    this.offsets = offsets;
  }

  private static fromLevels(levels: Buffer[][]): SegmentTree {
    const offsets = [0];
    for (const level of levels) offsets.push(offsets[offsets.length - 1]! + level.length * (level[0]?.length ?? 0));
    const packed = Buffer.allocUnsafe(offsets[levels.length]!);
    levels.forEach((level, l) => level.forEach((h, j) => h.copy(packed, offsets[l]! + j * h.length)));
    return new SegmentTree(levels.length - 1, packed, offsets);
  }

  /** Builds the tree over a partition's segment hashes (copied: later writes do not leak in). */
  static build(hashes: SegmentHashes | readonly Buffer[]): SegmentTree {
    const leaves = hashes instanceof SegmentHashes ? hashes.toArray() : hashes.map((h) => Buffer.from(h));
    validateSegments(leaves.length);
    const mt = new MerkleTools({ hashType: 'sha256' });
    for (const leaf of leaves) mt.addLeaf(leaf); // already hashes: doHash off
    mt.makeTree();
    const root = mt.getMerkleRoot();
    if (root === null) throw new NexusError(ErrorCodes.INTERNAL, 'merkle-tools built no root');
    return SegmentTree.fromLevels(levelsFromProofs(mt, leaves, root));
  }

  /**
   * The tree over `hashes`, made from this one: the leaves that differ are copied in and only their
   * ancestors hashed again. This tree is left as it was (a snapshot handed out stays one).
   */
  withLeaves(hashes: SegmentHashes): SegmentTree {
    const leaves = hashes.bytes();
    if (hashes.segments !== this.segments) return SegmentTree.build(hashes);
    const packed = Buffer.from(this.packed);
    const leafStart = this.offsets[this.depth]!;
    let dirty: number[] = [];
    for (let j = 0, at = 0; j < this.segments; j++, at += HASH_BYTES) {
      // A plain loop: Buffer#compare over ranges costs ~1 µs a call, 1,000 times per tree.
      let k = 0;
      while (k < HASH_BYTES && packed[leafStart + at + k] === leaves[at + k]) k++;
      if (k === HASH_BYTES) continue;
      leaves.copy(packed, leafStart + at, at, at + HASH_BYTES);
      dirty.push(j);
    }
    for (let level = this.depth - 1; level >= 0 && dirty.length > 0; level--) {
      const childSize = this.size(level + 1);
      const parents: number[] = [];
      for (const j of dirty) if (parents[parents.length - 1] !== j >> 1) parents.push(j >> 1); // dirty is ascending
      for (const p of parents) {
        const children = this.offsets[level + 1]! + 2 * p * childSize;
        sha256(packed.subarray(children, children + 2 * childSize)).copy(packed, this.offsets[level]! + p * INNER_BYTES);
      }
      dirty = parents;
    }
    return new SegmentTree(this.depth, packed, this.offsets);
  }

  /** Whether this tree's leaves are exactly `hashes` (a different segment count never matches). */
  matches(hashes: SegmentHashes): boolean {
    return this.packed.subarray(this.offsets[this.depth]!).equals(hashes.bytes());
  }

  root(): Buffer {
    return this.node(0, 0);
  }

  /** The number of levels, root and leaves included (depth + 1). */
  get levelCount(): number {
    return this.depth + 1;
  }

  /** Every hash of level i (0 = root), as views into the tree: do not mutate them. */
  level(i: number): Buffer[] {
    this.checkLevel(i);
    return Array.from({ length: 1 << i }, (_, j) => this.node(i, j));
  }

  nodes(level: number, indices: readonly number[]): Buffer[] {
    this.checkLevel(level);
    return indices.map((i) => {
      if (!Number.isInteger(i) || i < 0 || i >= 1 << level) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `node ${i} is out of range at level ${level}`);
      return this.node(level, i);
    });
  }

  private node(level: number, i: number): Buffer {
    const size = this.size(level);
    const start = this.offsets[level]! + i * size;
    return this.packed.subarray(start, start + size);
  }

  /** Bytes per hash at `level`. */
  private size(level: number): number {
    return ((this.offsets[level + 1]! - this.offsets[level]!) / (1 << level)) | 0;
  }

  private checkLevel(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i > this.depth) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `level ${i} is out of range 0..${this.depth}`);
  }
}

/**
 * The last tree built per partition, reused while its leaves equal the partition's segment hashes.
 * A tree is immutable, so one handed out stays a consistent snapshot whatever is written later.
 * Memory: one packed tree per partition (48 KiB at 1024 segments).
 */
export class TreeCache {
  private readonly trees = new Map<number, SegmentTree>();
  builds = 0;

  tree(partition: number, hashes: SegmentHashes): SegmentTree {
    const cached = this.trees.get(partition);
    if (cached?.matches(hashes)) return cached;
    this.builds++;
    // Even a first tree starts from a kept one: the tree of all-zero leaves, built once.
    const tree = (cached ?? emptyTree(hashes.segments)).withLeaves(hashes);
    this.trees.set(partition, tree);
    return tree;
  }
}

/** merkle-tools' tree over `segments` all-zero leaves (an empty partition's), per segment count. */
const emptyTrees = new Map<number, SegmentTree>();
function emptyTree(segments: number): SegmentTree {
  let tree = emptyTrees.get(segments);
  if (tree === undefined) emptyTrees.set(segments, (tree = SegmentTree.build(new SegmentHashes(segments))));
  return tree;
}

/** Bytes of an inner node: a sha256. */
const INNER_BYTES = 32;

/**
 * sha256 in one call where Node has it (20.12+; a namespace import, so older versions still load
 * this module): a third of the cost of a Hash object per 64-byte input here.
 */
const sha256: (data: Buffer) => Buffer =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'buffer') : (data) => crypto.createHash('sha256').update(data).digest();

/**
 * merkle-tools keeps its inner levels private, but a leaf's proof lists the sibling of each node on
 * its path to the root. The proofs of the even leaves name every inner node at least once (leaf 2k
 * names node k^1 one level up, and so on), so they recover all levels through the public API.
 */
function levelsFromProofs(mt: MerkleTools, leaves: Buffer[], root: Buffer): Buffer[][] {
  const depth = Math.log2(leaves.length);
  const levels: Buffer[][] = [];
  for (let l = 0; l <= depth; l++) levels.push(new Array<Buffer>(1 << l));
  levels[0]![0] = root;
  levels[depth] = leaves;
  for (let leaf = 0; leaf < leaves.length; leaf += 2) {
    // Binary proof: a flat [position byte, sibling hash, …] from the leaves up (the package's
    // typings describe it as {left}/{right} objects, which is the hex form only).
    const proof = mt.getProof(leaf, true) as unknown as Buffer[] | null;
    if (proof === null || proof.length !== 2 * depth) throw new NexusError(ErrorCodes.INTERNAL, `merkle-tools gave no full proof for leaf ${leaf}`);
    for (let step = 1; step < depth; step++) {
      const index = leaf >> step; // this leaf's ancestor at level depth - step
      levels[depth - step]![index ^ 1] = proof[2 * step + 1]!;
    }
  }
  for (const level of levels) for (const h of level) if (h === undefined) throw new NexusError(ErrorCodes.INTERNAL, 'merkle tree level left incomplete');
  return levels;
}
