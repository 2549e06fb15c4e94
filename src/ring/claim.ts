// Partition claim: which member owns each partition. A pure function of (member list, Q, N), so every
// node computes the same ring from the same settings.
//
// Algorithm (iterative claim, in the spirit of riak_core_claim):
//   - The first member owns every partition.
//   - Each next member x (in list order, i.e. join order) steals floor(Q/S) partitions, one at a
//     time, always from a most-loaded owner. Stealing only ever hands partitions to x, so appending
//     a member moves nothing but what x takes (minimal movement), and because the victims were
//     balanced and x always robs the richest, everyone ends with floor(Q/S) or ceil(Q/S) partitions.
//   - Which partition to steal decides replica spread. A preference list is the owners of p, p+1, …
//     so the ideal is that every window of N consecutive partitions has N distinct owners: then the
//     primaries are exactly those owners and each node replicates N × its share. So x takes the
//     partition that most increases the number of distinct owners over the N windows containing it
//     ("gain"), from any of the most-loaded owners; ties go to the lowest partition index.
//   - Gains change only near a stolen partition, so they are kept per (owner, gain) in min-heaps of
//     partition indices with lazy deletion: about O(Q·log Q) per member instead of O(Q²), which
//     matters at Q = 65536 (~0.25 s for 10 members).

import { ErrorCodes, NexusError } from '../core/errors.js';

/** Owner id of each partition index. `memberIds` is in join order; the order changes the result. */
export function claimOwners(memberIds: string[], partitions: number, n: number): string[] {
  if (memberIds.length === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'claim needs at least one member');
  if (new Set(memberIds).size !== memberIds.length)
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `member ids must be distinct: ${memberIds.join(', ')}`);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `partitions must be a positive integer, got ${partitions}`);
  const window = Math.max(1, Math.floor(n)); // N only shapes the spread; N = 1 means "anywhere"
  const owners = new Array<number>(partitions).fill(0); // member index per partition
  const counts = [partitions];
  for (let x = 1; x < memberIds.length; x++) addMember(owners, counts, x, window);
  return owners.map((i) => memberIds[i]);
}

/** Member x steals floor(Q/S) partitions from the most-loaded owners (see the header comment). */
function addMember(owners: number[], counts: number[], x: number, n: number): void {
  const q = owners.length;
  const levels = 2 * n + 1; // a gain lies in [-n, n]
  const gain = new Array<number>(q);
  const heaps = new Map<number, MinHeap>(); // key: owner * levels + (gain + n)
  const push = (p: number) => {
    const key = owners[p] * levels + gain[p] + n;
    let heap = heaps.get(key);
    if (!heap) heaps.set(key, (heap = new MinHeap()));
    heap.push(p);
  };
  // The lowest partition still owned by `owner` with this gain; stale entries are dropped here.
  const top = (owner: number, level: number): number | undefined => {
    const heap = heaps.get(owner * levels + level);
    while (heap && heap.size > 0) {
      const p = heap.peek();
      if (owners[p] === owner && gain[p] + n === level) return p;
      heap.pop();
    }
    return undefined;
  };

  for (let p = 0; p < q; p++) {
    gain[p] = gainOf(owners, p, x, n);
    push(p);
  }
  counts[x] = 0;
  const target = Math.floor(q / (x + 1));
  while (counts[x] < target) {
    const most = Math.max(...counts.slice(0, x));
    const victims = counts.slice(0, x).flatMap((c, i) => (c === most ? [i] : []));
    let chosen: number | undefined;
    for (let level = levels - 1; level >= 0 && chosen === undefined; level--) {
      for (const v of victims) {
        const p = top(v, level);
        if (p !== undefined && (chosen === undefined || p < chosen)) chosen = p;
      }
    }
    // A most-loaded owner has at least one partition, and each partition sits in its own heap.
    if (chosen === undefined) throw new NexusError(ErrorCodes.INTERNAL, 'claim found no partition to steal');
    counts[owners[chosen]]--;
    counts[x]++;
    owners[chosen] = x;
    // Only partitions sharing a window with `chosen` (within n-1 of it) see their gain change.
    for (let d = -(n - 1); d <= n - 1; d++) {
      const p = mod(chosen + d, q);
      if (owners[p] === x) continue;
      const g = gainOf(owners, p, x, n);
      if (g !== gain[p]) {
        gain[p] = g;
        push(p);
      }
    }
  }
}

/**
 * Change in the number of distinct owners, summed over the n windows that contain p, if p went from
 * its owner v to x: a window gains x unless x is already in it, and loses v unless v is elsewhere in it.
 */
function gainOf(owners: number[], p: number, x: number, n: number): number {
  const q = owners.length;
  const v = owners[p];
  let total = 0;
  for (let start = p - n + 1; start <= p; start++) {
    let hasX = false;
    let hasV = false;
    for (let i = start; i < start + n; i++) {
      const r = mod(i, q);
      if (r === p) continue; // with Q < N a window can wrap onto p more than once
      if (owners[r] === x) hasX = true;
      else if (owners[r] === v) hasV = true;
    }
    total += (hasX ? 0 : 1) - (hasV ? 0 : 1);
  }
  return total;
}

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

/** A binary min-heap of numbers: just enough for "lowest partition index" queries. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number {
    return this.items[0];
  }

  push(value: number): void {
    const a = this.items;
    a.push(value);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }

  pop(): number | undefined {
    const a = this.items;
    const first = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return first;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < a.length && a[l] < a[min]) min = l;
      if (r < a.length && a[r] < a[min]) min = r;
      if (min === i) break;
      [a[min], a[i]] = [a[i], a[min]];
      i = min;
    }
    return first;
  }
}
