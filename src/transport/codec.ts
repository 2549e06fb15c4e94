// Wire encoding: MessagePack via msgpackr (binary-safe, no base64 for values, and measured faster
// than JSON; see docs/adr/001-wire-codec.md). Frames are small arrays: [kind, id, body, extra].

import { Packr } from 'msgpackr';
import { ErrorCodes, NexusError, type WireError } from '../core/errors.js';
import { describeValue, validateRequest, type Frame, type Request } from './protocol.js';

// Plain maps, no record extension: a peer must never depend on shared structure state.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

const REQ = 0;
const RES_OK = 1;
const RES_ERR = 2;

export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes any MessagePack value; garbage becomes BAD_FRAME, never an exception of another kind. */
export function decode(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (e) {
    throw new NexusError(ErrorCodes.BAD_FRAME, `undecodable frame (${(e as Error).message.slice(0, 80)})`);
  }
}

export function encodeRequest(id: number, msg: Request, timeoutMs: number): Buffer {
  return packr.pack([REQ, id, msg, Math.max(1, Math.round(timeoutMs))]);
}

export function encodeReply(id: number, body: unknown): Buffer {
  return packr.pack([RES_OK, id, body]);
}

export function encodeError(id: number, error: WireError): Buffer {
  return packr.pack([RES_ERR, id, error]);
}

/**
 * Splits one WebSocket message into its frames: a link may send several frames, concatenated, in
 * one message (see Link: one message per link per event-loop turn). Undecodable bytes throw
 * BAD_FRAME; the caller closes the link, since nothing after them can be trusted.
 */
export function splitFrames(bytes: Uint8Array): unknown[] {
  try {
    return packr.unpackMultiple(bytes) as unknown[];
  } catch (e) {
    throw new NexusError(ErrorCodes.BAD_FRAME, `undecodable frame (${(e as Error).message.slice(0, 80)})`);
  }
}

/**
 * Decodes and validates a frame. A request whose envelope is readable but whose message is not
 * valid comes back as `{ kind: 'bad', id, error }` so the receiver can answer that request id.
 */
export function decodeFrame(bytes: Uint8Array): Frame | { kind: 'bad'; id: number | null; error: NexusError } {
  return parseFrame(decode(bytes));
}

/** Validates one decoded frame value (see decodeFrame). */
export function parseFrame(raw: unknown): Frame | { kind: 'bad'; id: number | null; error: NexusError } {
  if (!Array.isArray(raw) || raw.length < 3 || !Number.isSafeInteger(raw[1]))
    return { kind: 'bad', id: null, error: new NexusError(ErrorCodes.BAD_FRAME, 'frame is not [kind, id, body]') };
  const [kind, id, body, extra] = raw as [unknown, number, unknown, unknown];
  switch (kind) {
    case REQ: {
      try {
        const msg = validateRequest(body);
        const timeoutMs = typeof extra === 'number' && extra > 0 ? extra : 5000;
        return { kind: 'req', id, msg, timeoutMs };
      } catch (e) {
        return { kind: 'bad', id, error: NexusError.from(e) };
      }
    }
    case RES_OK:
      return { kind: 'res', id, ok: true, body };
    case RES_ERR: {
      const err = body as WireError;
      if (typeof err !== 'object' || err === null || typeof err.code !== 'string' || typeof err.message !== 'string')
        return { kind: 'bad', id: null, error: new NexusError(ErrorCodes.BAD_FRAME, 'error reply is malformed') };
      return { kind: 'res', id, ok: false, error: { code: err.code, message: err.message } };
    }
    default:
      return { kind: 'bad', id: null, error: new NexusError(ErrorCodes.BAD_FRAME, `unknown frame kind ${describeValue(kind)}`) };
  }
}
