// The in-memory transport: the same Link and codec as the WebSocket transport, over a simulated
// network that can cut links, drop frames and delay them. For unit tests and the deterministic
// simulation; frames are delivered through the injected clock, never synchronously.

import type { Clock } from '../core/clock.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { Link, type FrameSocket, type TrafficMeter } from './link.js';
import type { ReplyOf, RequestOf, RequestType } from './protocol.js';
import type { RequestHandler, Transport } from './types.js';

export interface MemoryNetworkOptions {
  clock: Clock;
  /** Delay of each frame in ms (default 0: next timer turn). */
  delayMs?: (from: string, to: string) => number;
  /** Return true to drop a frame (default: never). */
  drop?: (from: string, to: string) => boolean;
  /** Return true to deliver a frame twice (default: never). */
  duplicate?: (from: string, to: string) => boolean;
  /** Given to every link as its frame-batching scheduler (default setImmediate). */
  defer?: (fn: () => void) => void;
}

export class MemoryNetwork {
  private readonly nodes = new Map<string, MemoryTransport>();
  private readonly cut = new Set<string>();

  constructor(readonly opts: MemoryNetworkOptions) {}

  transport(self: string, peers: string[], limits = { maxInFlight: 4096, maxBufferedBytes: 64 << 20 }): MemoryTransport {
    return new MemoryTransport(this, self, peers, limits);
  }

  /** Cuts the link between a and b in both directions (frames in flight are lost too). */
  disconnect(a: string, b: string): void {
    this.cut.add(pairKey(a, b));
    this.nodes.get(a)?.peerChanged(b);
    this.nodes.get(b)?.peerChanged(a);
  }

  connect(a: string, b: string): void {
    this.cut.delete(pairKey(a, b));
    this.nodes.get(a)?.peerChanged(b);
    this.nodes.get(b)?.peerChanged(a);
  }

  reachable(a: string, b: string): boolean {
    return this.nodes.has(a) && this.nodes.has(b) && !this.cut.has(pairKey(a, b));
  }

  /** @internal */
  register(t: MemoryTransport): void {
    this.nodes.set(t.self, t);
    for (const other of this.nodes.values()) {
      if (other === t) continue;
      other.peerChanged(t.self);
      t.peerChanged(other.self);
    }
  }

  /** @internal */
  unregister(t: MemoryTransport): void {
    if (this.nodes.get(t.self) !== t) return;
    this.nodes.delete(t.self);
    for (const other of this.nodes.values()) other.peerChanged(t.self);
  }

  /** @internal */
  send(from: string, to: string, bytes: Buffer): void {
    if (!this.reachable(from, to) || this.opts.drop?.(from, to)) return;
    const copies = this.opts.duplicate?.(from, to) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.opts.delayMs?.(from, to) ?? 0;
      this.opts.clock.setTimeout(() => {
        if (this.reachable(from, to)) this.nodes.get(to)?.deliver(from, bytes);
      }, delay);
    }
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

export class MemoryTransport implements Transport {
  private handler: RequestHandler | null = null;
  private links = new Map<string, Link>();
  private readonly listeners: Array<(peer: string, up: boolean) => void> = [];
  private readonly wasUp = new Map<string, boolean>();
  private readonly meter: TrafficMeter = { sent: 0, received: 0 };

  constructor(
    private readonly net: MemoryNetwork,
    readonly self: string,
    private readonly peers: string[],
    private readonly limits: { maxInFlight: number; maxBufferedBytes: number },
  ) {}

  async start(handler: RequestHandler): Promise<void> {
    this.handler = handler;
    this.links = new Map();
    this.wasUp.clear();
    for (const p of this.peers) if (p !== this.self) this.links.set(p, this.newLink(p));
    this.net.register(this);
  }

  async stop(): Promise<void> {
    this.net.unregister(this);
    for (const l of this.links.values()) l.closed('node stopping');
    this.handler = null;
  }

  request<T extends RequestType>(peer: string, msg: RequestOf<T>, timeoutMs: number): Promise<ReplyOf<T>> {
    const link = this.links.get(peer);
    if (!link || !this.handler) return Promise.reject(new NexusError(ErrorCodes.UNREACHABLE, `node ${peer} is unreachable: no link`));
    if (!this.net.reachable(this.self, peer))
      return Promise.reject(new NexusError(ErrorCodes.UNREACHABLE, `node ${peer} is unreachable: link is down`));
    return link.request<T>(msg, timeoutMs);
  }

  /** The in-memory network has its own fault controls (MemoryNetwork); this one is a no-op. */
  injectFaults(): void {}

  peerTraffic(): { sent: number; received: number } {
    return { ...this.meter };
  }

  isConnected(peer: string): boolean {
    return this.handler !== null && this.net.reachable(this.self, peer);
  }

  onLinkChange(listener: (peer: string, up: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** @internal */
  deliver(from: string, bytes: Buffer): void {
    this.links.get(from)?.receive(bytes);
  }

  /** @internal: a link went up or down; a down link fails what waits on it, as a closed socket would. */
  peerChanged(peer: string): void {
    if (!this.handler || !this.links.has(peer)) return;
    const up = this.net.reachable(this.self, peer);
    if (this.wasUp.get(peer) === up) return;
    this.wasUp.set(peer, up);
    if (!up) {
      this.links.get(peer)!.closed('link is down');
      this.links.set(peer, this.newLink(peer));
    }
    for (const l of this.listeners) l(peer, up);
  }

  private newLink(peer: string): Link {
    const socket: FrameSocket = {
      send: (bytes) => this.net.send(this.self, peer, bytes),
      bufferedAmount: () => 0,
      close: () => {},
    };
    return new Link(socket, {
      label: `node ${peer}`,
      clock: this.net.opts.clock,
      maxInFlight: this.limits.maxInFlight,
      maxBufferedBytes: this.limits.maxBufferedBytes,
      meter: this.meter,
      ...(this.net.opts.defer ? { defer: this.net.opts.defer } : {}),
      onRequest: (msg, timeoutMs) => {
        if (!this.handler) return Promise.reject(new NexusError(ErrorCodes.STOPPING, `node ${this.self} is stopping`));
        return this.handler({ kind: 'peer', id: peer }, msg, timeoutMs);
      },
    });
  }
}
