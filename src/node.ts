// The composition root: builds a node's parts from its configuration, wires them together and
// dispatches requests to them. It holds no replication logic of its own.

import { systemClock, type Clock } from './core/clock.js';
import { maxFrameBytes, settingsFingerprint, validateNodeConfig, type NodeConfig } from './core/config.js';
import { ErrorCodes, NexusError } from './core/errors.js';
import { createLogger, type Logger } from './core/log.js';
import { decodeObject, encodeObject } from './core/version.js';
import { Coordinator } from './coordinator/coordinator.js';
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
  /** Only for the SQLite default: cap the database size (tests use it to simulate a full disk). */
  maxDataBytes?: number;
}

const INFO_TIMEOUT_MS = 1000;

export class NexusNode {
  readonly ring: Ring;
  readonly coordinator: Coordinator;
  private readonly lastInfo = new Map<string, Replies['info']>();
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly cfg: NodeConfig,
    readonly storage: Storage,
    readonly identity: NodeIdentity,
    readonly transport: Transport,
    readonly log: Logger,
    readonly clock: Clock,
  ) {
    this.ring = new Ring(cfg.cluster);
    const replica = new Replica(storage, identity, cfg.maxSiblings);
    this.replica = replica;
    this.coordinator = new Coordinator({ self: cfg.id, cfg, ring: this.ring, transport, replica, clock, log });
  }

  private readonly replica: Replica;

  /** Validates the configuration, opens storage, starts listening and dialing peers. */
  static async start(cfg: NodeConfig, parts: NodeParts = {}): Promise<NexusNode> {
    validateNodeConfig(cfg);
    const log = parts.log ?? createLogger(cfg.id);
    const clock = parts.clock ?? systemClock;
    const storage = parts.storage ?? SqliteStorage.open({ dir: cfg.dataDir, durability: cfg.durability, maxDataBytes: parts.maxDataBytes ?? 0 });
    let identity: NodeIdentity;
    try {
      identity = NodeIdentity.open(storage, cfg.id, cfg.cluster, log);
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
    const node = new NexusNode(cfg, storage, identity, transport, log, clock);
    try {
      await transport.start((origin, msg, timeoutMs) => node.handle(origin, msg, timeoutMs));
    } catch (e) {
      identity.markClean();
      await storage.close().catch(() => {});
      throw new NexusError(ErrorCodes.UNREACHABLE, `cannot listen on ${cfg.host}:${cfg.port}: ${(e as Error).message}`);
    }
    transport.onLinkChange((peer, up) => log.info({ peer, up }, up ? `link to ${peer} is up` : `link to ${peer} is down`));
    log.info({ port: cfg.port, actor: identity.actor, fingerprint: settingsFingerprint(cfg.cluster) }, 'node started');
    return node;
  }

  /** Stops serving, commits what is staged, marks a clean stop and closes storage. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
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
        return this.coordinator.put(msg, timeoutOf(msg.timeoutMs, frameTimeoutMs));
      case 'get':
        return this.coordinator.get(msg, timeoutOf(msg.timeoutMs, frameTimeoutMs));
      case 'status':
        return this.status();
      case 'rput': {
        requirePeer(origin, msg.t);
        // The partition is recomputed here rather than trusted from the wire.
        await this.replica.apply(msg.key, this.ring.partitionOf(msg.key), decodeObject(msg.obj));
        return {};
      }
      case 'rget': {
        requirePeer(origin, msg.t);
        const local = this.replica.read(msg.key);
        return { obj: local ? encodeObject(local) : null } satisfies Replies['rget'];
      }
      case 'info':
        return this.info();
      default: {
        const never: never = msg;
        throw new NexusError(ErrorCodes.BAD_FRAME, `unknown message type ${(never as { t: string }).t}`);
      }
    }
  }

  info(): Replies['info'] {
    return {
      keys: this.storage.liveKeyCount(),
      pid: process.pid,
      readRepairs: this.coordinator.stats.readRepairs,
      coordinatedPuts: this.coordinator.stats.puts,
      forwardedPuts: this.coordinator.stats.forwarded,
      gets: this.coordinator.stats.gets,
      commits: this.storage.stats().commits,
      writes: this.storage.stats().writes,
    };
  }

  /** The cluster as this node sees it: its own figures exactly, the others' from their last report. */
  async status(): Promise<Replies['status']> {
    const nodes = await Promise.all(
      this.cfg.cluster.members.map(async (m): Promise<NodeStatus> => {
        const base = { id: m.id, url: m.url, partitions: this.ring.ownedCount(m.id), hintsPending: 0 };
        if (m.id === this.cfg.id) {
          const info = this.info();
          return { ...base, state: 'up', ...info, keys: info.keys, pid: info.pid };
        }
        const up = this.transport.isConnected(m.id);
        if (up) {
          try {
            this.lastInfo.set(m.id, await this.transport.request(m.id, { t: 'info' }, INFO_TIMEOUT_MS));
          } catch {
            // keep the last report
          }
        }
        const info = this.lastInfo.get(m.id);
        return { ...base, ...(info ?? {}), state: up ? 'up' : 'down', keys: info?.keys ?? null };
      }),
    );
    return { node: this.cfg.id, nodes, n: this.ring.n, partitions: this.ring.partitions, ringEpoch: 0 };
  }
}

function timeoutOf(requested: number | undefined, frameTimeoutMs: number): number {
  return Math.max(1, Math.min(requested ?? frameTimeoutMs, frameTimeoutMs, 10 * 60_000));
}

function requirePeer(origin: Origin, t: string): void {
  if (origin.kind !== 'peer') throw new NexusError(ErrorCodes.BAD_FRAME, `message type "${t}" is only for cluster members`);
}
