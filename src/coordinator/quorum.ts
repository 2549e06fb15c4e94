// Pure quorum counting for writes and reads (riak_kv's put_core/get_core): results go in, the core
// says when it has enough, what to answer and which replicas read repair must fix. No I/O, no
// timers, so it is unit-tested without a network.

import type { WireError } from '../core/errors.js';
import { emptyObject, encodeContext, isDeleted, liveValues, merge, sameState, type VersionedObject } from '../core/version.js';
import type { Replies } from '../transport/protocol.js';

export type Failure = { node: string; error: WireError };

/** Which answers count toward R/W: all of them (sloppy), or only primaries' (strict, Riak's PR/PW). */
export type Counts = (node: string) => boolean;
const everyone: Counts = () => true;

/**
 * What both cores share. Results are kept per node: a node that reports twice (or answers, then
 * fails) counts once, and the first report wins.
 */
abstract class QuorumCore<Result> {
  protected readonly results = new Map<string, Result>();
  private readonly failures = new Map<string, Failure>();

  constructor(
    /** R or W. */
    protected readonly needed: number,
    readonly replicas: readonly string[],
    private readonly counts: Counts = everyone,
  ) {}

  fail(node: string, error: WireError): void {
    if (!this.results.has(node) && !this.failures.has(node)) this.failures.set(node, { node, error });
  }

  protected record(node: string, result: Result): void {
    if (!this.failures.has(node) && !this.results.has(node)) this.results.set(node, result);
  }

  /** Results that count toward the quorum. */
  protected get counted(): number {
    let n = 0;
    for (const node of this.results.keys()) if (this.counts(node)) n++;
    return n;
  }

  succeeded(): boolean {
    return this.counted >= this.needed;
  }

  /** True once the answer is known: enough results, or so many failures that none can be enough. */
  decided(): boolean {
    if (this.succeeded()) return true;
    const open = this.replicas.filter((r) => this.counts(r) && !this.failures.has(r)).length;
    return open < this.needed;
  }

  /** Every replica has answered or failed: nothing more will arrive. */
  complete(): boolean {
    return this.results.size + this.failures.size >= this.replicas.length;
  }

  /** "quorum not met: …", naming what happened to each replica that gave no result. */
  protected failureText(what: string, label: 'R' | 'W', verb: string): string {
    const parts = [...this.failures.values()].map((f) => `${f.node}: ${f.error.message}`);
    for (const r of this.replicas) if (!this.results.has(r) && !this.failures.has(r)) parts.push(`${r}: no answer before the deadline`);
    return (
      `quorum not met: ${this.counted} of ${this.needed} required ${what} (${label}=${this.needed}, ${this.replicas.length} replicas ${verb}); ` +
      parts.join('; ')
    );
  }
}

export class PutQuorum extends QuorumCore<true> {
  ack(node: string): void {
    this.record(node, true);
  }

  /** Acks that count toward W. */
  get acks(): number {
    return this.counted;
  }

  /** The one-line reason a write failed. */
  failureMessage(): string {
    return this.failureText('acks', 'W', 'tried');
  }
}

export class GetQuorum extends QuorumCore<VersionedObject | undefined> {
  /** A replica's answer: its state, or undefined for "not found" (which counts toward R). */
  reply(node: string, obj: VersionedObject | undefined): void {
    this.record(node, obj);
  }

  /** Replies that count toward R. */
  get answers(): number {
    return this.counted;
  }

  /** Replies folded into `acc` so far (results are only ever appended, in arrival order). */
  private folded = 0;
  private acc: VersionedObject = emptyObject();

  /**
   * The merge of the replies so far: what the client gets, and what its context covers. Each
   * reply is merged in once: the answer at R replies and the read repair after the last one
   * both ask for it.
   */
  merged(): VersionedObject {
    let i = 0;
    for (const obj of this.results.values()) if (i++ >= this.folded && obj) this.acc = merge(this.acc, obj);
    this.folded = this.results.size;
    return this.acc;
  }

  /** Replicas whose reply differs from `final` (missing or stale): read repair sends them `final`. */
  stale(final: VersionedObject): string[] {
    if (final.siblings.length === 0 && Object.keys(final.vv).length === 0) return [];
    const out: string[] = [];
    for (const [node, obj] of this.results) if (!obj || !sameState(obj, final)) out.push(node);
    return out;
  }

  failureMessage(): string {
    return this.failureText('replies', 'R', 'asked');
  }
}

/**
 * A read's answer: the merged state's live values and a context covering exactly that state (so a
 * write with it never discards a sibling the reader did not see).
 */
export function answerOf(merged: VersionedObject): Replies['get'] {
  return { found: !isDeleted(merged), values: liveValues(merged), ctx: encodeContext(merged.vv), siblings: merged.siblings.length };
}

/** Byte equality: replicas in sync send the same encoding, so a reply equal to one already decoded is that state. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
