// Connection handshake: protocol version, cluster fingerprint and a mutual challenge–response over
// the shared cluster secret (HMAC-SHA256; the secret itself never crosses the wire).
//
//   server -> hello   {v, node, fp, nonce}
//   dialer -> auth    {v, role, node?, fp?, proof = HMAC(secret, "dialer" | nonce | role | node), nonce'}
//   server -> welcome {proof = HMAC(secret, "server" | nonce')}   or   refused {error}
//
// With no secret configured both sides use the empty key, so a client that brings a secret to an
// open cluster (or none to a closed one) fails the same clear way.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import WebSocket from 'ws';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { decode, encode } from './codec.js';
import { PROTOCOL_VERSION, type Auth, type Hello, type Refused, type Welcome } from './protocol.js';

export const HANDSHAKE_TIMEOUT_MS = 5000;

export function newNonce(): Uint8Array {
  return randomBytes(16);
}

export function dialerProof(secret: string, nonce: Uint8Array, role: string, node: string): Buffer {
  return createHmac('sha256', secret).update('nexus-dialer\0').update(nonce).update(`\0${role}\0${node}`).digest();
}

export function serverProof(secret: string, nonce: Uint8Array): Buffer {
  return createHmac('sha256', secret).update('nexus-server\0').update(nonce).digest();
}

export function proofMatches(expected: Buffer, got: unknown): boolean {
  return got instanceof Uint8Array && got.length === expected.length && timingSafeEqual(expected, got);
}

export function isHello(x: unknown): x is Hello {
  const o = x as Hello;
  return typeof o === 'object' && o !== null && o.t === 'hello' && typeof o.v === 'number' && typeof o.node === 'string' && typeof o.fp === 'string' && o.nonce instanceof Uint8Array;
}

export function isAuth(x: unknown): x is Auth {
  const o = x as Auth;
  return (
    typeof o === 'object' && o !== null && o.t === 'auth' && typeof o.v === 'number' && (o.role === 'peer' || o.role === 'client') &&
    o.proof instanceof Uint8Array && o.nonce instanceof Uint8Array
  );
}

export interface DialOptions {
  url: string;
  role: 'peer' | 'client';
  secret: string;
  /** For peers: our node id and cluster fingerprint, checked by the server. */
  node?: string;
  fp?: string;
  maxPayload: number;
  timeoutMs?: number;
}

export interface Dialed {
  ws: WebSocket;
  hello: Hello;
  /**
   * Hands the socket's messages to `onMessage`, first replaying any that arrived right behind the
   * welcome (the other end may send as soon as it has welcomed us, in the same socket read).
   */
  attach(onMessage: (data: Buffer) => void): void;
}

/** Opens a WebSocket and completes the handshake; rejects with a NexusError naming the problem. */
export function dial(opts: DialOptions): Promise<Dialed> {
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  return new Promise<Dialed>((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(opts.url, { maxPayload: opts.maxPayload, perMessageDeflate: false, handshakeTimeout: timeoutMs });
    ws.binaryType = 'nodebuffer';
    let hello: Hello | null = null;
    let myNonce: Uint8Array | null = null;
    const fail = (err: NexusError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new NexusError(ErrorCodes.UNREACHABLE, `${opts.url}: handshake timed out after ${timeoutMs} ms`)), timeoutMs);
    ws.on('error', (e: Error) => fail(new NexusError(ErrorCodes.UNREACHABLE, `${opts.url}: ${e.message}`)));
    ws.on('close', (code: number, reason: Buffer) =>
      fail(new NexusError(ErrorCodes.UNREACHABLE, `${opts.url}: connection closed during handshake (${code} ${reason.toString()})`)),
    );
    ws.on('message', (data: Buffer) => {
      let msg: unknown;
      try {
        msg = decode(data);
      } catch (e) {
        return fail(NexusError.from(e));
      }
      if (hello === null) {
        if (!isHello(msg)) return fail(new NexusError(ErrorCodes.INCOMPATIBLE, `${opts.url} is not a Nexus node (unexpected first message)`));
        if (msg.v !== PROTOCOL_VERSION)
          return fail(new NexusError(ErrorCodes.INCOMPATIBLE, `${opts.url} speaks protocol version ${msg.v}; this build speaks ${PROTOCOL_VERSION}`));
        if (opts.role === 'peer' && opts.fp !== undefined && msg.fp !== opts.fp)
          return fail(new NexusError(ErrorCodes.INCOMPATIBLE, `${opts.url} (node ${msg.node}) has cluster settings fingerprint ${msg.fp}, ours is ${opts.fp}: members, partitions or N differ`));
        hello = msg;
        myNonce = newNonce();
        const auth: Auth = {
          t: 'auth',
          v: PROTOCOL_VERSION,
          role: opts.role,
          proof: dialerProof(opts.secret, msg.nonce, opts.role, opts.node ?? ''),
          nonce: myNonce,
          ...(opts.node !== undefined ? { node: opts.node } : {}),
          ...(opts.fp !== undefined ? { fp: opts.fp } : {}),
        };
        ws.send(encode(auth));
        return;
      }
      const reply = msg as Welcome | Refused;
      if (reply && reply.t === 'refused' && reply.error && typeof reply.error.message === 'string') {
        return fail(NexusError.fromWire(reply.error));
      }
      if (!reply || reply.t !== 'welcome' || !proofMatches(serverProof(opts.secret, myNonce!), reply.proof)) {
        return fail(new NexusError(ErrorCodes.AUTH_FAILED, `authentication failed: ${opts.url} could not prove it knows the cluster secret`));
      }
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners();
      const early: Buffer[] = [];
      const buffer = (d: Buffer): void => void early.push(d);
      ws.on('message', buffer);
      ws.on('error', () => {});
      resolve({
        ws,
        hello,
        attach(onMessage) {
          ws.off('message', buffer);
          ws.on('message', onMessage);
          for (const d of early.splice(0)) onMessage(d);
        },
      });
    });
  });
}
