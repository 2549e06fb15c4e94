// One contract for every Transport: the WebSocket transport (real sockets on 127.0.0.1) and the
// in-memory one must behave alike. A node set is three transports a, b, c plus a way to cut and
// restore the link between two of them: the memory network cuts it directly; for WebSockets each
// dialing pair goes through a small TCP relay that can drop its connections and refuse new ones.
// Everything waits on conditions (polling), never on fixed sleeps.
//
// A second describe covers what only the WebSocket transport has: the handshake (secret,
// fingerprint, membership, version), clients, garbage and oversized frames, and the link bounds.

import { createServer, connect, type Server, type Socket } from 'node:net';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import type { Member } from '../../src/core/config.js';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import { silentLogger, type Logger } from '../../src/core/log.js';
import { decode, encode } from '../../src/transport/codec.js';
import { dial, dialerProof, serverProof } from '../../src/transport/handshake.js';
import { Link } from '../../src/transport/link.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { PROTOCOL_VERSION, type Hello, type Request } from '../../src/transport/protocol.js';
import { freePorts } from '../../src/sim/local-cluster.js';
import type { Origin, RequestHandler, Transport } from '../../src/transport/types.js';
import { WsTransport, type WsTransportOptions } from '../../src/transport/ws.js';

// ---- small helpers ----

const HOST = '127.0.0.1';

/** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Awaits a promise expected to reject and returns the error. */
async function failure(p: Promise<unknown>): Promise<NexusError> {
  const outcome = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome.v)}`);
  expect(outcome.e).toBeInstanceOf(NexusError);
  return outcome.e as NexusError;
}

/** Starts a request whose outcome is checked later, so its rejection is never unhandled. */
function later<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: NexusError }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error: NexusError.from(error) }),
  );
}

/** A pino logger whose records the test can read. */
function capturingLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

// ---- the behaviour every node's handler has ----

interface Echo {
  node: string;
  from: string;
  msg: Request;
  timeoutMs: number;
}

/** What each node has been asked (to know a request arrived before cutting under it). */
type Served = Array<{ node: string; msg: Request }>;

/**
 * The test handler: echoes, except `rget` keys that ask for something else —
 * "hang" never answers, "quorum" throws a NexusError, "crash" throws a plain Error.
 */
function testHandler(self: string, served: Served): RequestHandler {
  return async (origin: Origin, msg: Request, timeoutMs: number) => {
    served.push({ node: self, msg });
    if (msg.t === 'rget') {
      if (msg.key === 'hang') return new Promise<never>(() => {});
      if (msg.key === 'quorum') throw new NexusError(ErrorCodes.QUORUM_NOT_MET, `only 1 of 2 replicas of "quorum" answered on ${self}`);
      if (msg.key === 'crash') throw new Error(`disk on fire at ${self}`);
    }
    const reply: Echo = { node: self, from: origin.kind === 'peer' ? origin.id : `client ${origin.addr}`, msg, timeoutMs };
    return reply;
  };
}

// ---- node sets ----

interface SetHooks {
  /** Builds the handler of a node (called again on restart). */
  handlerFor(id: string): RequestHandler;
  /** Runs on every transport (restarts too) before start(), e.g. to subscribe to link changes. */
  beforeStart?(id: string, t: Transport): void;
}

interface Wiring {
  build(id: string): Transport;
  cut(a: string, b: string): void;
  restore(a: string, b: string): void;
  dispose(): Promise<void>;
}

/** Three transports a, b, c with start/stop/restart and link cuts; close() stops what runs. */
class NodeSet {
  readonly ids = ['a', 'b', 'c'] as const;
  private readonly current = new Map<string, Transport>();
  private readonly running = new Set<string>();

  constructor(
    private readonly wiring: Wiring,
    private readonly hooks: SetHooks,
  ) {}

  t(id: string): Transport {
    const t = this.current.get(id);
    if (!t) throw new Error(`node ${id} was never started`);
    return t;
  }

  async startAll(): Promise<void> {
    for (const id of this.ids) await this.start(id);
  }

  /** Builds a fresh transport for `id` (for WebSockets on the same port) and starts it. */
  async start(id: string): Promise<void> {
    if (this.running.has(id)) throw new Error(`node ${id} is already running`);
    const t = this.wiring.build(id);
    this.current.set(id, t);
    this.hooks.beforeStart?.(id, t);
    await t.start(this.hooks.handlerFor(id));
    this.running.add(id);
  }

  async stop(id: string): Promise<void> {
    if (!this.running.delete(id)) return;
    await this.t(id).stop();
  }

  /** Calls start() again on the very transport object that was stopped. */
  async startAgain(id: string): Promise<void> {
    if (this.running.has(id)) throw new Error(`node ${id} is already running`);
    await this.t(id).start(this.hooks.handlerFor(id));
    this.running.add(id);
  }

  cut(a: string, b: string): void {
    this.wiring.cut(a, b);
  }

  restore(a: string, b: string): void {
    this.wiring.restore(a, b);
  }

  pairs(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const x of this.ids) for (const y of this.ids) if (x !== y && this.running.has(x) && this.running.has(y)) out.push([x, y]);
    return out;
  }

  allConnected(): boolean {
    return this.pairs().every(([x, y]) => this.t(x).isConnected(y));
  }

  async close(): Promise<void> {
    for (const id of [...this.running]) await this.stop(id);
    await this.wiring.dispose();
  }
}

type NodeSetFactory = (hooks: SetHooks) => Promise<NodeSet>;

function memoryNodeSet(hooks: SetHooks): Promise<NodeSet> {
  const net = new MemoryNetwork({ clock: systemClock });
  const ids = ['a', 'b', 'c'];
  return Promise.resolve(
    new NodeSet(
      {
        build: (id) => net.transport(id, ids),
        cut: (a, b) => net.disconnect(a, b),
        restore: (a, b) => net.connect(a, b),
        dispose: async () => {},
      },
      hooks,
    ),
  );
}

/**
 * A TCP relay in front of one node for one dialing peer. cut() drops its connections and refuses
 * new ones until restore(); neither transport can tell it is there.
 */
class Relay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private isCut = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async listen(): Promise<void> {
    const server = createServer((down) => this.relay(down));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    this.port = (server.address() as { port: number }).port;
  }

  cut(): void {
    this.isCut = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.isCut = false;
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private relay(down: Socket): void {
    down.on('error', () => {});
    if (this.isCut) return void down.destroy();
    const up = connect(this.targetPort, HOST);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    up.on('close', () => {
      this.sockets.delete(up);
      down.end();
    });
    down.on('close', () => {
      this.sockets.delete(down);
      up.end();
    });
    this.sockets.add(up).add(down);
    down.pipe(up);
    up.pipe(down);
  }
}

async function wsNodeSet(hooks: SetHooks): Promise<NodeSet> {
  const ids = ['a', 'b', 'c'];
  const ports = new Map<string, number>();
  // One draw for all three: freePorts holds each port until all are found, so none comes twice.
  (await freePorts(ids.length)).forEach((port, i) => ports.set(ids[i]!, port));
  // The node with the smaller id dials: put a relay on each dialing path.
  const relays = new Map<string, Relay>();
  const key = (x: string, y: string): string => (x < y ? `${x}-${y}` : `${y}-${x}`);
  for (const x of ids)
    for (const y of ids)
      if (x < y) {
        const r = new Relay(ports.get(y)!);
        await r.listen();
        relays.set(key(x, y), r);
      }
  const membersFor = (self: string): Member[] =>
    ids.map((id) => ({ id, url: `ws://${HOST}:${id > self ? relays.get(key(self, id))!.port : ports.get(id)!}` }));
  return new NodeSet(
    {
      build: (id) =>
        new WsTransport({
          self: id,
          members: membersFor(id),
          // Member URLs differ per node (relays), so the fingerprint is given, not computed.
          fingerprint: 'contract-fp',
          secret: 'contract-secret',
          host: HOST,
          port: ports.get(id)!,
          maxPayload: 1 << 20,
          maxInFlight: 64,
          maxBufferedBytes: 8 << 20,
          clock: systemClock,
          log: silentLogger(),
        }),
      cut: (a, b) => relays.get(key(a, b))!.cut(),
      restore: (a, b) => relays.get(key(a, b))!.restore(),
      dispose: async () => {
        for (const r of relays.values()) await r.close();
      },
    },
    hooks,
  );
}

// ---- the contract ----

interface LinkEvent {
  node: string;
  peer: string;
  up: boolean;
}

function transportContract(name: string, factory: NodeSetFactory): void {
  describe(`Transport contract: ${name}`, () => {
    let set: NodeSet | null = null;
    let served: Served = [];
    let events: LinkEvent[] = [];

    afterEach(async () => {
      await set?.close();
      set = null;
    });

    async function startSet(extra: Partial<SetHooks> = {}): Promise<NodeSet> {
      served = [];
      events = [];
      set = await factory({
        handlerFor: (id) => testHandler(id, served),
        beforeStart: (id, t) => {
          t.onLinkChange((peer, up) => events.push({ node: id, peer, up }));
          extra.beforeStart?.(id, t);
        },
        ...(extra.handlerFor ? { handlerFor: extra.handlerFor } : {}),
      });
      await set.startAll();
      await waitFor('every node connected to every other', () => set!.allConnected());
      return set;
    }

    const eventsOf = (node: string, peer: string, from = 0): boolean[] =>
      events.slice(from).filter((e) => e.node === node && e.peer === peer).map((e) => e.up);

    it('connects every node to every other', async () => {
      const s = await startSet();
      for (const [x, y] of s.pairs()) expect(s.t(x).isConnected(y)).toBe(true);
      expect(s.t('a').isConnected('nobody')).toBe(false);
    });

    it('carries requests and replies between every pair, in both directions', async () => {
      const s = await startSet();
      for (const [x, y] of s.pairs()) {
        const info = (await s.t(x).request(y, { t: 'info' }, 2000)) as unknown as Echo;
        expect(info).toEqual({ node: y, from: x, msg: { t: 'info' }, timeoutMs: expect.any(Number) });
        expect(info.timeoutMs).toBeGreaterThan(0);
        expect(info.timeoutMs).toBeLessThanOrEqual(2000);
        const key = `key-${x}-${y}-é`;
        const rget = (await s.t(x).request(y, { t: 'rget', key }, 2000)) as unknown as Echo;
        expect(rget).toMatchObject({ node: y, from: x, msg: { t: 'rget', key } });
      }
    });

    it('carries many concurrent requests and matches each reply to its request', async () => {
      const s = await startSet();
      const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
      const replies = await Promise.all(keys.map((key, i) => s.t(s.ids[i % 3]!).request(s.ids[(i + 1) % 3]!, { t: 'rget', key }, 5000)));
      expect(replies.map((r) => ((r as unknown as Echo).msg as { key: string }).key)).toEqual(keys);
    });

    it('delivers a NexusError thrown by the handler with the same code and message', async () => {
      const s = await startSet();
      const err = await failure(s.t('a').request('c', { t: 'rget', key: 'quorum' }, 2000));
      expect(err.code).toBe(ErrorCodes.QUORUM_NOT_MET);
      expect(err.message).toBe('only 1 of 2 replicas of "quorum" answered on c');
      const crash = await failure(s.t('c').request('b', { t: 'rget', key: 'crash' }, 2000));
      expect(crash.code).toBe(ErrorCodes.INTERNAL);
      expect(crash.message).toBe('disk on fire at b');
      // The link is still fine afterwards.
      expect(await s.t('a').request('c', { t: 'info' }, 2000)).toMatchObject({ node: 'c' });
    });

    it('fails a request to an unknown node with UNREACHABLE', async () => {
      const s = await startSet();
      expect((await failure(s.t('a').request('nobody', { t: 'info' }, 2000))).code).toBe(ErrorCodes.UNREACHABLE);
    });

    it('fails a request to a stopped node with UNREACHABLE once its link has closed', async () => {
      const s = await startSet();
      await s.stop('b');
      await waitFor('a and c to see b gone', () => !s.t('a').isConnected('b') && !s.t('c').isConnected('b'));
      for (const x of ['a', 'c']) {
        const started = Date.now();
        const err = await failure(s.t(x).request('b', { t: 'info' }, 5000));
        expect(err.code).toBe(ErrorCodes.UNREACHABLE);
        expect(err.message).toContain('node b');
        expect(Date.now() - started).toBeLessThan(1000); // fails fast, not at the deadline
      }
      // The stopped node's own requests fail too, and the rest of the set still works.
      expect((await failure(s.t('b').request('a', { t: 'info' }, 2000))).code).toBe(ErrorCodes.UNREACHABLE);
      expect(await s.t('a').request('c', { t: 'info' }, 2000)).toMatchObject({ node: 'c' });
    });

    it('fails requests waiting on a node with UNREACHABLE when that node stops, not at their deadline', async () => {
      const s = await startSet();
      const fromA = later(s.t('a').request('b', { t: 'rget', key: 'hang' }, 20_000));
      const fromC = later(s.t('c').request('b', { t: 'rget', key: 'hang' }, 20_000));
      await waitFor('b to be serving both requests', () => served.filter((x) => x.node === 'b' && x.msg.t === 'rget').length === 2);
      const started = Date.now();
      await s.stop('b');
      for (const outcome of await Promise.all([fromA, fromC])) {
        expect(outcome.ok).toBe(false);
        if (!outcome.ok) expect(outcome.error.code).toBe(ErrorCodes.UNREACHABLE);
      }
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('fails a request to a slow handler with TIMEOUT at its deadline, and the link stays usable', async () => {
      const s = await startSet();
      const timeoutMs = 300;
      const started = Date.now();
      const err = await failure(s.t('a').request('b', { t: 'rget', key: 'hang' }, timeoutMs));
      const elapsed = Date.now() - started;
      expect(err.code).toBe(ErrorCodes.TIMEOUT);
      expect(err.message).toContain('b');
      expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 5);
      expect(elapsed).toBeLessThan(timeoutMs + 1000);
      expect(s.t('a').isConnected('b')).toBe(true);
      expect(await s.t('a').request('b', { t: 'info' }, 2000)).toMatchObject({ node: 'b' });
    });

    // BUG (memory transport, src/transport/memory.ts MemoryNetwork.register): when a node registers
    // only the nodes already there are told (other.peerChanged(t.self)); the new node never calls
    // its own peerChanged for them, so a node started after its peers (c here, or any restarted
    // node) reports no "up" for them, while WsTransport reports "up" on both ends of every link.
    it('reports a link as up on both ends when the nodes connect', async () => {
      const s = await startSet();
      for (const [x, y] of s.pairs()) expect(eventsOf(x, y), `${x} sees ${y}`).toEqual([true]);
    });

    it('reports a cut link as down then up again when restored, on both ends and only for that pair', async () => {
      const s = await startSet();
      const mark = events.length;
      s.cut('a', 'b');
      await waitFor('a and b to see their link down', () => !s.t('a').isConnected('b') && !s.t('b').isConnected('a'));
      await waitFor('link-down events', () => eventsOf('a', 'b', mark).length > 0 && eventsOf('b', 'a', mark).length > 0);
      expect(eventsOf('a', 'b', mark)).toEqual([false]);
      expect(eventsOf('b', 'a', mark)).toEqual([false]);
      expect(s.t('a').isConnected('c')).toBe(true);
      expect(s.t('c').isConnected('b')).toBe(true);
      expect((await failure(s.t('a').request('b', { t: 'info' }, 2000))).code).toBe(ErrorCodes.UNREACHABLE);
      expect(await s.t('a').request('c', { t: 'info' }, 2000)).toMatchObject({ node: 'c' });

      s.restore('a', 'b');
      await waitFor('a and b to reconnect', () => s.t('a').isConnected('b') && s.t('b').isConnected('a'));
      await waitFor('link-up events', () => eventsOf('a', 'b', mark).length > 1 && eventsOf('b', 'a', mark).length > 1);
      expect(eventsOf('a', 'b', mark)).toEqual([false, true]);
      expect(eventsOf('b', 'a', mark)).toEqual([false, true]);
      expect(events.slice(mark).every((e) => (e.node === 'a' && e.peer === 'b') || (e.node === 'b' && e.peer === 'a'))).toBe(true);
      expect(await s.t('b').request('a', { t: 'info' }, 2000)).toMatchObject({ node: 'a', from: 'b' });
    });

    it('fails a request waiting on a link with UNREACHABLE when the link is cut', async () => {
      const s = await startSet();
      const pending = later(s.t('a').request('b', { t: 'rget', key: 'hang' }, 20_000));
      await waitFor('b to be serving the request', () => served.some((x) => x.node === 'b' && x.msg.t === 'rget'));
      s.cut('a', 'b');
      const outcome = await pending;
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) expect(outcome.error.code).toBe(ErrorCodes.UNREACHABLE);
    });

    it('reconnects a stopped node that is started again', async () => {
      const s = await startSet();
      await s.stop('b');
      await waitFor('a and c to see b gone', () => !s.t('a').isConnected('b') && !s.t('c').isConnected('b'));
      const mark = events.length;
      await s.start('b');
      await waitFor('b reconnected to a and c', () => s.allConnected());
      for (const [x, y] of s.pairs()) expect(await s.t(x).request(y, { t: 'info' }, 2000)).toMatchObject({ node: y, from: x });
      await waitFor('a and c to report b up', () => eventsOf('a', 'b', mark).includes(true) && eventsOf('c', 'b', mark).includes(true));
    });

    // BUG (WsTransport, src/transport/ws.ts): stop() sets `this.stopping = true` (line 75) and
    // start() never clears it, so start() on a stopped WsTransport resolves "listening" but then
    // terminates every incoming connection (accept, line 105) and never dials (dialLoop, line 193):
    // the node is silently cut off. MemoryTransport.start() after stop() works. (NexusNode builds a
    // fresh transport per start today, so this is latent; either reset the flag or make start()
    // refuse with an error.)
    it('reconnects a stopped transport when start() is called on it again', async () => {
      const s = await startSet();
      await s.stop('b');
      await waitFor('a and c to see b gone', () => !s.t('a').isConnected('b') && !s.t('c').isConnected('b'));
      await s.startAgain('b');
      await waitFor('b reconnected to a and c', () => s.allConnected(), 8000);
      expect(await s.t('a').request('b', { t: 'info' }, 2000)).toMatchObject({ node: 'b', from: 'a' });
      expect(await s.t('b').request('c', { t: 'info' }, 2000)).toMatchObject({ node: 'c', from: 'b' });
    });

    // BUG (WsTransport + dial, src/transport/handshake.ts lines 123-124 and ws.ts line 210): on
    // "welcome" dial() removes every listener and resolves; the dialing node attaches its 'message'
    // listener in a promise callback, a microtask later. The accepting node attaches its link and
    // reports "up" right after sending welcome, so a frame it sends at once (here from the up
    // callback) can reach the dialer in the same socket read as the welcome; ws (allowSynchronous-
    // Events defaults to true) then emits it synchronously with no listener and it is lost: the
    // request from the accepting side (b -> a, c -> a, c -> b) waits out its timeout. Within one
    // process the two frames always share a read, so this fails every time here; across processes
    // it is a race on every new link.
    it('answers a request sent from inside the link-up callback', async () => {
      const outcomes: Array<Promise<{ ok: boolean; what: string; error?: string }>> = [];
      const s = await startSet({
        beforeStart: (id, t) =>
          t.onLinkChange((peer, up) => {
            if (!up) return;
            outcomes.push(
              later(t.request(peer, { t: 'info' }, 3000)).then((o) => ({ ok: o.ok, what: `${id} -> ${peer}`, ...(o.ok ? {} : { error: `${o.error.code}: ${o.error.message}` }) })),
            );
          }),
      });
      expect(s.allConnected()).toBe(true);
      const settled = await Promise.all(outcomes);
      expect(settled.length).toBeGreaterThan(0);
      expect(settled.filter((o) => !o.ok)).toEqual([]);
    });
  });
}

transportContract('MemoryTransport', memoryNodeSet);
transportContract('WsTransport', wsNodeSet);

// ---- WebSocket only: handshake, clients, garbage, bounds ----

describe('WsTransport only', () => {
  const SECRET = 'right-secret';
  const FP = 'fp-1';
  const transports: WsTransport[] = [];
  const sockets: WebSocket[] = [];
  const servers: WebSocketServer[] = [];

  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    for (const t of transports.splice(0)) await t.stop();
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  });

  interface NodeOpts extends Partial<WsTransportOptions> {
    handler?: RequestHandler;
  }

  /** Three members on free ports; `over` tweaks each node's options. */
  async function cluster(over: Record<string, NodeOpts> = {}, start: string[] = ['a', 'b', 'c']) {
    const ids = ['a', 'b', 'c'];
    const members: Member[] = [];
    const ports = await freePorts(ids.length); // one draw: no port twice
    ids.forEach((id, i) => members.push({ id, url: `ws://${HOST}:${ports[i]!}` }));
    const served: Served = [];
    const events: LinkEvent[] = [];
    const nodes = new Map<string, WsTransport>();
    for (const id of start) {
      const { handler, ...opts } = over[id] ?? {};
      const t = new WsTransport({
        self: id,
        members,
        fingerprint: FP,
        secret: SECRET,
        host: HOST,
        port: Number(new URL(members.find((m) => m.id === id)!.url).port),
        maxPayload: 1 << 20,
        maxInFlight: 64,
        maxBufferedBytes: 8 << 20,
        clock: systemClock,
        log: silentLogger(),
        ...opts,
      });
      transports.push(t);
      nodes.set(id, t);
      t.onLinkChange((peer, up) => events.push({ node: id, peer, up }));
      await t.start(handler ?? testHandler(id, served));
    }
    const url = (id: string): string => members.find((m) => m.id === id)!.url;
    /** True if any link involving `id` was ever reported, up or down. */
    const everLinked = (id: string): boolean => events.some((e) => e.node === id || e.peer === id);
    return { nodes, members, served, url, everLinked, node: (id: string) => nodes.get(id)! };
  }

  /** An authenticated client connection wrapped in a Link, plus its raw socket. */
  async function client(url: string, secret = SECRET, maxPayload = 64 << 20) {
    const { ws, hello } = await dial({ url, role: 'client', secret, maxPayload });
    sockets.push(ws);
    const link = new Link(
      { send: (b) => ws.send(b, { binary: true }), bufferedAmount: () => ws.bufferedAmount, close: (c, r) => ws.close(c, r) },
      {
        label: `node at ${url}`,
        clock: systemClock,
        maxInFlight: 100,
        maxBufferedBytes: 64 << 20,
        onRequest: async () => {
          throw new NexusError(ErrorCodes.BAD_FRAME, 'clients serve no requests');
        },
      },
    );
    const received: unknown[] = [];
    let closeCode: number | null = null;
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => {
      try {
        received.push(decode(data));
      } catch {
        received.push('undecodable');
      }
      link.receive(data);
    });
    ws.on('close', (code: number) => {
      closeCode = code;
      link.closed(`connection closed (${code})`);
    });
    return { ws, hello, link, received, closeCode: () => closeCode };
  }

  /**
   * A raw handshake against a node: reads its hello, sends what `auth` builds from it, and
   * returns the node's answer and the close code once it closes (or the answer, if it stays open).
   */
  async function rawHandshake(url: string, auth: (hello: Hello) => Buffer): Promise<{ answer: unknown; closeCode: number | null }> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.on('error', () => {});
    const messages: unknown[] = [];
    let closeCode: number | null = null;
    ws.on('close', (code: number) => (closeCode = code));
    ws.on('message', (data: Buffer) => {
      const msg = decode(data);
      messages.push(msg);
      if (messages.length === 1) ws.send(auth(msg as Hello));
    });
    await waitFor('the node to answer the handshake', () => messages.length >= 2 || closeCode !== null);
    if ((messages[1] as { t?: string } | undefined)?.t === 'refused') await waitFor('the node to close a refused connection', () => closeCode !== null);
    return { answer: messages[1], closeCode };
  }

  const peerAuth = (hello: Hello, fields: { secret?: string; node?: string; fp?: string; v?: number; role?: 'peer' | 'client' } = {}): Buffer => {
    const role = fields.role ?? 'peer';
    const node = fields.node ?? 'a';
    return encode({
      t: 'auth',
      v: fields.v ?? PROTOCOL_VERSION,
      role,
      node,
      fp: fields.fp ?? FP,
      proof: dialerProof(fields.secret ?? SECRET, hello.nonce, role, node),
      nonce: new Uint8Array(16),
    });
  };

  describe('handshake', () => {
    it('refuses a member that does not know the cluster secret, on both ends', async () => {
      const a = capturingLogger();
      const c = capturingLogger();
      const cl = await cluster({ a: { log: a.log }, c: { log: c.log, secret: 'wrong-secret' } });
      await waitFor('a and b to connect', () => cl.node('a').isConnected('b') && cl.node('b').isConnected('a'));
      await waitFor('a to log the refusal', () => a.records.some((r) => r.peer === 'c' && r.code === ErrorCodes.AUTH_FAILED));
      await waitFor('c to log that it refused a', () => c.records.some((r) => r.code === ErrorCodes.AUTH_FAILED && String(r.msg).includes('authentication failed')));
      for (const [x, y] of [['a', 'c'], ['c', 'a'], ['b', 'c'], ['c', 'b']] as const) expect(cl.node(x).isConnected(y), `${x} -> ${y}`).toBe(false);
      expect(cl.everLinked('c')).toBe(false);
      expect((await failure(cl.node('a').request('c', { t: 'info' }, 1000))).code).toBe(ErrorCodes.UNREACHABLE);
      expect(cl.served.some((x) => x.node === 'c')).toBe(false);
    });

    it('refuses a member with another cluster fingerprint', async () => {
      const a = capturingLogger();
      const cl = await cluster({ a: { log: a.log }, c: { fingerprint: 'fp-other' } });
      await waitFor('a and b to connect', () => cl.node('a').isConnected('b'));
      await waitFor('a to log the mismatch', () => a.records.some((r) => r.peer === 'c' && r.code === ErrorCodes.INCOMPATIBLE && String(r.msg).includes('fingerprint')));
      for (const [x, y] of [['a', 'c'], ['c', 'a'], ['b', 'c'], ['c', 'b']] as const) expect(cl.node(x).isConnected(y), `${x} -> ${y}`).toBe(false);
      expect(cl.everLinked('c')).toBe(false);
    });

    it.each([
      ['another fingerprint', { fp: 'fp-other' }, ErrorCodes.INCOMPATIBLE, 'fingerprint'],
      ['a node that is not a member', { node: 'zz' }, ErrorCodes.INCOMPATIBLE, 'not a member'],
      ['its own node id', { node: 'c' }, ErrorCodes.INCOMPATIBLE, 'not a member'],
      ['the wrong secret', { secret: 'nope' }, ErrorCodes.AUTH_FAILED, 'authentication failed'],
      ['another protocol version', { v: PROTOCOL_VERSION + 1 }, ErrorCodes.INCOMPATIBLE, 'protocol version'],
    ])('the accepting node refuses a peer dialing with %s', async (_what, fields, code, text) => {
      const cl = await cluster({}, ['c']);
      const { answer, closeCode } = await rawHandshake(cl.url('c'), (hello) => peerAuth(hello, fields));
      expect(answer).toMatchObject({ t: 'refused', error: { code, message: expect.stringContaining(text) } });
      expect(closeCode).toBe(1008);
      expect(cl.node('c').isConnected('a')).toBe(false);
    });

    it('refuses a handshake message that is not an auth message', async () => {
      const cl = await cluster({}, ['c']);
      const junk = await rawHandshake(cl.url('c'), () => Buffer.from([0xc1, 0xff, 0x00]));
      expect(junk.answer).toMatchObject({ t: 'refused', error: { code: ErrorCodes.BAD_FRAME } });
      const other = await rawHandshake(cl.url('c'), () => encode({ t: 'get', key: 'k' }));
      expect(other.answer).toMatchObject({ t: 'refused', error: { code: ErrorCodes.BAD_FRAME } });
    });

    it('accepts a peer that proves the secret, and proves the secret back', async () => {
      const cl = await cluster({}, ['c']);
      const myNonce = new Uint8Array(16).fill(7);
      const { answer } = await rawHandshake(cl.url('c'), (hello) =>
        encode({ t: 'auth', v: PROTOCOL_VERSION, role: 'peer', node: 'a', fp: FP, proof: dialerProof(SECRET, hello.nonce, 'peer', 'a'), nonce: myNonce }),
      );
      expect(answer).toMatchObject({ t: 'welcome' });
      expect(Buffer.from((answer as { proof: Uint8Array }).proof)).toEqual(serverProof(SECRET, myNonce));
      await waitFor('c to count the raw peer as connected', () => cl.node('c').isConnected('a'));
    });

    it('rejects a client dial with the wrong secret with AUTH_FAILED', async () => {
      const cl = await cluster({}, ['c']);
      const err = await failure(dial({ url: cl.url('c'), role: 'client', secret: 'wrong', maxPayload: 1 << 20 }));
      expect(err.code).toBe(ErrorCodes.AUTH_FAILED);
      expect(err.message).toContain('authentication failed');
    });

    it('rejects a dial to a server that cannot prove the secret back', async () => {
      const impostor = new WebSocketServer({ host: HOST, port: 0 });
      servers.push(impostor);
      await new Promise<void>((r) => impostor.once('listening', () => r()));
      impostor.on('connection', (ws) => {
        ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, node: 'c', fp: FP, nonce: new Uint8Array(16) }));
        ws.once('message', () => ws.send(encode({ t: 'welcome', proof: new Uint8Array(32) })));
      });
      const url = `ws://${HOST}:${(impostor.address() as { port: number }).port}`;
      const err = await failure(dial({ url, role: 'client', secret: SECRET, maxPayload: 1 << 20 }));
      expect(err.code).toBe(ErrorCodes.AUTH_FAILED);
      expect(err.message).toContain('authentication failed');
    });
  });

  describe('clients', () => {
    it('serves get, put, status, ring and rget to a client with the right secret, and refuses peer-only messages', async () => {
      const cl = await cluster({}, ['b']);
      const c = await client(cl.url('b'));
      expect(c.hello.node).toBe('b');
      const get = (await c.link.request({ t: 'get', key: 'k' }, 2000)) as unknown as Echo;
      expect(get).toMatchObject({ node: 'b', msg: { t: 'get', key: 'k' } });
      expect(get.from).toMatch(/^client 127\.0\.0\.1:\d+$/);
      const value = new Uint8Array([1, 2, 3]);
      const put = (await c.link.request({ t: 'put', key: 'k', value }, 2000)) as unknown as Echo;
      expect(put.msg).toMatchObject({ t: 'put', key: 'k' });
      expect(new Uint8Array((put.msg as { value: Uint8Array }).value)).toEqual(value);
      expect(await c.link.request({ t: 'status' }, 2000)).toMatchObject({ node: 'b', msg: { t: 'status' } });
      // What a client needs to coordinate its own reads (client/direct.ts).
      expect(await c.link.request({ t: 'ring' }, 2000)).toMatchObject({ node: 'b', msg: { t: 'ring' } });
      expect(await c.link.request({ t: 'rget', key: 'k' }, 2000)).toMatchObject({ node: 'b', msg: { t: 'rget', key: 'k' } });

      const peerOnly = [
        { t: 'rput', key: 'k', partition: 0, obj: new Uint8Array(1) },
        { t: 'hput', key: 'k', partition: 0, target: 'a', obj: new Uint8Array(1) },
        { t: 'info' },
      ] as Request[];
      for (const msg of peerOnly) {
        const err = await failure(c.link.request(msg, 2000));
        expect(err.code).toBe(ErrorCodes.BAD_FRAME);
        expect(err.message).toContain(msg.t);
        expect(err.message).toContain('only for cluster members');
      }
      expect(cl.served.map((x) => x.msg.t)).toEqual(['get', 'put', 'status', 'ring', 'rget']);
      expect(c.link.isOpen).toBe(true);
    });

    const garbage: Array<[string, () => Buffer]> = [
      ['bytes that are not MessagePack', () => Buffer.from([0xc1, 0xc1, 0xc1])],
      ['a value that is not a frame', () => encode('hello there')],
      ['a request of an unknown type', () => encode([0, 77, { t: 'format_disk' }, 1000])],
      ['a frame of an unknown kind', () => encode([42, 1, {}])],
      ['deeply nested arrays', () => Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0x01])])],
      ...[1, 2, 3, 4, 5].map((seed): [string, () => Buffer] => [`random bytes (seed ${seed})`, () => randomBytes(seed, 1 + ((seed * 37) % 200))]),
    ];

    it.each(garbage)('closes the link or answers an error on %s, and keeps serving', async (_what, bytes) => {
      const cl = await cluster({}, ['a', 'b']);
      await waitFor('a and b to connect', () => cl.node('a').isConnected('b'));
      const bad = await client(cl.url('b'));
      bad.ws.send(bytes(), { binary: true });
      await waitFor('the node to close the link or answer with an error', () => bad.closeCode() !== null || bad.received.some(isErrorFrame));
      const fresh = await client(cl.url('b'));
      expect(await fresh.link.request({ t: 'status' }, 2000)).toMatchObject({ node: 'b' });
      expect(await cl.node('a').request('b', { t: 'info' }, 2000)).toMatchObject({ node: 'b' });
    });

    it('closes a client link that sends a frame over maxPayload, and keeps serving', async () => {
      const maxPayload = 64 * 1024;
      const cl = await cluster({ b: { maxPayload } }, ['a', 'b']);
      await waitFor('a and b to connect', () => cl.node('a').isConnected('b'));
      const big = await client(cl.url('b'));
      const pending = later(big.link.request({ t: 'put', key: 'k', value: new Uint8Array(maxPayload + 1) }, 5000));
      await waitFor('the node to close the oversized link', () => big.closeCode() !== null);
      expect(big.closeCode()).toBe(1009);
      const outcome = await pending;
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) expect(outcome.error.code).toBe(ErrorCodes.UNREACHABLE);
      expect(cl.served).toEqual([]);
      const fresh = await client(cl.url('b'));
      expect(await fresh.link.request({ t: 'put', key: 'k', value: new Uint8Array(1000) }, 2000)).toMatchObject({ node: 'b' });
      expect(cl.node('a').isConnected('b')).toBe(true);
    });
  });

  describe('link bounds', () => {
    it('fails the request past maxInFlight to a peer with OVERLOADED at once', async () => {
      const cl = await cluster({ a: { maxInFlight: 2 }, b: { maxInFlight: 2 }, c: { maxInFlight: 2 } });
      await waitFor('a connected to b and c', () => cl.node('a').isConnected('b') && cl.node('a').isConnected('c'));
      const hung = [later(cl.node('a').request('b', { t: 'rget', key: 'hang' }, 20_000)), later(cl.node('a').request('b', { t: 'rget', key: 'hang' }, 20_000))];
      const started = Date.now();
      const err = await failure(cl.node('a').request('b', { t: 'info' }, 20_000));
      expect(err.code).toBe(ErrorCodes.OVERLOADED);
      expect(Date.now() - started).toBeLessThan(1000);
      // The bound is per link: a's link to c is free.
      expect(await cl.node('a').request('c', { t: 'info' }, 2000)).toMatchObject({ node: 'c' });
      await cl.node('b').stop(); // releases the hung requests
      for (const o of await Promise.all(hung)) expect(o.ok).toBe(false);
    });

    it('answers a client request past the node maxInFlight with OVERLOADED', async () => {
      const cl = await cluster({ b: { maxInFlight: 2, handler: async () => new Promise<never>(() => {}) } }, ['b']);
      const c = await client(cl.url('b'));
      const hung = [later(c.link.request({ t: 'get', key: '1' }, 20_000)), later(c.link.request({ t: 'get', key: '2' }, 20_000))];
      const err = await failure(c.link.request({ t: 'get', key: '3' }, 20_000));
      expect(err.code).toBe(ErrorCodes.OVERLOADED);
      expect(err.message).toContain('in progress');
      c.ws.terminate();
      for (const o of await Promise.all(hung)) expect(o.ok).toBe(false);
    });
  });
});

/** Deterministic pseudo-random bytes (a small LCG), so a failure names its input. */
function randomBytes(seed: number, length: number): Buffer {
  let x = seed >>> 0;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function isErrorFrame(x: unknown): boolean {
  return Array.isArray(x) && x[0] === 2 && typeof (x[2] as { code?: unknown })?.code === 'string';
}
