// What a simulation records: every operation a client ran, with when it started and ended, which
// node it asked, its quorum, how it ended, and the values involved. Writes carry unique values, so
// a value names the write that made it; `covers` names the values a write's context had seen (what
// it supersedes if it lands).

export type OpKind = 'write' | 'rmw' | 'delete' | 'read';

/**
 * ok: acknowledged. failed: the cluster said it did not happen (e.g. quorum not met before any
 * replica wrote — still counted as "may have happened" for writes, see the checker). unknown: no
 * answer (timeout, connection lost): the write may or may not have landed.
 */
export type OpResult = 'ok' | 'failed' | 'unknown';

export interface Op {
  /** Unique per history, in issue order. */
  id: number;
  client: number;
  kind: OpKind;
  key: string;
  /** The value written (write, rmw); absent for delete and read. Unique across the history. */
  value?: string;
  /** Values the write's context covered (rmw, delete): the siblings its read returned. */
  covers?: string[];
  /** Values a read returned (read, and the read half of rmw/delete). */
  seen?: string[];
  /** Milliseconds since the run started. */
  start: number;
  end: number;
  node: string;
  r?: number;
  w?: number;
  strict?: boolean;
  result: OpResult;
  error?: string;
  /** Fault phase the op started in (e.g. "fault", "heal"), for per-phase figures. */
  phase: string;
}

/** One replica's final state of one key: its live sibling values (sorted); [] = deleted/absent. */
export type ReplicaState = Map<string, string[]>;
