// The Merkle tree over one partition's segment hashes, built with `merkle-tools` (sha256) when an
// exchange needs it and thrown away afterwards: the segment hashes are the durable state, the tree
// is a snapshot (about a millisecond or two for 1024 leaves).
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
  /** levels[0] = [root] … levels[depth] = leaves. */
  private readonly levels: Buffer[][];

  private constructor(levels: Buffer[][]) {
    this.levels = levels;
    this.depth = levels.length - 1;
    this.segments = levels[this.depth]!.length;
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

  root(): Buffer {
    return this.levels[0]![0]!;
  }

  /** The number of levels, root and leaves included (depth + 1). */
  get levelCount(): number {
    return this.levels.length;
  }

  /** Every hash of level i (0 = root). The array is the tree's own: do not mutate it. */
  level(i: number): readonly Buffer[] {
    const level = this.levels[i];
    if (level === undefined) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `level ${i} is out of range 0..${this.depth}`);
    return level;
  }

  nodes(level: number, indices: readonly number[]): Buffer[] {
    const hashes = this.level(level);
    return indices.map((i) => {
      const h = hashes[i];
      if (h === undefined) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `node ${i} is out of range at level ${level}`);
      return h;
    });
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
