// The checker: from a history of operations and every replica's final state, decides whether the
// cluster kept its promises. Pure — no I/O — so it is unit-tested on hand-made histories, and the
// same code judges real runs and deterministic ones.
//
// Writes carry unique values, so a value names its write. A write W' supersedes a value v when
// W's context covered v (it read v first: read-modify-write, delete). What may have happened
// counts: an acknowledged write surely happened; a failed or timed-out one may have landed on some
// replica and spread from there, so it may supersede, but is never required to be present.
//
//   lost         an acknowledged value is in no replica's final state, and no write that may have
//                happened covered it;
//   resurrected  a value covered by an acknowledged write is still in some replica's final state
//                (a delete or overwrite was undone);
//   converged    every replica of a key holds the same sibling values;
//   stale read   a read missed a value acknowledged before the read began, and no write that may
//                have happened before the read ended covered it. Checked as an invariant when every
//                read and write used strict quorums with R + W > N; otherwise reported as a rate.

import type { Op, ReplicaState } from './history.js';

export interface CheckInput {
  history: readonly Op[];
  /** Final state per node (only keys the node stores). */
  finals: ReadonlyMap<string, ReplicaState>;
  /** The nodes that must hold a key (its primaries). */
  replicasOf: (key: string) => readonly string[];
  n: number;
}

export interface PhaseFigures {
  ops: number;
  ok: number;
  availability: number;
  latencyMs: { p50: number; p99: number; max: number };
}

export interface Verdict {
  ok: boolean;
  operations: number;
  acknowledgedWrites: number;
  lostWrites: number;
  lost: Array<{ key: string; value: string; op: number }>;
  resurrected: Array<{ key: string; value: string; coveredBy: number }>;
  converged: boolean;
  divergentKeys: string[];
  /** Reads checked for staleness, and how many were stale. */
  reads: number;
  staleReads: number;
  /** True when staleness is an invariant of this history (strict, R + W > N throughout). */
  staleReadsForbidden: boolean;
  siblings: { max: number; keysWithSiblings: number };
  phases: Record<string, PhaseFigures>;
}

const LIST_LIMIT = 20;

export function check(input: CheckInput): Verdict {
  const { history } = input;
  const writes = history.filter((o) => o.kind !== 'read');
  // value → the ops whose context covered it.
  const coveredBy = new Map<string, Op[]>();
  for (const o of writes) for (const v of o.covers ?? []) (coveredBy.get(v) ?? coveredBy.set(v, []).get(v)!).push(o);

  // Every key any op touched, with each replica's final values.
  const keys = [...new Set(history.map((o) => o.key))].sort();
  const present = new Map<string, Set<string>>();
  const divergentKeys: string[] = [];
  let maxSiblings = 0;
  let keysWithSiblings = 0;
  for (const key of keys) {
    const union = new Set<string>();
    let first: string | undefined;
    let same = true;
    for (const node of input.replicasOf(key)) {
      const values = [...(input.finals.get(node)?.get(key) ?? [])].sort();
      for (const v of values) union.add(v);
      const sig = JSON.stringify(values);
      if (first === undefined) first = sig;
      else if (sig !== first) same = false;
      maxSiblings = Math.max(maxSiblings, values.length);
    }
    if (!same) divergentKeys.push(key);
    if (union.size > 1) keysWithSiblings++;
    present.set(key, union);
  }

  const lost: Verdict['lost'] = [];
  let acknowledged = 0;
  for (const o of writes) {
    if (o.value === undefined || o.result !== 'ok') continue;
    acknowledged++;
    if (present.get(o.key)?.has(o.value)) continue;
    if ((coveredBy.get(o.value) ?? []).length > 0) continue; // superseded by a write that may have happened
    lost.push({ key: o.key, value: o.value, op: o.id });
  }

  const resurrected: Verdict['resurrected'] = [];
  for (const [key, values] of present) {
    for (const v of values) {
      const killer = (coveredBy.get(v) ?? []).find((o) => o.result === 'ok');
      if (killer) resurrected.push({ key, value: v, coveredBy: killer.id });
    }
  }

  // Staleness: a read must see every value acknowledged before it began, unless a write that may
  // have happened before the read ended covered it. Per key, acknowledged writes sorted by end and
  // a max-tree over "earliest start of an op covering it" find, for each read, just the writes
  // that were acknowledged before it and still uncovered when it ended — few at any moment — so a
  // long history is checked in O(reads · log writes) rather than O(reads · writes).
  const firstCover = (v: string): number => {
    let t = Infinity;
    for (const c of coveredBy.get(v) ?? []) t = Math.min(t, c.start);
    return t;
  };
  const byKey = new Map<string, Op[]>();
  for (const o of writes) if (o.result === 'ok' && o.value !== undefined) (byKey.get(o.key) ?? byKey.set(o.key, []).get(o.key)!).push(o);
  const index = new Map<string, { ends: number[]; values: string[]; tree: MaxTree }>();
  for (const [key, ws] of byKey) {
    ws.sort((a, b) => a.end - b.end);
    index.set(key, { ends: ws.map((w) => w.end), values: ws.map((w) => w.value!), tree: new MaxTree(ws.map((w) => firstCover(w.value!))) });
  }
  let reads = 0;
  let stale = 0;
  for (const r of history) {
    if (r.kind !== 'read' || r.result !== 'ok') continue;
    reads++;
    const ix = index.get(r.key);
    if (ix === undefined) continue;
    const seen = new Set(r.seen ?? []);
    const upto = lowerBound(ix.ends, r.start); // writes [0, upto) ended before the read began
    if (ix.tree.some(upto, r.end, (i) => !seen.has(ix.values[i]!))) stale++;
  }
  const staleReadsForbidden =
    history.length > 0 &&
    history.every((o) => o.strict === true) &&
    history.every((o) => (o.kind === 'read' ? (o.r ?? 0) : (o.w ?? 0)) > 0) &&
    minQuorum(history, 'r') + minQuorum(history, 'w') > input.n;

  const phases: Record<string, PhaseFigures> = {};
  for (const phase of [...new Set(history.map((o) => o.phase))]) {
    const ops = history.filter((o) => o.phase === phase);
    const ok = ops.filter((o) => o.result === 'ok');
    const lat = ok.map((o) => o.end - o.start).sort((a, b) => a - b);
    phases[phase] = {
      ops: ops.length,
      ok: ok.length,
      availability: ops.length === 0 ? 1 : round(ok.length / ops.length, 4),
      latencyMs: { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.length ? lat[lat.length - 1]! : 0 },
    };
  }

  const converged = divergentKeys.length === 0;
  return {
    ok: lost.length === 0 && resurrected.length === 0 && converged && !(staleReadsForbidden && stale > 0),
    operations: history.length,
    acknowledgedWrites: acknowledged,
    lostWrites: lost.length,
    lost: lost.slice(0, LIST_LIMIT),
    resurrected: resurrected.slice(0, LIST_LIMIT),
    converged,
    divergentKeys: divergentKeys.slice(0, LIST_LIMIT),
    reads,
    staleReads: stale,
    staleReadsForbidden,
    siblings: { max: maxSiblings, keysWithSiblings },
    phases,
  };
}

function minQuorum(history: readonly Op[], which: 'r' | 'w'): number {
  const xs = history.filter((o) => (which === 'r' ? o.kind === 'read' : o.kind !== 'read')).map((o) => (which === 'r' ? o.r : o.w) ?? 0);
  return xs.length === 0 ? Infinity : Math.min(...xs);
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** First index whose value is >= x in an ascending array. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A max segment tree: visits the indices below `upto` whose value is >= `min`, pruning the rest. */
class MaxTree {
  private readonly size: number;
  private readonly t: number[];

  constructor(values: readonly number[]) {
    let size = 1;
    while (size < values.length) size *= 2;
    this.size = size;
    this.t = new Array<number>(2 * size).fill(-Infinity);
    values.forEach((v, i) => (this.t[size + i] = v));
    for (let i = size - 1; i > 0; i--) this.t[i] = Math.max(this.t[2 * i]!, this.t[2 * i + 1]!);
  }

  /** True if some index i < upto with value >= min satisfies `pred`. */
  some(upto: number, min: number, pred: (i: number) => boolean): boolean {
    const visit = (node: number, lo: number, hi: number): boolean => {
      if (lo >= upto || this.t[node]! < min) return false;
      if (node >= this.size) return pred(node - this.size);
      const mid = (lo + hi) >> 1;
      return visit(2 * node, lo, mid) || visit(2 * node + 1, mid, hi);
    };
    return visit(1, 0, this.size);
  }
}
