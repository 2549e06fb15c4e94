// The Merkle tree over one partition's segment hashes, built with `merkle-tools` (sha256) when an
// exchange needs it: the segment hashes are the durable state, the tree is a snapshot of them
// (~3 ms and a few thousand small buffers for 1024 leaves). A built tree is packed into one buffer
// and kept by `TreeCache` while its leaves still equal the partition's segment hashes, so a round
// over unchanged partitions compares 16 KiB per partition instead of rebuilding every tree.
//
// Only power-of-two leaf counts are supported. merkle-tools promotes an odd node to the next level
// unhashed (its `makeTree`), so for other counts the levels would not be a full binary tree and
// "the children of node j are 2j and 2j+1" would stop holding; with 2^k leaves every level is full.
//
// Levels are numbered from the root: level 0 holds the root, level `depth` holds the segment
// hashes (16 bytes each); inner nodes are sha256(left ‖ right), 32 bytes.

import MerkleTools from 'merkle-tools';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { SegmentHashes, validateSegments } from './segments.js';

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

  private constructor(levels: Buffer[][]) {
    this.depth = levels.length - 1;
    this.segments = levels[this.depth]!.length;
    this.offsets = [0];
    for (const level of levels) this.offsets.push(this.offsets[this.offsets.length - 1]! + level.length * (level[0]?.length ?? 0));
    this.packed = Buffer.allocUnsafe(this.offsets[levels.length]!);
    levels.forEach((level, l) => level.forEach((h, j) => h.copy(this.packed, this.offsets[l]! + j * h.length)));
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
    return new SegmentTree(levelsFromProofs(mt, leaves, root));
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
    const size = ((this.offsets[level + 1]! - this.offsets[level]!) / (1 << level)) | 0;
    const start = this.offsets[level]! + i * size;
    return this.packed.subarray(start, start + size);
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
    const tree = SegmentTree.build(hashes);
    this.trees.set(partition, tree);
    return tree;
  }
}

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
