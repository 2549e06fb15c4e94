// The client library: what the CLI, the benchmark and the simulation use. It keeps one
// authenticated link per node URL, opened on first use, and either fails over between the URLs in
// order or spreads requests over all of them.
//
// Reads are coordinated by the client itself when it has a link to every primary of the key
// (client/direct.ts): one round trip instead of two. Writes always go through a node.
//
// Failover is only automatic where it is safe: a request that could not be sent goes to the next
// node; a write whose link dropped after sending fails as UNREACHABLE (it may or may not have been
// applied), and a read is simply retried.

import { systemClock } from '../core/clock.js';
import { DEFAULT_MAX_SIBLINGS, DEFAULT_MAX_VALUE_BYTES, maxFrameBytes, type QuorumSpec } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { dial } from '../transport/handshake.js';
import { Link } from '../transport/link.js';
import { DirectReads, noReadStats, type DirectReadStats } from './direct.js';
import type { Replies, RequestOf, RequestType } from '../transport/protocol.js';

/**
 * 'spread' moves on to the next node after this many requests in one event-loop turn, so that a
 * large burst (a bulk load) is still shared by the nodes rather than coordinated by one.
 */
export const SPREAD_TURN_MAX = 256;

export interface ClientOptions {
  /** ws:// URLs of nodes, tried in order (failover) or used in turn (spread). */
  nodes: string[];
  secret?: string;
  /** Default deadline of a request in ms (5000). */
  timeoutMs?: number;
  /**
   * 'failover' (default): use the first reachable node. 'spread': take the nodes in turn, moving
   * to the next one per event-loop turn (and every SPREAD_TURN_MAX requests within a turn).
   */
  strategy?: 'failover' | 'spread';
  /** Bound on requests in flight per node link (default 10000). */
  maxInFlight?: number;
  /**
   * 'direct' (default with two URLs or more): coordinate reads here, asking the key's primaries,
   * whenever this client has a URL for each of them; otherwise, and when they cannot give R replies within
   * `patienceMs`, a node coordinates. 'coordinated': a node always coordinates.
   */
  reads?: 'direct' | 'coordinated';
  /** How long a direct read waits for R replies before a node coordinator takes over (1000; at most half the deadline). */
  patienceMs?: number;
  /**
   * How long a replica a direct read found stale gets to receive the writes in flight to it before
   * it is checked and, only if still behind, repaired (1000 ms; 0: check at once). See client/direct.ts.
   */
  repairGraceMs?: number;
}

export interface GetResult {
  found: boolean;
  values: Uint8Array[];
  context: string;
  siblings: number;
}

export interface WriteOptions {
  w?: QuorumSpec;
  context?: string;
  strict?: boolean;
  timeoutMs?: number;
}

export interface ReadOptions {
  r?: QuorumSpec;
  strict?: boolean;
  timeoutMs?: number;
}

export class NexusClient {
  private readonly links = new Map<string, Promise<Link>>();
  private readonly timeoutMs: number;
  private turn = 0;
  /** 'spread': requests sent in the current event-loop turn, and whether that turn has begun. */
  private sentThisTurn = 0;
  private turnOpen = false;
  private closed = false;
  private readonly direct: DirectReads | null;

  constructor(private readonly opts: ClientOptions) {
    if (opts.nodes.length === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'at least one node URL is needed');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    // With one URL a client can never reach all N primaries (N = 1 gains nothing): leave reads to the node.
    this.direct =
      opts.reads === 'coordinated' || opts.nodes.length < 2
        ? null
        : new DirectReads({
            urls: opts.nodes,
            link: (url) => this.openLink(url),
            coordinated: (msg, timeoutMs, url) => {
              const m = { ...msg, timeoutMs };
              return url === undefined ? this.call('get', m, true, timeoutMs) : this.openLink(url).then((l) => l.request<'get'>(m, timeoutMs));
            },
            patienceMs: opts.patienceMs ?? 1000,
            ...(opts.repairGraceMs !== undefined ? { repairGraceMs: opts.repairGraceMs } : {}),
          });
  }

  /** How this client's reads were coordinated (all zero with reads: 'coordinated'). */
  get readStats(): DirectReadStats {
    return { ...(this.direct?.stats ?? noReadStats()) };
  }

  async put(key: string, value: Uint8Array | string, o: WriteOptions = {}): Promise<{ context: string }> {
    const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    const res = await this.call('put', { t: 'put', key, value: bytes, ...writeFields(o, this.timeoutMs) }, false, o.timeoutMs);
    return { context: res.ctx };
  }

  async get(key: string, o: ReadOptions = {}): Promise<GetResult> {
    const msg: RequestOf<'get'> = { t: 'get', key, timeoutMs: o.timeoutMs ?? this.timeoutMs };
    if (o.r !== undefined) msg.r = o.r;
    if (o.strict) msg.strict = true;
    const res = this.direct ? await this.direct.get(msg, o.timeoutMs ?? this.timeoutMs) : await this.call('get', msg, true, o.timeoutMs);
    return { found: res.found, values: res.values, context: res.ctx, siblings: res.siblings };
  }

  /**
   * Deletes with a context: exactly the siblings that context saw. Without one, reads first and
   * deletes exactly the siblings that read returned (never a concurrent write it did not see).
   */
  async del(key: string, o: WriteOptions & { r?: QuorumSpec } = {}): Promise<void> {
    let context = o.context;
    if (context === undefined) {
      const read = await this.get(key, { ...(o.r !== undefined ? { r: o.r } : {}), ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) });
      context = read.context;
    }
    await this.call('put', { t: 'put', key, value: null, ...writeFields({ ...o, context }, this.timeoutMs) }, false, o.timeoutMs);
  }

  /** Runs an anti-entropy round on the answering node now (optionally one partition) and reports it. */
  async repair(partition?: number, timeoutMs = 120_000): Promise<Replies['repair']> {
    return this.call('repair', { t: 'repair', ...(partition !== undefined ? { partition } : {}) }, false, timeoutMs);
  }

  /**
   * The simulator's fault layer on the answering node: cut its links to `blocked` peers, delay
   * its frames by `delayMs` and, with `replicaDelay` ("exp:MEAN", "const:MS", "uniform:LO-HI" or
   * "none"), each replica write it applies. Refused unless the node runs with NEXUS_SIM_FAULTS=1
   * (nexus sim and nexus bench set it on the clusters they start).
   */
  async simFault(blocked: string[], delayMs = 0, replicaDelay?: string): Promise<void> {
    await this.call('sim-fault', { t: 'sim-fault', blocked, delayMs, ...(replicaDelay !== undefined ? { replicaDelay } : {}) }, true, 3000);
  }

  /** The answering node's replica timings since the previous call, ms (see core/timings.ts). */
  async timings(): Promise<Replies['timings']> {
    return this.call('timings', { t: 'timings' }, true);
  }

  async status(): Promise<Replies['status']> {
    return this.call('status', { t: 'status' }, true);
  }

  close(): void {
    this.closed = true;
    this.direct?.close();
    for (const p of this.links.values()) p.then((l) => l.close('client closed'), () => {});
    this.links.clear();
  }

  private order(): string[] {
    const nodes = this.opts.nodes;
    if (this.opts.strategy !== 'spread' || nodes.length === 1) return nodes;
    // One node per event-loop turn, not per request: requests issued together travel to one node
    // in one frame (a link sends once per turn), that node replicates them in one frame to each
    // replica, and every replica commits them together. Taking turns per request cut each burst
    // into one small piece per node (see docs/adr/004, "Bursts").
    if (!this.turnOpen || this.sentThisTurn >= SPREAD_TURN_MAX) {
      this.turn++;
      this.sentThisTurn = 0;
      if (!this.turnOpen) {
        this.turnOpen = true;
        setImmediate(() => (this.turnOpen = false));
      }
    }
    this.sentThisTurn++;
    const start = this.turn % nodes.length;
    return [...nodes.slice(start), ...nodes.slice(0, start)];
  }

  private async call<T extends RequestType>(t: T, msg: RequestOf<T>, idempotent: boolean, timeoutMs?: number): Promise<Replies[T]> {
    if (this.closed) throw new NexusError(ErrorCodes.STOPPING, 'client is closed');
    const budget = timeoutMs ?? this.timeoutMs;
    const reasons: string[] = [];
    for (const url of this.order()) {
      let link: Link;
      try {
        link = await this.openLink(url);
      } catch (e) {
        const err = NexusError.from(e);
        if (err.code === ErrorCodes.AUTH_FAILED || err.code === ErrorCodes.INCOMPATIBLE) throw err;
        reasons.push(err.message);
        continue;
      }
      try {
        return await link.request<T>(msg, budget);
      } catch (e) {
        const err = NexusError.from(e);
        if (err.code !== ErrorCodes.UNREACHABLE || !idempotent) throw err;
        reasons.push(err.message);
      }
    }
    throw new NexusError(ErrorCodes.UNREACHABLE, `no node could be reached: ${reasons.join('; ')}`);
  }

  /** The link to `url`, dialled again if it closed since its last use. */
  private async openLink(url: string): Promise<Link> {
    const link = await this.link(url);
    if (link.isOpen) return link;
    this.links.delete(url);
    return this.link(url);
  }

  private link(url: string): Promise<Link> {
    const existing = this.links.get(url);
    if (existing) return existing;
    const p = dial({
      url,
      role: 'client',
      secret: this.opts.secret ?? '',
      maxPayload: maxFrameBytes({ maxValueBytes: DEFAULT_MAX_VALUE_BYTES * 64, maxSiblings: DEFAULT_MAX_SIBLINGS }),
    }).then(({ ws, attach }) => {
      const link = new Link(
        { send: (b) => ws.send(b, { binary: true }), bufferedAmount: () => ws.bufferedAmount, close: (c, r) => ws.close(c, r) },
        {
          label: `node at ${url}`,
          clock: systemClock,
          maxInFlight: this.opts.maxInFlight ?? 10_000,
          maxBufferedBytes: 256 << 20,
          onRequest: async () => {
            throw new NexusError(ErrorCodes.BAD_FRAME, 'clients serve no requests');
          },
        },
      );
      attach((data: Buffer) => link.receive(data));
      ws.on('close', () => {
        link.closed('connection closed');
        if (this.links.get(url) === p) this.links.delete(url);
      });
      return link;
    });
    this.links.set(url, p);
    p.catch(() => {
      if (this.links.get(url) === p) this.links.delete(url);
    });
    return p;
  }
}

function writeFields(o: WriteOptions, defaultTimeout: number): Partial<RequestOf<'put'>> {
  const out: Partial<RequestOf<'put'>> = { timeoutMs: o.timeoutMs ?? defaultTimeout };
  if (o.w !== undefined) out.w = o.w;
  if (o.context !== undefined) out.ctx = o.context;
  if (o.strict) out.strict = true;
  return out;
}
