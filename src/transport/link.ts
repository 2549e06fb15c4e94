// A Link multiplexes requests and replies over one authenticated connection (a WebSocket, or a pipe
// of the in-memory network). Both ends may send requests. The link bounds what it lets pile up:
// requests in flight (each way) and bytes queued unsent; past a bound a request fails fast with
// OVERLOADED instead of growing memory.

import type { Clock, TimerHandle } from '../core/clock.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { encodeError, encodeReply, encodeRequest, parseFrame, splitFrames } from './codec.js';
import type { ReplyOf, Request, RequestOf, RequestType } from './protocol.js';

/** The byte pipe under a link: what both the ws and the in-memory transports provide. */
export interface FrameSocket {
  send(bytes: Buffer): void;
  /** Bytes accepted by send() but not yet written out. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

export type IncomingHandler = (msg: Request, timeoutMs: number) => Promise<unknown>;

export interface LinkOptions {
  /** Who is at the other end, for error messages ("node b", "client 127.0.0.1:5123"). */
  label: string;
  clock: Clock;
  maxInFlight: number;
  maxBufferedBytes: number;
  /** Serves requests from the other end; throw NexusError to answer with an error. */
  onRequest: IncomingHandler;
  /** Reported once for frames that break the protocol badly enough to close the link. */
  onProtocolError?: (err: NexusError) => void;
  /**
   * Runs `fn` once the current burst of work is done (default: setImmediate). Frames queued until
   * then leave as one message: one write instead of one per frame, which is most of the CPU a
   * loaded node spends on small requests. The simulation injects its own scheduler.
   */
  defer?: (fn: () => void) => void;
  /** Counts the bytes this link writes and reads (frames, not WebSocket or TCP headers). */
  meter?: TrafficMeter;
}

/** Bytes sent and received, summed over the links that share it. */
export interface TrafficMeter {
  sent: number;
  received: number;
}

interface Pending {
  resolve: (body: unknown) => void;
  reject: (err: NexusError) => void;
  timer: TimerHandle;
}

export class Link {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private serving = 0;
  private closedReason: string | null = null;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;

  constructor(
    private readonly socket: FrameSocket,
    private readonly opts: LinkOptions,
  ) {}

  get isOpen(): boolean {
    return this.closedReason === null;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends a request and waits for its reply until `timeoutMs` passes. */
  request<T extends RequestType>(msg: RequestOf<T>, timeoutMs: number): Promise<ReplyOf<T>> {
    if (this.closedReason !== null)
      return Promise.reject(new NexusError(ErrorCodes.UNREACHABLE, `${this.opts.label} is unreachable: ${this.closedReason}`));
    if (this.pending.size >= this.opts.maxInFlight)
      return Promise.reject(new NexusError(ErrorCodes.OVERLOADED, `overloaded: ${this.pending.size} requests already in flight to ${this.opts.label}`));
    const queued = this.socket.bufferedAmount() + this.outboxBytes;
    if (queued > this.opts.maxBufferedBytes)
      return Promise.reject(new NexusError(ErrorCodes.OVERLOADED, `overloaded: ${queued} bytes already queued to ${this.opts.label}`));
    const id = this.nextId++;
    return new Promise<ReplyOf<T>>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(new NexusError(ErrorCodes.TIMEOUT, `${this.opts.label} did not answer within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (b: unknown) => void, reject, timer });
      let bytes: Buffer;
      try {
        bytes = encodeRequest(id, msg, timeoutMs);
      } catch (e) {
        timer.cancel();
        this.pending.delete(id);
        return reject(new NexusError(ErrorCodes.INVALID_ARGUMENT, `request could not be encoded: ${(e as Error).message}`));
      }
      this.enqueue(bytes);
    });
  }

  /** Feeds one received message (one or more frames) to the link. Never throws. */
  receive(bytes: Uint8Array): void {
    if (this.opts.meter) this.opts.meter.received += bytes.length;
    let frames: unknown[];
    try {
      frames = splitFrames(bytes);
    } catch (e) {
      this.protocolError(NexusError.from(e));
      return;
    }
    for (const raw of frames) {
      if (this.closedReason !== null) return;
      this.receiveFrame(raw);
    }
  }

  private receiveFrame(raw: unknown): void {
    const frame = parseFrame(raw);
    switch (frame.kind) {
      case 'req':
        this.serve(frame.id, frame.msg, frame.timeoutMs);
        return;
      case 'res': {
        const p = this.pending.get(frame.id);
        if (!p) return; // a reply after its timeout: the caller has moved on
        this.pending.delete(frame.id);
        p.timer.cancel();
        if (frame.ok) p.resolve(frame.body);
        else p.reject(NexusError.fromWire(frame.error));
        return;
      }
      case 'bad':
        if (frame.id !== null) this.sendSafely(encodeError(frame.id, frame.error.toWire()));
        else this.protocolError(frame.error);
        return;
    }
  }

  /** Fails every waiting request; the owner calls this when the connection is gone. */
  closed(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const [id, p] of this.pending) {
      p.timer.cancel();
      p.reject(new NexusError(ErrorCodes.UNREACHABLE, `${this.opts.label} is unreachable: ${reason}`));
      this.pending.delete(id);
    }
  }

  close(reason: string): void {
    this.closed(reason);
    try {
      this.socket.close(1000, reason.slice(0, 100));
    } catch {
      // already closed
    }
  }

  private serve(id: number, msg: Request, timeoutMs: number): void {
    if (this.serving >= this.opts.maxInFlight) {
      this.sendSafely(encodeError(id, { code: ErrorCodes.OVERLOADED, message: `overloaded: ${this.serving} requests in progress on this link` }));
      return;
    }
    this.serving++;
    let result: Promise<unknown>;
    try {
      result = this.opts.onRequest(msg, timeoutMs);
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (body) => {
        this.serving--;
        let bytes: Buffer;
        try {
          bytes = encodeReply(id, body ?? {});
        } catch (e) {
          bytes = encodeError(id, { code: ErrorCodes.INTERNAL, message: `reply could not be encoded: ${(e as Error).message}` });
        }
        this.sendSafely(bytes);
      },
      (err) => {
        this.serving--;
        this.sendSafely(encodeError(id, NexusError.from(err).toWire()));
      },
    );
  }

  private sendSafely(bytes: Buffer): void {
    if (this.closedReason !== null) return;
    this.enqueue(bytes);
  }

  private enqueue(bytes: Buffer): void {
    this.outbox.push(bytes);
    this.outboxBytes += bytes.length;
    if (this.outbox.length === 1) (this.opts.defer ?? setImmediate)(() => this.flush());
  }

  private flush(): void {
    const frames = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    if (this.closedReason !== null || frames.length === 0) return;
    try {
      const message = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
      if (this.opts.meter) this.opts.meter.sent += message.length;
      this.socket.send(message);
    } catch (e) {
      // The close handler fails what is pending; say why now in case it never comes.
      this.closed(`send failed (${(e as Error).message})`);
    }
  }

  private protocolError(err: NexusError): void {
    this.opts.onProtocolError?.(err);
    this.close(`protocol error: ${err.message}`);
  }
}
