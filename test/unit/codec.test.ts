// The wire codec and message validation (src/transport/codec.ts, src/transport/protocol.ts),
// tested without a socket as ws tests its frame parser. Pins down: every request type, reply and
// error survives encodeRequest/encodeReply/encodeError -> decodeFrame; and untrusted input —
// random bytes, truncated frames, unknown frame kinds, unknown message types, wrong field types —
// only ever yields `{ kind: 'bad' }` carrying a BAD_FRAME error, or a thrown BAD_FRAME NexusError,
// never another exception type (a link answers or closes; a node never crashes on input).

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import { decode, decodeFrame, encode, encodeError, encodeReply, encodeRequest } from '../../src/transport/codec.js';
import { validateRequest, type Request } from '../../src/transport/protocol.js';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

/** Byte arrays come back as Buffers: compare them as plain byte lists. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return { bytes: [...x] };
  if (Array.isArray(x)) return x.map(plain);
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

type Decoded = ReturnType<typeof decodeFrame>;

/** Decodes untrusted bytes: the only acceptable outcomes are a frame, a bad frame or a BAD_FRAME throw. */
function decodeUntrusted(b: Uint8Array): Decoded | 'threw' {
  let out: Decoded;
  try {
    out = decodeFrame(b);
  } catch (e) {
    expect(e).toBeInstanceOf(NexusError);
    expect((e as NexusError).code).toBe(ErrorCodes.BAD_FRAME);
    return 'threw';
  }
  if (out.kind === 'bad') {
    expect(out.error).toBeInstanceOf(NexusError);
    expect(out.error.code).toBe(ErrorCodes.BAD_FRAME);
  }
  return out;
}

/** A request frame whose envelope is fine but whose message is refused, answered by request id. */
function expectBadRequest(body: unknown, id = 7): NexusError {
  const out = decodeUntrusted(encode([0, id, body, 1000]));
  expect(out).not.toBe('threw');
  const frame = out as Decoded;
  expect(frame.kind).toBe('bad');
  if (frame.kind !== 'bad') throw new Error('unreachable');
  expect(frame.id).toBe(id);
  return frame.error;
}

const everyRequest: Request[] = [
  { t: 'put', key: 'k', value: bytes(1, 2, 3) },
  { t: 'put', key: 'k', value: null }, // a delete
  { t: 'put', key: 'ключ', value: new Uint8Array(0), ctx: 'c1.kA', w: 'quorum', strict: true, timeoutMs: 250, fwd: true },
  { t: 'put', key: 'k', value: bytes(0, 255), w: 2 },
  { t: 'put', key: 'k', value: bytes(9), w: '3' as never }, // digit strings pass too (the CLI sends them)
  { t: 'get', key: 'k' },
  { t: 'get', key: 'k', r: 'all', strict: false, timeoutMs: 1 },
  { t: 'get', key: 'k', r: 1 },
  { t: 'status' },
  { t: 'info' },
  { t: 'rput', key: 'k', partition: 12, obj: bytes(0x92, 0x90, 0x90) },
  { t: 'rget', key: 'k' },
];

describe('round trips', () => {
  it('carries every request type through encodeRequest/decodeFrame', () => {
    for (const [i, msg] of everyRequest.entries()) {
      const frame = decodeFrame(encodeRequest(i + 1, msg, 1500));
      expect(frame.kind).toBe('req');
      if (frame.kind !== 'req') continue;
      expect(frame.id).toBe(i + 1);
      expect(frame.timeoutMs).toBe(1500);
      expect(plain(frame.msg)).toEqual(plain(msg));
    }
  });

  it('covers every request type the protocol defines', () => {
    expect(new Set(everyRequest.map((r) => r.t))).toEqual(new Set(['put', 'get', 'status', 'info', 'rput', 'rget']));
  });

  it('rounds the time budget to at least 1 ms, and defaults a missing one to 5000 ms', () => {
    const msg: Request = { t: 'status' };
    const at = (timeoutMs: number): number => {
      const f = decodeFrame(encodeRequest(1, msg, timeoutMs));
      return f.kind === 'req' ? f.timeoutMs : NaN;
    };
    expect(at(0)).toBe(1);
    expect(at(-50)).toBe(1);
    expect(at(0.2)).toBe(1);
    expect(at(1234.6)).toBe(1235);
    const missing = decodeFrame(encode([0, 1, msg]));
    expect(missing.kind === 'req' && missing.timeoutMs).toBe(5000);
    const junk = decodeFrame(encode([0, 1, msg, 'soon']));
    expect(junk.kind === 'req' && junk.timeoutMs).toBe(5000);
  });

  it('round-trips random put requests', () => {
    const putArb = fc.record(
      {
        t: fc.constant('put' as const),
        key: fc.string({ minLength: 1, maxLength: 64 }),
        value: fc.option(fc.uint8Array({ maxLength: 256 }), { nil: null }),
        ctx: fc.string(),
        w: fc.constantFrom('one' as const, 'quorum' as const, 'all' as const, 1, 2, 3),
        strict: fc.boolean(),
        timeoutMs: fc.integer({ min: 1, max: 60_000 }),
        fwd: fc.boolean(),
      },
      { requiredKeys: ['t', 'key', 'value'] },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), putArb, (id, msg) => {
        const frame = decodeFrame(encodeRequest(id, msg, 100));
        expect(frame.kind).toBe('req');
        if (frame.kind === 'req') {
          expect(frame.id).toBe(id);
          expect(plain(frame.msg)).toEqual(plain(msg));
        }
      }),
    );
  });

  it('carries replies of every shape', () => {
    const bodies: unknown[] = [
      { ctx: 'c1.kA' },
      { found: true, values: [bytes(1), bytes(2, 3)], ctx: 'c1.kA', siblings: 2 },
      { found: false, values: [], ctx: '', siblings: 0 },
      {},
      { obj: null },
      { obj: bytes(0x92, 0x90, 0x90) },
      { keys: 3, pid: 1234, readRepairs: 0 },
      {
        node: 'a',
        nodes: [{ id: 'a', url: 'ws://127.0.0.1:7000', state: 'up', partitions: 64, keys: null, hintsPending: 0 }],
        n: 3,
        partitions: 64,
        ringEpoch: 1,
      },
    ];
    for (const [i, body] of bodies.entries()) {
      const frame = decodeFrame(encodeReply(i, body));
      expect(frame).toMatchObject({ kind: 'res', id: i, ok: true });
      if (frame.kind === 'res' && frame.ok) expect(plain(frame.body)).toEqual(plain(body));
    }
  });

  it('carries error replies', () => {
    for (const code of Object.values(ErrorCodes)) {
      const frame = decodeFrame(encodeError(42, { code, message: `it failed: ${code}` }));
      expect(frame).toEqual({ kind: 'res', id: 42, ok: false, error: { code, message: `it failed: ${code}` } });
    }
    // A NexusError's wire form round-trips to an equal error.
    const e = new NexusError(ErrorCodes.QUORUM_NOT_MET, 'quorum not met: 1 of 2 required acks');
    const frame = decodeFrame(encodeError(1, e.toWire()));
    if (frame.kind !== 'res' || frame.ok) throw new Error('expected an error reply');
    const back = NexusError.fromWire(frame.error);
    expect(back.code).toBe(e.code);
    expect(back.message).toBe(e.message);
  });
});

describe('untrusted bytes', () => {
  it('turns random bytes into a bad frame or a BAD_FRAME error, never another exception', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 128 }), (b) => void decodeUntrusted(b)), { numRuns: 2000 });
  });

  it('turns random bytes behind a valid frame header into a bad frame or a BAD_FRAME error', () => {
    // 0x94 = array of 4, then kind and id: the body and the rest are garbage.
    const header = fc.constantFrom(bytes(0x94, 0x00, 0x01), bytes(0x93, 0x01, 0x01), bytes(0x93, 0x02, 0x01));
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 64 }), (h, rest) => void decodeUntrusted(Buffer.concat([h, rest]))),
      { numRuns: 2000 },
    );
  });

  it('turns random decoded values in any frame position into a frame, a bad frame or a BAD_FRAME error', () => {
    const kindArb = fc.oneof(fc.constantFrom(0, 1, 2), fc.anything());
    fc.assert(
      fc.property(kindArb, fc.oneof(fc.nat(), fc.anything()), fc.anything(), fc.anything(), (kind, id, body, extra) => {
        let b: Buffer;
        try {
          b = encode([kind, id, body, extra]);
        } catch {
          return; // not encodable: cannot arrive on the wire
        }
        void decodeUntrusted(b);
      }),
      { numRuns: 1000 },
    );
  });

  it('turns random request bodies into a request or a bad frame with the request id', () => {
    const bodyArb = fc.oneof(
      fc.anything(),
      fc.record(
        {
          t: fc.constantFrom('put', 'get', 'status', 'info', 'rput', 'rget', 'nope'),
          key: fc.anything(),
          value: fc.anything(),
          ctx: fc.anything(),
          w: fc.anything(),
          r: fc.anything(),
          strict: fc.anything(),
          timeoutMs: fc.anything(),
          fwd: fc.anything(),
          partition: fc.anything(),
          obj: fc.anything(),
        },
        { requiredKeys: ['t'] },
      ),
    );
    fc.assert(
      fc.property(bodyArb, (body) => {
        let b: Buffer;
        try {
          b = encode([0, 9, body, 100]);
        } catch {
          return;
        }
        const out = decodeUntrusted(b);
        expect(out).not.toBe('threw');
        expect((out as Decoded).id).toBe(9);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses every truncation of a valid frame', () => {
    const frames = [
      ...everyRequest.map((m, i) => encodeRequest(i, m, 1000)),
      encodeReply(5, { found: true, values: [bytes(1, 2, 3)], ctx: 'c1.kA', siblings: 1 }),
      encodeError(6, { code: 'TIMEOUT', message: 'too slow' }),
    ];
    for (const f of frames) {
      for (let len = 0; len < f.length; len++) {
        const out = decodeUntrusted(f.subarray(0, len));
        // A prefix of a frame is never mistaken for a whole request or reply.
        if (out !== 'threw') expect(out.kind).toBe('bad');
      }
    }
  });

  it('refuses trailing bytes after a frame', () => {
    const f = Buffer.concat([encodeRequest(1, { t: 'status' }, 10), bytes(0x00)]);
    expect(decodeUntrusted(f)).toBe('threw');
  });

  it('refuses unknown MessagePack extensions with BAD_FRAME', () => {
    expect(decodeUntrusted(bytes(0xd4, 0x05, 0x00))).toBe('threw');
    expect(() => decode(bytes(0xd4, 0x05, 0x00))).toThrow(NexusError);
  });

  it('refuses frames that are not [kind, id, body]', () => {
    for (const v of [null, 1, 'frame', {}, { kind: 0, id: 1 }, [], [0], [0, 1], [0, 'id', {}], [0, 1.5, {}], [0, null, {}]]) {
      const out = decodeUntrusted(encode(v));
      expect(out).not.toBe('threw');
      expect(out).toMatchObject({ kind: 'bad', id: null });
    }
  });

  it('refuses unknown frame kinds, naming the kind', () => {
    for (const kind of [3, 99, -1, 'req', null, true, 0.5]) {
      const out = decodeUntrusted(encode([kind, 1, {}]));
      expect(out).toMatchObject({ kind: 'bad', id: null });
      if (out !== 'threw' && out.kind === 'bad') expect(out.error.message).toContain(String(kind));
    }
  });

  it('refuses an unknown kind that cannot be turned into a string (a map with its own toString)', () => {
    // MessagePack maps decode to plain objects, so a peer controls their keys.
    const out = decodeUntrusted(encode([{ toString: 1 }, 1, {}]));
    expect(out).toMatchObject({ kind: 'bad', id: null });
  });

  it('refuses malformed error replies', () => {
    for (const body of ['oops', null, 5, [], { code: 5, message: 'x' }, { code: 'X' }, { message: 'x' }]) {
      const out = decodeUntrusted(encode([2, 3, body]));
      expect(out).not.toBe('threw');
      expect((out as Decoded).kind).toBe('bad');
    }
  });
});

describe('request validation', () => {
  it('refuses an unknown message type, naming it', () => {
    expect(expectBadRequest({ t: 'frobnicate', key: 'k' }).message).toContain('frobnicate');
    expect(expectBadRequest({ t: 'PUT', key: 'k', value: null }).message).toContain('PUT');
    expect(expectBadRequest({ key: 'k' }).message).toContain('unknown message type');
    expect(expectBadRequest({ t: 42 }).message).toContain('42');
    // Prototype names are not message types.
    expect(expectBadRequest({ t: 'constructor' }).message).toContain('constructor');
    expect(expectBadRequest({ t: 'toString' }).message).toContain('toString');
  });

  it('refuses a message type that cannot be turned into a string with BAD_FRAME', () => {
    // The error message names the type with String(t), which throws a TypeError for such maps.
    expectBadRequest({ t: { toString: 1 } });
    expectBadRequest({ t: { valueOf: 1, toString: 2 } });
  });

  it('refuses bodies that are not objects', () => {
    for (const body of [null, 1, 'put', [], [{ t: 'status' }], bytes(1, 2), true]) expectBadRequest(body);
  });

  it('refuses fields of the wrong type, naming the field where it is optional', () => {
    const cases: [unknown, string][] = [
      [{ t: 'put', value: null }, 'key'],
      [{ t: 'put', key: 5, value: null }, 'key'],
      [{ t: 'put', key: 'k' }, 'value'],
      [{ t: 'put', key: 'k', value: 'text' }, 'value'],
      [{ t: 'put', key: 'k', value: [1, 2] }, 'value'],
      [{ t: 'put', key: 'k', value: null, ctx: 5 }, 'ctx'],
      [{ t: 'put', key: 'k', value: null, ctx: bytes(1) }, 'ctx'],
      [{ t: 'put', key: 'k', value: null, w: 'many' }, 'w'],
      [{ t: 'put', key: 'k', value: null, w: '2x' }, 'w'],
      [{ t: 'put', key: 'k', value: null, w: true }, 'w'],
      [{ t: 'put', key: 'k', value: null, strict: 'yes' }, 'strict'],
      [{ t: 'put', key: 'k', value: null, timeoutMs: 0 }, 'timeoutMs'],
      [{ t: 'put', key: 'k', value: null, timeoutMs: -5 }, 'timeoutMs'],
      [{ t: 'put', key: 'k', value: null, timeoutMs: '100' }, 'timeoutMs'],
      [{ t: 'put', key: 'k', value: null, fwd: 1 }, 'fwd'],
      [{ t: 'get' }, 'key'],
      [{ t: 'get', key: ['k'] }, 'key'],
      [{ t: 'get', key: 'k', r: 'some' }, 'r'],
      [{ t: 'get', key: 'k', r: {} }, 'r'],
      [{ t: 'get', key: 'k', strict: 0 }, 'strict'],
      [{ t: 'get', key: 'k', timeoutMs: 'soon' }, 'timeoutMs'],
      [{ t: 'rput', key: 'k', partition: 1.5, obj: bytes(1) }, 'partition'],
      [{ t: 'rput', key: 'k', partition: '1', obj: bytes(1) }, 'partition'],
      [{ t: 'rput', key: 'k', partition: 1, obj: 'bytes' }, 'obj'],
      [{ t: 'rput', partition: 1, obj: bytes(1) }, 'key'],
      [{ t: 'rget' }, 'key'],
      [{ t: 'rget', key: null }, 'key'],
    ];
    for (const [body, field] of cases) {
      const e = expectBadRequest(body);
      expect(e.message).toContain(field);
    }
  });

  it('accepts null for optional fields (MessagePack has no undefined)', () => {
    const msg = validateRequest({ t: 'put', key: 'k', value: null, ctx: null, w: null, strict: null, timeoutMs: null, fwd: null });
    expect(msg.t).toBe('put');
  });

  it('throws only BAD_FRAME NexusErrors when validating directly', () => {
    fc.assert(
      fc.property(fc.anything(), (raw) => {
        try {
          validateRequest(raw);
        } catch (e) {
          expect(e).toBeInstanceOf(NexusError);
          expect((e as NexusError).code).toBe(ErrorCodes.BAD_FRAME);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
