// Judges each peer up or down from what the links tell us: heartbeats feed a phi-accrual detector
// per peer; a closed link means down at once (the kill -9 path); a request timeout makes the node
// re-judge at once instead of at its next tick. A peer is up again when a heartbeat arrives over
// an open link. Transitions are timestamped and reported.

import type { Clock } from '../core/clock.js';
import { PhiAccrualDetector, type PhiOptions } from './phi.js';

export type PeerState = 'up' | 'down';

export interface PeerView {
  id: string;
  state: PeerState;
  /** When the state last changed (ms since the epoch). */
  since: number;
  phi: number;
  linkOpen: boolean;
}

export interface DetectorOptions extends PhiOptions {
  self: string;
  peers: string[];
  clock: Clock;
  /** Suspicion above which a peer is judged down (default 8). */
  threshold?: number;
  /** Called on every transition. */
  onChange?: (peer: string, state: PeerState, reason: string) => void;
}

interface Peer {
  detector: PhiAccrualDetector;
  state: PeerState;
  since: number;
  linkOpen: boolean;
}

export class FailureDetector {
  private readonly peers = new Map<string, Peer>();
  readonly threshold: number;

  constructor(private readonly opts: DetectorOptions) {
    this.threshold = opts.threshold ?? 8;
    const now = opts.clock.now();
    for (const p of opts.peers) {
      if (p === opts.self) continue;
      // Peers start down: nothing is known of them until their first heartbeat.
      this.peers.set(p, { detector: new PhiAccrualDetector(opts), state: 'down', since: now, linkOpen: false });
    }
  }

  /** True for this node itself and for peers judged up. */
  isUp(peer: string): boolean {
    if (peer === this.opts.self) return true;
    return this.peers.get(peer)?.state === 'up';
  }

  /** A heartbeat from `peer` arrived (over an open link). */
  heartbeat(peer: string): void {
    const p = this.peers.get(peer);
    if (!p) return;
    const now = this.opts.clock.now();
    if (p.state === 'down') {
      // Start the history afresh: the outage is not a heartbeat interval, and learning it would
      // make the next failure take far longer to detect.
      p.detector = new PhiAccrualDetector(this.opts);
    }
    p.detector.heartbeat(now);
    p.linkOpen = true;
    if (p.state === 'down') this.transition(peer, p, 'up', 'heartbeat received');
  }

  /** The transport opened or closed the link to `peer`. */
  linkChanged(peer: string, open: boolean): void {
    const p = this.peers.get(peer);
    if (!p) return;
    p.linkOpen = open;
    if (!open && p.state === 'up') this.transition(peer, p, 'down', 'link closed');
  }

  /** A request to `peer` timed out: judge it now rather than at the next tick. */
  requestTimedOut(peer: string): void {
    const p = this.peers.get(peer);
    if (p) this.judge(peer, p);
  }

  /**
   * Re-judges every peer; call once per heartbeat interval. A tick that comes far later than
   * expected means this node itself was paused (SIGSTOP, a long stall): the silence is ours, not
   * the peers', and their heartbeats are still queued unread, so this tick judges no one.
   */
  tick(expectedGapMs?: number): void {
    const now = this.opts.clock.now();
    const late = expectedGapMs !== undefined && this.lastTick !== null && now - this.lastTick > 3 * expectedGapMs;
    this.lastTick = now;
    if (late) return;
    for (const [id, p] of this.peers) this.judge(id, p);
  }

  private lastTick: number | null = null;

  views(): PeerView[] {
    const now = this.opts.clock.now();
    return [...this.peers].map(([id, p]) => ({ id, state: p.state, since: p.since, phi: round(p.detector.phi(now)), linkOpen: p.linkOpen }));
  }

  view(peer: string): PeerView | undefined {
    return this.views().find((v) => v.id === peer);
  }

  private judge(id: string, p: Peer): void {
    if (p.state !== 'up') return;
    const phi = p.detector.phi(this.opts.clock.now());
    if (phi > this.threshold) this.transition(id, p, 'down', `phi ${round(phi)} > ${this.threshold}`);
  }

  private transition(id: string, p: Peer, state: PeerState, reason: string): void {
    p.state = state;
    p.since = this.opts.clock.now();
    this.opts.onChange?.(id, state, reason);
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
