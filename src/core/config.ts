// Node configuration: defaults in one place, and a validator that rejects bad values and bad
// relations between values (R, W <= N; N <= members; Q a power of two >= members) before anything
// starts. Cluster settings (members, Q, N) must be identical on every node; they are fingerprinted
// so that nodes with other settings refuse each other.

import { createHash } from 'node:crypto';
import { ErrorCodes, NexusError } from './errors.js';

export interface Member {
  id: string;
  /** ws:// or wss:// URL the other nodes dial. */
  url: string;
}

/** The settings every node of a cluster must share; they decide placement. */
export interface ClusterSettings {
  members: Member[];
  /** Number of partitions of the hash space (a power of two). */
  partitions: number;
  /** Replicas per key. */
  n: number;
}

export type Durability = 'fsync' | 'os';

export type QuorumSpec = number | 'one' | 'quorum' | 'all';

export interface NodeConfig {
  id: string;
  host: string;
  port: number;
  dataDir: string;
  cluster: ClusterSettings;
  /** Shared cluster secret; empty means no authentication (local development only). */
  secret: string;
  durability: Durability;
  /** Largest value a client may write, in bytes. */
  maxValueBytes: number;
  /** Most siblings a key may hold; a write past it fails with "read and resolve". */
  maxSiblings: number;
  defaultR: QuorumSpec;
  defaultW: QuorumSpec;
  /** Deadline for a client request when the client gives none. */
  requestTimeoutMs: number;
  /** Requests one link may have in flight before new ones fail fast as OVERLOADED. */
  maxInFlightPerLink: number;
  /** Bytes a link may have queued unsent; past it new requests fail fast as OVERLOADED. */
  maxBufferedBytesPerLink: number;
  /** Phi-accrual suspicion above which a peer is judged down. */
  phiThreshold: number;
  /** Interval between heartbeats to each peer, ms. */
  heartbeatMs: number;
  /** Most hints delivered per second by one node. */
  handoffRatePerSec: number;
  /** Age past which a hint is dropped once a primary is confirmed to hold its object, ms. */
  hintWindowMs: number;
  /** Time between background anti-entropy rounds, ms. */
  antiEntropyIntervalMs: number;
  /**
   * How long a tombstone every replica holds is kept before it is collected, and how long its
   * reaped record is kept after, ms. Must exceed hintWindowMs.
   */
  tombstoneGraceMs: number;
  /** At start, rebuild every segment hash from the stored objects, compare, and correct. */
  checkSegments: boolean;
  /**
   * Anti-entropy segments per partition (a power of two). 0 keeps no segment hashes and turns
   * anti-entropy off: only for measuring what the hashes cost.
   */
  segments: number;
}

export const MAX_KEY_BYTES = 1024;
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_SIBLINGS = 100;
export const DEFAULT_PARTITIONS = 64;
export const DEFAULT_N = 3;

export function defaultNodeConfig(
  partial: Partial<NodeConfig> & Pick<NodeConfig, 'id' | 'port' | 'dataDir' | 'cluster'>,
): NodeConfig {
  return {
    host: '127.0.0.1',
    secret: '',
    durability: 'fsync',
    maxValueBytes: DEFAULT_MAX_VALUE_BYTES,
    maxSiblings: DEFAULT_MAX_SIBLINGS,
    defaultR: 'quorum',
    defaultW: 'quorum',
    requestTimeoutMs: 5000,
    maxInFlightPerLink: 4096,
    maxBufferedBytesPerLink: 64 * 1024 * 1024,
    phiThreshold: 8,
    heartbeatMs: 200,
    handoffRatePerSec: 10_000,
    hintWindowMs: 3 * 3600_000,
    antiEntropyIntervalMs: 10_000,
    tombstoneGraceMs: 6 * 3600_000,
    checkSegments: false,
    segments: 1024,
    ...partial,
  };
}

function invalid(message: string): never {
  throw new NexusError(ErrorCodes.INVALID_ARGUMENT, message);
}

function isPowerOfTwo(x: number): boolean {
  return Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;
}

export function validateClusterSettings(c: ClusterSettings): void {
  if (!Array.isArray(c.members) || c.members.length === 0) invalid('cluster needs at least one member');
  const ids = new Set<string>();
  for (const m of c.members) {
    if (typeof m !== 'object' || m === null) invalid(`every member needs an id and a url, got ${JSON.stringify(m)}`);
    if (typeof m.id !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(m.id))
      invalid(`member id "${m.id}" must be 1-64 characters of letters, digits, '_', '.', '-'`);
    if (ids.has(m.id)) invalid(`member id "${m.id}" appears twice`);
    ids.add(m.id);
    if (!isNodeUrl(m.url)) invalid(`member ${m.id} has URL "${m.url}"; expected ws://host:port or wss://host:port`);
  }
  if (!isPowerOfTwo(c.partitions) || c.partitions > 65536)
    invalid(`partitions must be a power of two up to 65536, got ${c.partitions}`);
  if (c.partitions < c.members.length)
    invalid(`partitions (${c.partitions}) must be at least the number of members (${c.members.length})`);
  if (!Number.isInteger(c.n) || c.n < 1) invalid(`n must be a positive integer, got ${c.n}`);
  if (c.n > c.members.length) invalid(`n (${c.n}) cannot exceed the number of members (${c.members.length})`);
}

export function validateNodeConfig(cfg: NodeConfig): void {
  validateClusterSettings(cfg.cluster);
  if (!cfg.cluster.members.some((m) => m.id === cfg.id))
    invalid(`node id "${cfg.id}" is not in the member list (${cfg.cluster.members.map((m) => m.id).join(', ')})`);
  if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) invalid(`port must be 0-65535, got ${cfg.port}`);
  if (!cfg.dataDir) invalid('a data folder is required');
  if (cfg.durability !== 'fsync' && cfg.durability !== 'os') invalid(`durability must be "fsync" or "os", got "${cfg.durability}"`);
  if (!Number.isInteger(cfg.maxValueBytes) || cfg.maxValueBytes < 1 || cfg.maxValueBytes > 64 * 1024 * 1024)
    invalid(`maxValueBytes must be between 1 and 64 MiB, got ${cfg.maxValueBytes}`);
  if (!Number.isInteger(cfg.maxSiblings) || cfg.maxSiblings < 1 || cfg.maxSiblings > 10000)
    invalid(`maxSiblings must be between 1 and 10000, got ${cfg.maxSiblings}`);
  resolveQuorum(cfg.defaultR, cfg.cluster.n, 'R');
  resolveQuorum(cfg.defaultW, cfg.cluster.n, 'W');
  if (!(cfg.requestTimeoutMs > 0 && cfg.requestTimeoutMs <= 600_000))
    invalid(`requestTimeoutMs must be between 1 and 600000 (10 minutes), got ${cfg.requestTimeoutMs}`);
  if (!(cfg.maxInFlightPerLink > 0)) invalid('maxInFlightPerLink must be positive');
  if (!(cfg.maxBufferedBytesPerLink > 0)) invalid('maxBufferedBytesPerLink must be positive');
  if (!(cfg.phiThreshold > 0 && cfg.phiThreshold <= 100)) invalid(`phiThreshold must be in (0, 100], got ${cfg.phiThreshold}`);
  if (!(Number.isFinite(cfg.heartbeatMs) && cfg.heartbeatMs >= 10 && cfg.heartbeatMs <= 10_000))
    invalid(`heartbeatMs must be between 10 and 10000, got ${cfg.heartbeatMs}`);
  if (!(cfg.handoffRatePerSec >= 1)) invalid(`handoffRatePerSec must be at least 1, got ${cfg.handoffRatePerSec}`);
  if (!(cfg.hintWindowMs >= 1000)) invalid(`hintWindowMs must be at least 1000 (1 s), got ${cfg.hintWindowMs}`);
  if (!(cfg.antiEntropyIntervalMs >= 100)) invalid(`antiEntropyIntervalMs must be at least 100, got ${cfg.antiEntropyIntervalMs}`);
  if (!(cfg.segments === 0 || (isPowerOfTwo(cfg.segments) && cfg.segments <= 1 << 20)))
    invalid(`segments must be a power of two up to 1048576 (or 0 to turn anti-entropy off), got ${cfg.segments}`);
  if (!(cfg.tombstoneGraceMs > cfg.hintWindowMs))
    invalid(`tombstoneGraceMs (${cfg.tombstoneGraceMs}) must be longer than hintWindowMs (${cfg.hintWindowMs}), so no hint can bring a collected value back`);
}

/** A URL a WebSocket client can dial: ws or wss, a host, an optional valid port, nothing odd. */
export function isNodeUrl(url: string): boolean {
  if (typeof url !== 'string' || /\s/.test(url) || !/^wss?:\/\/[^/]/.test(url)) return false;
  try {
    const u = new URL(url);
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname !== '' && (u.pathname === '/' || u.pathname === '');
  } catch {
    return false;
  }
}

/** Turns "one" | "quorum" | "all" | number into a count, refusing what N cannot satisfy. */
export function resolveQuorum(spec: QuorumSpec | string | undefined, n: number, what: 'R' | 'W'): number {
  if (spec === undefined) invalid(`${what} is required`);
  let value: number;
  if (spec === 'one') value = 1;
  else if (spec === 'quorum') value = Math.floor(n / 2) + 1;
  else if (spec === 'all') value = n;
  else if (typeof spec === 'number') value = spec;
  else if (typeof spec === 'string' && /^\d+$/.test(spec)) value = Number(spec);
  else invalid(`${what} must be a number or one of one, quorum, all; got "${String(spec)}"`);
  if (!Number.isInteger(value) || value < 1) invalid(`${what} must be at least 1, got ${String(spec)}`);
  if (value > n) invalid(`${what}=${value} is impossible: the cluster keeps N=${n} replicas of each key`);
  return value;
}

/**
 * The largest legal frame: a whole object at its sibling cap, every sibling at the value limit,
 * plus room for keys, version vectors and framing. Links refuse anything larger.
 */
export function maxFrameBytes(cfg: Pick<NodeConfig, 'maxValueBytes' | 'maxSiblings'>): number {
  return cfg.maxSiblings * (cfg.maxValueBytes + 256) + 1024 * 1024;
}

/** A stable fingerprint of the cluster settings: equal settings give equal fingerprints. */
export function settingsFingerprint(c: ClusterSettings): string {
  const canonical = JSON.stringify({
    // Order matters: it is the join order that partition claim follows.
    members: c.members.map((m) => [m.id, m.url]),
    partitions: c.partitions,
    n: c.n,
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** Parses the CLI's "--peers id@url,id@url" form. */
export function parsePeers(spec: string): Member[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const at = s.indexOf('@');
      if (at <= 0) invalid(`peer "${s}" must look like ID@ws://host:port`);
      return { id: s.slice(0, at), url: s.slice(at + 1) };
    });
}
