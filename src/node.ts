// The composition root: builds a node's parts from its configuration, wires them together and
// dispatches requests to them. It holds no replication logic of its own.

import { systemClock, type Clock, type TimerHandle } from './core/clock.js';
import { maxFrameBytes, resolveQuorum, settingsFingerprint, validateNodeConfig, type NodeConfig } from './core/config.js';
import { ErrorCodes, NexusError } from './core/errors.js';
import { LoadMonitor } from './core/load.js';
import { createLogger, type Logger } from './core/log.js';
import { nodeTimings, parseDelaySpec, type DelaySpec, type NodeTimings } from './core/timings.js';
import { decodeObject } from './core/version.js';
import { AntiEntropy } from './antientropy/exchange.js';
import { Coordinator, validateKey } from './coordinator/coordinator.js';
import { Pacer } from './handoff/pacer.js';
import { DELIVERY_TIMEOUT_MS, HandoffManager } from './handoff/manager.js';
import { MemoryHintStore } from './handoff/memory.js';
import type { HintStore } from './handoff/types.js';
import { FailureDetector } from './membership/detector.js';
import { Ring } from './ring/index.js';
import { NodeIdentity } from './replica/identity.js';
import { Replica } from './replica/replica.js';
import { SqliteStorage } from './storage/sqlite.js';
import type { Storage } from './storage/types.js';
import type { NodeStatus, Replies, Request } from './transport/protocol.js';
import type { Origin, Transport } from './transport/types.js';
import { WsTransport } from './transport/ws.js';

export interface NodeParts {
  clock?: Clock;
  log?: Logger;
  /** Defaults to SQLite in cfg.dataDir. */
  storage?: Storage;
  /** Defaults to the WebSocket transport on cfg.host:cfg.port. */
  transport?: Transport;
  /** Defaults to the hint table of the SQLite storage. */
  hints?: HintStore;
  /** Only for the SQLite default: cap the database size (tests use it to simulate a full disk). */
  maxDataBytes?: number;
  /** Makes a new incarnation token (default: random); the deterministic simulation seeds it. */
  incarnation?: () => string;
  /** A deliberately broken build (replicas overwrite instead of merging), for checker tests. */
  brokenMerge?: boolean;
}

const INFO_TIMEOUT_MS = 1000;
/** Longest a handed-off batch may wait for its turn at this node: well within the sender's deadline. */
const HANDOFF_MAX_QUEUE_MS = DELIVERY_TIMEOUT_MS / 5;

export class NexusNode {
  readonly ring: Ring;
  readonly coordinator: Coordinator;
  readonly detector: FailureDetector;
  readonly handoff: HandoffManager;
  readonly antiEntropy: AntiEntropy;
  private readonly load: LoadMonitor;
  /** Admits handed-off hints at most at the handoff rate, whichever stand-ins send them. */
  private readonly handoffIn: Pacer;
  private readonly replica: Replica;
  private readonly lastInfo = new Map<string, Replies['info']>();
  /** The answer to a client's `ring` request: fixed for the node's life (the settings are). */
  private readonly ringInfo: Replies['ring'];
  /** Recent replica timings, for `nexus bench` (the `timings` request). */
  readonly timings: NodeTimings = nodeTimings();
  /** The fault layer's delay before applying each replica write (`nexus bench --replica-delay`). */
  private replicaDelay: DelaySpec | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private readonly startedAt: number;
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly cfg: NodeConfig,
    readonly storage: Storage,
    readonly hints: HintStore,
    readonly identity: NodeIdentity,
    readonly transport: Transport,
    readonly log: Logger,
    readonly clock: Clock,
    brokenMerge = false,
  ) {
    this.startedAt = clock.now();
    this.load = new LoadMonitor({ clock, maxInFlight: Math.max(64, cfg.maxInFlightPerLink / 4) });
    this.handoffIn = new Pacer(cfg.handoffRatePerSec, clock);
    this.ring = new Ring(cfg.cluster);
    this.ringInfo = {
      node: cfg.id,
      fingerprint: settingsFingerprint(cfg.cluster),
      members: [...this.ring.members],
      partitions: this.ring.partitions,
      n: this.ring.n,
      defaultR: resolveQuorum(cfg.defaultR, this.ring.n, 'R'),
    };
    const peers = cfg.cluster.members.map((m) => m.id);
    this.detector = new FailureDetector({
      self: cfg.id,
      peers,
      clock,
      threshold: cfg.phiThreshold,
      firstIntervalMs: cfg.heartbeatMs,
      onChange: (peer, state, reason) => {
        log.info({ peer, state, reason }, `node ${peer} is judged ${state} (${reason})`);
        if (state === 'up') this.handoff.poke();
      },
    });
    // NEXUS_BREAK=no-merge: a broken build the simulation's tests must catch (see Replica).
    const broken = brokenMerge || (process.env.NEXUS_SIM_FAULTS === '1' && process.env.NEXUS_BREAK === 'no-merge');
    if (broken) log.warn('BROKEN BUILD: replicas overwrite instead of merging (NEXUS_BREAK=no-merge)');
    this.replica = new Replica(storage, identity, cfg.maxSiblings, broken);
    const isUp = (node: string): boolean => this.detector.isUp(node);
    this.coordinator = new Coordinator({
      self: cfg.id,
      cfg,
      ring: this.ring,
      transport,
      replica: this.replica,
      identity,
      timings: this.timings,
      liveness: { isUp, requestTimedOut: (node) => this.detector.requestTimedOut(node) },
      hints: {
        addHint: (target, key, partition, obj) => hints.addHint(target, key, partition, obj, clock.now()),
        hintedState: (key) => hints.hintedState(key),
      },
      clock,
      log,
    });
    this.antiEntropy = new AntiEntropy({
      self: cfg.id,
      ring: this.ring,
      storage,
      replica: this.replica,
      transport,
      isUp,
      upForMs: (node) => (this.detector.isUp(node) ? (node === cfg.id ? Infinity : clock.now() - this.detector.view(node)!.since) : 0),
      clock,
      log,
      intervalMs: cfg.antiEntropyIntervalMs,
      tombstoneGraceMs: cfg.tombstoneGraceMs,
      isOverloaded: () => this.load.overloaded(),
    });
    this.handoff = new HandoffManager({
      self: cfg.id,
      store: hints,
      transport,
      isUp,
      primariesOf: (key) => this.ring.primaries(this.ring.partitionOf(key)),
      clock,
      log,
      ratePerSec: cfg.handoffRatePerSec,
      windowMs: cfg.hintWindowMs,
    });
  }

  /** Validates the configuration, opens storage, starts listening and dialing peers. */
  static async start(cfg: NodeConfig, parts: NodeParts = {}): Promise<NexusNode> {
    validateNodeConfig(cfg);
    const log = parts.log ?? createLogger(cfg.id);
    const clock = parts.clock ?? systemClock;
    const storage =
      parts.storage ?? SqliteStorage.open({ dir: cfg.dataDir, durability: cfg.durability, maxDataBytes: parts.maxDataBytes ?? 0, segments: cfg.segments, now: () => clock.now() });
    let identity: NodeIdentity;
    try {
      identity = NodeIdentity.open(storage, cfg.id, cfg.cluster, log, parts.incarnation);
      if (cfg.checkSegments) {
        const all = Array.from({ length: cfg.cluster.partitions }, (_, i) => i);
        const bad = await storage.checkSegments(all);
        if (bad.length === 0) log.info({ partitions: all.length }, 'segment hashes checked: all match the data');
        else log.warn({ partitions: bad }, `segment hashes of ${bad.length} partitions differed from the data and were corrected`);
      }
    } catch (e) {
      await storage.close().catch(() => {});
      throw e;
    }
    const transport =
      parts.transport ??
      new WsTransport({
        self: cfg.id,
        members: cfg.cluster.members,
        fingerprint: settingsFingerprint(cfg.cluster),
        secret: cfg.secret,
        host: cfg.host,
        port: cfg.port,
        maxPayload: maxFrameBytes(cfg),
        maxInFlight: cfg.maxInFlightPerLink,
        maxBufferedBytes: cfg.maxBufferedBytesPerLink,
        clock,
        log,
      });
    const hints = parts.hints ?? (storage instanceof SqliteStorage ? storage.hintStore() : new MemoryHintStore());
    const node = new NexusNode(cfg, storage, hints, identity, transport, log, clock, parts.brokenMerge === true);
    try {
      await transport.start((origin, msg, timeoutMs) => node.handle(origin, msg, timeoutMs));
    } catch (e) {
      identity.markClean();
      await storage.close().catch(() => {});
      throw new NexusError(ErrorCodes.UNREACHABLE, `cannot listen on ${cfg.host}:${cfg.port}: ${(e as Error).message}`);
    }
    transport.onLinkChange((peer, up) => {
      log.info({ peer, up }, up ? `link to ${peer} is up` : `link to ${peer} is down`);
      node.detector.linkChanged(peer, up);
      // A fresh authenticated link is itself proof of life.
      if (up) node.detector.heartbeat(peer);
    });
    node.startHeartbeats();
    node.handoff.start();
    if (cfg.segments > 0) node.antiEntropy.start();
    else log.warn('anti-entropy is off (--segments 0): replicas are repaired only by reads and hinted handoff');
    node.load.start();
    log.info({ port: cfg.port, actor: identity.actor, fingerprint: settingsFingerprint(cfg.cluster) }, 'node started');
    return node;
  }

  /** Stops serving, commits what is staged, marks a clean stop and closes storage. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.heartbeatTimer?.cancel();
      this.handoff.stop();
      this.antiEntropy.stop();
      this.load.stop();
      await this.transport.stop();
      await this.storage.flush();
      this.identity.markClean();
      await this.storage.close();
      this.log.info('node stopped');
    })();
    return this.stopped;
  }

  /** One handler per message type; the switch is exhaustive over the union. */
  async handle(origin: Origin, msg: Request, frameTimeoutMs: number): Promise<unknown> {
    if (this.stopped) throw new NexusError(ErrorCodes.STOPPING, `node ${this.cfg.id} is stopping`);
    switch (msg.t) {
      case 'put':
        return this.load.track(this.coordinator.put(msg, timeoutOf(msg.timeoutMs, frameTimeoutMs)));
      case 'get':
        return this.load.track(this.coordinator.get(msg, timeoutOf(msg.timeoutMs, frameTimeoutMs)));
      case 'status':
        return this.status();
      case 'rput': {
        requirePeer(origin, msg.t);
        if (this.replicaDelay !== null) {
          const started = performance.now();
          const ms = this.replicaDelay.sample(Math.random());
          await new Promise<void>((r) => this.clock.setTimeout(r, ms));
          this.timings.delay.push(performance.now() - started);
        }
        // The partition is recomputed here rather than trusted from the wire.
        await this.replica.apply(msg.key, this.ring.partitionOf(msg.key), decodeObject(msg.obj));
        return {};
      }
      case 'rget': {
        // Peers send only keys they validated; a client's key is checked like a get's.
        if (origin.kind !== 'peer') validateKey(msg.key);
        return { obj: this.coordinator.localEncoded(msg.key)?.bytes ?? null } satisfies Replies['rget'];
      }
      case 'info':
        return this.info();
      case 'ring':
        return this.ringInfo;
      case 'hput': {
        requirePeer(origin, msg.t);
        await this.hints.addHint(msg.target, msg.key, this.ring.partitionOf(msg.key), decodeObject(msg.obj), this.clock.now());
        return {};
      }
      case 'handoff': {
        requirePeer(origin, msg.t);
        await this.handoffIn.take(msg.items.length, HANDOFF_MAX_QUEUE_MS);
        const objs = msg.items.map((i) => ({ key: i.key, obj: decodeObject(i.obj) }));
        await Promise.all(objs.map((i) => this.replica.apply(i.key, this.ring.partitionOf(i.key), i.obj)));
        return { applied: objs.length } satisfies Replies['handoff'];
      }
      case 'ae-root':
        requirePeer(origin, msg.t);
        return this.antiEntropy.root(this.checkPartition(msg.partition), origin.id);
      case 'ae-nodes':
        requirePeer(origin, msg.t);
        return this.antiEntropy.nodes(this.checkPartition(msg.partition), msg.level, msg.indices);
      case 'ae-keys':
        requirePeer(origin, msg.t);
        return this.antiEntropy.keys(this.checkPartition(msg.partition), msg.segments);
      case 'ae-get':
        requirePeer(origin, msg.t);
        return this.antiEntropy.objects(msg.keys);
      case 'ae-done':
        requirePeer(origin, msg.t);
        return this.antiEntropy.done(this.checkPartition(msg.partition), origin.id);
      case 'repair': {
        if (msg.partition !== undefined) this.checkPartition(msg.partition);
        if (this.cfg.segments === 0) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `anti-entropy is off on node ${this.cfg.id} (started with --segments 0)`);
        const report = await this.antiEntropy.round(msg.partition, true);
        return { node: this.cfg.id, ...report } satisfies Replies['repair'];
      }
      case 'sim-fault':
        if (process.env.NEXUS_SIM_FAULTS !== '1')
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'fault injection is off on this node (nexus sim and nexus bench start their nodes with NEXUS_SIM_FAULTS=1)');
        if (msg.replicaDelay !== undefined) {
          try {
            this.replicaDelay = parseDelaySpec(msg.replicaDelay);
          } catch (e) {
            throw new NexusError(ErrorCodes.INVALID_ARGUMENT, (e as Error).message);
          }
        }
        this.transport.injectFaults({ blocked: msg.blocked, delayMs: msg.delayMs });
        this.log.warn({ blocked: msg.blocked, delayMs: msg.delayMs, replicaDelay: this.replicaDelay?.spec ?? 'none' }, 'simulated network faults changed');
        return {};
      case 'timings':
        return {
          commit: this.timings.commit.take(),
          rput: this.timings.rput.take(),
          rget: this.timings.rget.take(),
          delay: this.timings.delay.take(),
        } satisfies Replies['timings'];
      case 'hb':
        if (origin.kind === 'peer') this.detector.heartbeat(origin.id);
        return {};
      default: {
        const never: never = msg;
        throw new NexusError(ErrorCodes.BAD_FRAME, `unknown message type ${(never as { t: string }).t}`);
      }
    }
  }

  private checkPartition(p: number): number {
    if (!Number.isInteger(p) || p < 0 || p >= this.ring.partitions)
      throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `partition ${p} does not exist: this cluster has partitions 0..${this.ring.partitions - 1}`);
    return p;
  }

  /** Sends a heartbeat to every linked peer and re-judges them, every heartbeatMs. */
  private startHeartbeats(): void {
    const beat = (): void => {
      for (const m of this.cfg.cluster.members) {
        if (m.id === this.cfg.id || !this.transport.isConnected(m.id)) continue;
        this.transport.request(m.id, { t: 'hb' }, Math.max(1000, this.cfg.heartbeatMs * 5)).catch(() => {});
      }
      this.detector.tick(this.cfg.heartbeatMs);
      this.heartbeatTimer = this.clock.setTimeout(beat, this.cfg.heartbeatMs);
    };
    beat();
  }

  info(): Replies['info'] {
    const pending = this.hints.pendingHints();
    const written = this.storage.stats();
    const traffic = this.transport.peerTraffic();
    return {
      keys: this.storage.liveKeyCount(),
      pid: process.pid,
      readRepairs: this.coordinator.stats.readRepairs,
      coordinatedPuts: this.coordinator.stats.puts,
      forwardedPuts: this.coordinator.stats.forwarded,
      gets: this.coordinator.stats.gets,
      commits: written.commits,
      writes: written.writes,
      ...(written.degraded === undefined ? {} : { storageDegraded: written.degraded }),
      standInPuts: this.coordinator.stats.standInPuts,
      hintedWrites: this.coordinator.stats.hintedWrites,
      hintsPending: sum(pending.values()),
      hintsByTarget: Object.fromEntries(pending),
      ...this.handoffFigures(),
      ...this.antiEntropy.stats(),
      peerBytesSent: traffic.sent,
      peerBytesReceived: traffic.received,
      ...this.load.stats(),
      // Bytes: rss, heapTotal, heapUsed, external, arrayBuffers (what retained buffers show in).
      memory: process.memoryUsage(),
    };
  }

  /** The cluster as this node sees it: its own figures exactly, the others' from their last report. */
  async status(): Promise<Replies['status']> {
    const nodes = await Promise.all(
      this.cfg.cluster.members.map(async (m): Promise<NodeStatus> => {
        const base = { id: m.id, url: m.url, partitions: this.ring.ownedCount(m.id) };
        if (m.id === this.cfg.id) {
          const info = this.info();
          return { ...base, ...info, state: 'up', since: new Date(this.startedAt).toISOString(), keys: info.keys, pid: info.pid, hintsPending: info.hintsPending as number };
        }
        // Ask only peers judged up: a frozen peer with an open link would hold the answer a second.
        if (this.transport.isConnected(m.id) && this.detector.isUp(m.id)) {
          try {
            this.lastInfo.set(m.id, await this.transport.request(m.id, { t: 'info' }, INFO_TIMEOUT_MS));
          } catch {
            // keep the last report
          }
        }
        const info = this.lastInfo.get(m.id);
        const view = this.detector.view(m.id)!;
        return {
          ...base,
          ...(info ?? {}),
          state: view.state,
          since: new Date(view.since).toISOString(),
          phi: view.phi,
          keys: info?.keys ?? null,
          hintsPending: (info?.hintsPending as number | undefined) ?? 0,
        };
      }),
    );
    // Hints waiting for each node, wherever they are held (as far as the last reports tell).
    for (const n of nodes) n.hintsAwaiting = nodes.reduce((a, x) => a + ((x.hintsByTarget as Record<string, number> | undefined)?.[n.id] ?? 0), 0);
    return { node: this.cfg.id, nodes, n: this.ring.n, partitions: this.ring.partitions, ringEpoch: 0 };
  }

  private handoffFigures(): Record<string, unknown> {
    const h = this.handoff.stats();
    return { hintsDelivered: h.delivered, hintsDropped: h.dropped, hintsOverdueKept: h.overdueKept, handoffInProgress: h.inProgress };
  }
}

function sum(xs: Iterable<number>): number {
  let t = 0;
  for (const x of xs) t += x;
  return t;
}

function timeoutOf(requested: number | undefined, frameTimeoutMs: number): number {
  return Math.max(1, Math.min(requested ?? frameTimeoutMs, frameTimeoutMs, 10 * 60_000));
}

function requirePeer(origin: Origin, t: string): asserts origin is Extract<Origin, { kind: 'peer' }> {
  if (origin.kind !== 'peer') throw new NexusError(ErrorCodes.BAD_FRAME, `message type "${t}" is only for cluster members`);
}
