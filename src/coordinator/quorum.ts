// Pure quorum counting for writes and reads (riak_kv's put_core/get_core): results go in, the core
// says when it has enough, what to answer and which replicas read repair must fix. No I/O, no
// timers, so it is unit-tested without a network.

import type { WireError } from '../core/errors.js';
import { emptyObject, merge, sameState, type VersionedObject } from '../core/version.js';

export type Failure = { node: string; error: WireError };

function describeFailures(failures: Failure[], missing: string[]): string {
  const parts = failures.map((f) => `${f.node}: ${f.error.message}`);
  for (const m of missing) parts.push(`${m}: no answer before the deadline`);
  return parts.join('; ');
}

/** Which answers count toward R/W: all of them (sloppy), or only primaries' (strict, Riak's PR/PW). */
export type Counts = (node: string) => boolean;
const everyone: Counts = () => true;

// Results are kept per node: a node that reports twice (or acks, then fails) counts once, first wins.
export class PutQuorum {
  private readonly acked = new Set<string>();
  private readonly failures = new Map<string, Failure>();

  constructor(
    readonly w: number,
    readonly replicas: readonly string[],
    private readonly counts: Counts = everyone,
  ) {}

  ack(node: string): void {
    if (!this.failures.has(node)) this.acked.add(node);
  }

  fail(node: string, error: WireError): void {
    if (!this.acked.has(node) && !this.failures.has(node)) this.failures.set(node, { node, error });
  }

  private get failed(): Failure[] {
    return [...this.failures.values()];
  }

  /** Acks that count toward W. */
  get acks(): number {
    let n = 0;
    for (const node of this.acked) if (this.counts(node)) n++;
    return n;
  }

  succeeded(): boolean {
    return this.acks >= this.w;
  }

  /** True once the answer is known: W acks, or so many failures that W can no longer be reached. */
  decided(): boolean {
    if (this.succeeded()) return true;
    const open = this.replicas.filter((r) => this.counts(r) && !this.failures.has(r)).length;
    return open < this.w;
  }

  /** Every replica has acked or failed: nothing more will arrive. */
  complete(): boolean {
    return this.acked.size + this.failed.length >= this.replicas.length;
  }

  /** The one-line reason a write failed, naming what happened to each replica that did not ack. */
  failureMessage(): string {
    const answered = new Set([...this.acked, ...this.failed.map((f) => f.node)]);
    const missing = this.replicas.filter((r) => !answered.has(r));
    return (
      `quorum not met: ${this.acks} of ${this.w} required acks (W=${this.w}, ${this.replicas.length} replicas tried); ` +
      describeFailures(this.failed, missing)
    );
  }
}

export class GetQuorum {
  private readonly replies = new Map<string, VersionedObject | undefined>();
  private readonly failures = new Map<string, Failure>();

  constructor(
    readonly r: number,
    readonly replicas: readonly string[],
    private readonly counts: Counts = everyone,
  ) {}

  /** A replica's answer: its state, or undefined for "not found" (which counts toward R). */
  reply(node: string, obj: VersionedObject | undefined): void {
    if (!this.failures.has(node) && !this.replies.has(node)) this.replies.set(node, obj);
  }

  fail(node: string, error: WireError): void {
    if (!this.replies.has(node) && !this.failures.has(node)) this.failures.set(node, { node, error });
  }

  private get failed(): Failure[] {
    return [...this.failures.values()];
  }

  /** Replies that count toward R. */
  get answers(): number {
    let n = 0;
    for (const node of this.replies.keys()) if (this.counts(node)) n++;
    return n;
  }

  succeeded(): boolean {
    return this.answers >= this.r;
  }

  decided(): boolean {
    if (this.succeeded()) return true;
    const open = this.replicas.filter((r) => this.counts(r) && !this.failures.has(r)).length;
    return open < this.r;
  }

  /** Every replica has answered or failed: nothing more will arrive. */
  complete(): boolean {
    return this.replies.size + this.failed.length >= this.replicas.length;
  }

  /** The merge of the replies so far: what the client gets, and what its context covers. */
  merged(): VersionedObject {
    let out = emptyObject();
    for (const obj of this.replies.values()) if (obj) out = merge(out, obj);
    return out;
  }

  /** Replicas whose reply differs from `final` (missing or stale): read repair sends them `final`. */
  stale(final: VersionedObject): string[] {
    if (final.siblings.length === 0 && Object.keys(final.vv).length === 0) return [];
    const out: string[] = [];
    for (const [node, obj] of this.replies) if (!obj || !sameState(obj, final)) out.push(node);
    return out;
  }

  failureMessage(): string {
    const answered = new Set([...this.replies.keys(), ...this.failed.map((f) => f.node)]);
    const missing = this.replicas.filter((r) => !answered.has(r));
    return (
      `quorum not met: ${this.answers} of ${this.r} required replies (R=${this.r}, ${this.replicas.length} replicas asked); ` +
      describeFailures(this.failed, missing)
    );
  }
}
