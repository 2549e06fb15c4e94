// The WebSocket transport: one listening server per node that takes links from peers and clients,
// and one link per pair of nodes (the node with the smaller id dials, so a pair never holds two).
// Dialing retries with capped exponential backoff and jitter while the peer is away.

import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Member } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { decode, encode } from './codec.js';
import { dial, HANDSHAKE_TIMEOUT_MS, isAuth, newNonce, dialerProof, proofMatches, serverProof } from './handshake.js';
import { Link, type FrameSocket, type TrafficMeter } from './link.js';
import { CLIENT_REQUESTS, PROTOCOL_VERSION, type Hello, type Refused, type ReplyOf, type RequestOf, type RequestType, type Welcome } from './protocol.js';
import type { RequestHandler, Transport } from './types.js';

export interface WsTransportOptions {
  self: string;
  members: Member[];
  fingerprint: string;
  secret: string;
  host: string;
  port: number;
  maxPayload: number;
  maxInFlight: number;
  maxBufferedBytes: number;
  clock: Clock;
  log: Logger;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;

function socketOf(ws: WebSocket): FrameSocket {
  return {
    send: (bytes) => ws.send(bytes, { binary: true }),
    bufferedAmount: () => ws.bufferedAmount,
    close: (code, reason) => ws.close(code, reason),
  };
}

export class WsTransport implements Transport {
  readonly self: string;
  private server: WebSocketServer | null = null;
  private handler: RequestHandler | null = null;
  private readonly links = new Map<string, Link>();
  private readonly meter: TrafficMeter = { sent: 0, received: 0 };
  /** The simulator's fault layer (injectFaults): peers cut off, and delay added to every frame. */
  private blocked = new Set<string>();
  private delayMs = 0;
  private readonly dialTimers = new Map<string, TimerHandle>();
  private readonly listeners: Array<(peer: string, up: boolean) => void> = [];
  private readonly clients = new Set<WebSocket>();
  private stopping = false;

  constructor(private readonly opts: WsTransportOptions) {
    this.self = opts.self;
  }

  /** The port actually bound (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.opts.port;
  }

  async start(handler: RequestHandler): Promise<void> {
    this.handler = handler;
    this.stopping = false;
    const server = new WebSocketServer({ host: this.opts.host, port: this.opts.port, maxPayload: this.opts.maxPayload, perMessageDeflate: false });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    server.on('error', (e) => this.opts.log.error({ err: e.message }, 'server error'));
    server.on('connection', (ws, req) => this.accept(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
    for (const m of this.opts.members) if (m.id > this.self) this.dialLoop(m, 0);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.dialTimers.values()) t.cancel();
    this.dialTimers.clear();
    for (const link of this.links.values()) link.close('node stopping');
    this.links.clear();
    for (const ws of this.clients) ws.terminate();
    const server = this.server;
    if (server) {
      for (const ws of server.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  injectFaults(faults: { blocked: readonly string[]; delayMs: number }): void {
    this.blocked = new Set(faults.blocked);
    this.delayMs = faults.delayMs;
  }

  request<T extends RequestType>(peer: string, msg: RequestOf<T>, timeoutMs: number): Promise<ReplyOf<T>> {
    if (this.blocked.has(peer)) return Promise.reject(new NexusError(ErrorCodes.UNREACHABLE, `node ${peer} is unreachable: partitioned (simulation)`));
    const link = this.links.get(peer);
    if (!link) return Promise.reject(new NexusError(ErrorCodes.UNREACHABLE, `node ${peer} is unreachable: no open link`));
    return link.request<T>(msg, timeoutMs);
  }

  peerTraffic(): { sent: number; received: number } {
    return { ...this.meter };
  }

  isConnected(peer: string): boolean {
    return this.links.get(peer)?.isOpen ?? false;
  }

  onLinkChange(listener: (peer: string, up: boolean) => void): void {
    this.listeners.push(listener);
  }

  // ---- accepting ----

  private accept(ws: WebSocket, addr: string): void {
    if (this.stopping) return void ws.terminate();
    ws.on('error', () => {}); // errors surface as 'close'
    const nonce = newNonce();
    const hello: Hello = { t: 'hello', v: PROTOCOL_VERSION, node: this.self, fp: this.opts.fingerprint, nonce };
    ws.send(encode(hello));
    const timer = setTimeout(() => ws.terminate(), HANDSHAKE_TIMEOUT_MS);
    const refuse = (code: string, message: string): void => {
      clearTimeout(timer);
      this.opts.log.warn({ from: addr, code }, `refused a connection: ${message}`);
      const refused: Refused = { t: 'refused', error: { code, message } };
      ws.send(encode(refused), () => ws.close(1008, code));
    };
    ws.once('message', (data: Buffer) => {
      let auth: unknown;
      try {
        auth = decode(data);
      } catch {
        return refuse(ErrorCodes.BAD_FRAME, 'handshake message is not valid MessagePack');
      }
      if (!isAuth(auth)) return refuse(ErrorCodes.BAD_FRAME, 'expected an auth message');
      if (auth.v !== PROTOCOL_VERSION)
        return refuse(ErrorCodes.INCOMPATIBLE, `protocol version ${auth.v} is not supported; this node speaks ${PROTOCOL_VERSION}`);
      const node = typeof auth.node === 'string' ? auth.node : '';
      if (!proofMatches(dialerProof(this.opts.secret, nonce, auth.role, node), auth.proof))
        return refuse(ErrorCodes.AUTH_FAILED, `authentication failed: ${auth.role} ${node || addr} does not know the cluster secret`);
      if (auth.role === 'peer') {
        if (auth.fp !== this.opts.fingerprint)
          return refuse(ErrorCodes.INCOMPATIBLE, `node ${node} has cluster settings fingerprint ${String(auth.fp)}, this node has ${this.opts.fingerprint}: members, partitions or N differ`);
        if (!this.opts.members.some((m) => m.id === node) || node === this.self)
          return refuse(ErrorCodes.INCOMPATIBLE, `node "${node}" is not a member of this cluster`);
      }
      clearTimeout(timer);
      const welcome: Welcome = { t: 'welcome', proof: serverProof(this.opts.secret, auth.nonce) };
      ws.send(encode(welcome));
      if (auth.role === 'peer') this.attachPeer(node, ws);
      else this.attachClient(ws, addr);
    });
    ws.once('close', () => clearTimeout(timer));
  }

  private attachClient(ws: WebSocket, addr: string): void {
    this.clients.add(ws);
    const link = new Link(socketOf(ws), {
      label: `client ${addr}`,
      clock: this.opts.clock,
      maxInFlight: this.opts.maxInFlight,
      maxBufferedBytes: this.opts.maxBufferedBytes,
      onRequest: (msg, timeoutMs) => {
        if (!CLIENT_REQUESTS.has(msg.t)) throw new NexusError(ErrorCodes.BAD_FRAME, `message type "${msg.t}" is only for cluster members`);
        return this.handler!({ kind: 'client', addr }, msg, timeoutMs);
      },
      onProtocolError: (err) => this.opts.log.warn({ from: addr }, `closing client link: ${err.message}`),
    });
    ws.on('message', (data: Buffer) => link.receive(data));
    ws.on('close', () => {
      this.clients.delete(ws);
      link.closed('connection closed');
    });
  }

  private attachPeer(peer: string, ws: WebSocket, attach?: (onMessage: (data: Buffer) => void) => void): void {
    const old = this.links.get(peer);
    if (old) old.close('replaced by a newer link');
    const direct = socketOf(ws);
    const socket: FrameSocket = {
      ...direct,
      send: (bytes) => {
        if (this.blocked.has(peer)) return; // partitioned: the frame is lost
        if (this.delayMs > 0) setTimeout(() => ws.readyState === ws.OPEN && direct.send(bytes), this.delayMs);
        else direct.send(bytes);
      },
    };
    const link = new Link(socket, {
      label: `node ${peer}`,
      clock: this.opts.clock,
      maxInFlight: this.opts.maxInFlight,
      maxBufferedBytes: this.opts.maxBufferedBytes,
      onRequest: (msg, timeoutMs) => this.handler!({ kind: 'peer', id: peer }, msg, timeoutMs),
      onProtocolError: (err) => this.opts.log.warn({ peer }, `closing link: ${err.message}`),
      meter: this.meter,
    });
    this.links.set(peer, link);
    const onMessage = (data: Buffer): void => {
      if (!this.blocked.has(peer)) link.receive(data);
    };
    if (attach) attach(onMessage);
    else ws.on('message', onMessage);
    ws.on('close', (code: number) => {
      link.closed(`connection closed (${code})`);
      if (this.links.get(peer) === link) {
        this.links.delete(peer);
        this.emit(peer, false);
        const member = this.opts.members.find((m) => m.id === peer);
        if (member && peer > this.self && !this.stopping) this.dialLoop(member, 0);
      }
    });
    this.emit(peer, true);
  }

  // ---- dialing ----

  private dialLoop(member: Member, attempt: number): void {
    if (this.stopping) return;
    dial({
      url: member.url,
      role: 'peer',
      secret: this.opts.secret,
      node: this.self,
      fp: this.opts.fingerprint,
      maxPayload: this.opts.maxPayload,
    }).then(
      (dialed) => {
        if (this.stopping) return void dialed.ws.terminate();
        if (dialed.hello.node !== member.id) {
          this.opts.log.error({ peer: member.id, url: member.url }, `expected node ${member.id} at ${member.url} but found ${dialed.hello.node}`);
          dialed.ws.terminate();
          return this.retry(member, attempt);
        }
        this.attachPeer(member.id, dialed.ws, dialed.attach);
      },
      (err: NexusError) => {
        // Refusals are configuration problems: say so loudly, but keep trying (it may be fixed).
        if (err.code !== ErrorCodes.UNREACHABLE || attempt === 0)
          this.opts.log[err.code === ErrorCodes.UNREACHABLE ? 'debug' : 'error']({ peer: member.id, code: err.code }, err.message);
        this.retry(member, attempt);
      },
    );
  }

  private retry(member: Member, attempt: number): void {
    if (this.stopping) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.dialTimers.set(
      member.id,
      this.opts.clock.setTimeout(() => {
        this.dialTimers.delete(member.id);
        this.dialLoop(member, attempt + 1);
      }, delay),
    );
  }

  private emit(peer: string, up: boolean): void {
    for (const l of this.listeners) l(peer, up);
  }
}
