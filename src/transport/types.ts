// The transport seam between nodes. The WebSocket implementation carries real traffic; the
// in-memory one (memory.ts) lets unit tests and the simulation drop, delay and partition messages
// without sockets. Both pass test/contract/transport.test.ts.

import type { ReplyOf, Request, RequestOf, RequestType } from './protocol.js';

export type Origin = { kind: 'peer'; id: string } | { kind: 'client'; addr: string };

/** Serves one request; resolves with the reply body or throws a NexusError to answer with it. */
export type RequestHandler = (origin: Origin, msg: Request, timeoutMs: number) => Promise<unknown>;

export interface Transport {
  /** This node's id. */
  readonly self: string;
  /** Starts accepting links and dialing peers; resolves once listening. */
  start(handler: RequestHandler): Promise<void>;
  /** Closes every link and stops listening; pending requests fail with UNREACHABLE. */
  stop(): Promise<void>;
  /**
   * Sends a request to a peer node. Rejects with UNREACHABLE (no link), OVERLOADED (link bounds),
   * TIMEOUT (no answer within timeoutMs) or the error the peer answered with.
   */
  request<T extends RequestType>(peer: string, msg: RequestOf<T>, timeoutMs: number): Promise<ReplyOf<T>>;
  /** True while an authenticated link to the peer is open. */
  isConnected(peer: string): boolean;
  /** Called whenever a link to a peer opens (true) or closes (false). */
  onLinkChange(listener: (peer: string, up: boolean) => void): void;
  /** Bytes sent to and received from peers over all links so far (frames; for status and benchmarks). */
  peerTraffic(): { sent: number; received: number };
  /**
   * The simulator's fault layer: from now on, traffic with `blocked` peers is cut (requests fail
   * as UNREACHABLE, frames from them are dropped) and frames to peers leave `delayMs` late.
   */
  injectFaults(faults: { blocked: readonly string[]; delayMs: number }): void;
}

export type { Request };
