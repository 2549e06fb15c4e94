// The messages nodes and clients exchange: a tagged union, one reply shape per request type, and a
// validator that turns any untrusted decoded frame into a typed request or a BAD_FRAME error.

import { ErrorCodes, NexusError, type WireError } from '../core/errors.js';
import type { QuorumSpec } from '../core/config.js';

/** Bumped when a message changes meaning; checked in the handshake. */
export const PROTOCOL_VERSION = 1;

// ---- Requests ----

/** A client write (value) or delete (value = null). Peers forward it to a primary with fwd = true. */
export interface PutRequest {
  t: 'put';
  key: string;
  value: Uint8Array | null;
  ctx?: string;
  w?: QuorumSpec;
  strict?: boolean;
  timeoutMs?: number;
  /** Set when a node forwarded the request: the receiver must coordinate, never forward again. */
  fwd?: boolean;
}

export interface GetRequest {
  t: 'get';
  key: string;
  r?: QuorumSpec;
  strict?: boolean;
  timeoutMs?: number;
}

export interface StatusRequest {
  t: 'status';
}

/** The node's recent replica timings, ms (for `nexus bench`'s PBS model; see core/timings.ts). */
export interface TimingsRequest {
  t: 'timings';
}

/** Replica write: merge this object into the local state and ack once durable. */
export interface ReplicaPutRequest {
  t: 'rput';
  key: string;
  partition: number;
  /** encodeObject() bytes. */
  obj: Uint8Array;
}

/**
 * Replica read: the local state of a key (with any hints this node keeps for it). Peers send it
 * when they coordinate a read; clients send it when they coordinate a read themselves
 * (client/direct.ts).
 */
export interface ReplicaGetRequest {
  t: 'rget';
  key: string;
}

/** Hinted write: keep this object for `target` (a down primary) until it can be handed off. */
export interface HintPutRequest {
  t: 'hput';
  key: string;
  partition: number;
  target: string;
  obj: Uint8Array;
}

/** Hinted handoff: objects a stand-in kept for the receiver; merge them all, ack once durable. */
export interface HandoffRequest {
  t: 'handoff';
  items: Array<{ key: string; obj: Uint8Array }>;
}

/** Anti-entropy, asked by the replica that runs an exchange of one partition. */
export interface AeRootRequest {
  t: 'ae-root';
  partition: number;
}
export interface AeNodesRequest {
  t: 'ae-nodes';
  partition: number;
  level: number;
  indices: number[];
}
export interface AeKeysRequest {
  t: 'ae-keys';
  partition: number;
  segments: number[];
}
export interface AeGetRequest {
  t: 'ae-get';
  keys: string[];
}
/** The asker completed an exchange of the partition (its repairs are durable on both sides). */
export interface AeDoneRequest {
  t: 'ae-done';
  partition: number;
}

/** A client asks a node to run an anti-entropy round now and report it. */
export interface RepairRequest {
  t: 'repair';
  partition?: number;
}

/** Heartbeat for the failure detector. */
export interface HeartbeatRequest {
  t: 'hb';
}

/** What a client needs to coordinate reads itself: the answering node's id and the ring's settings. */
export interface RingRequest {
  t: 'ring';
}

/** A node's own figures, for the status of the node that asks. */
export interface InfoRequest {
  t: 'info';
}

/**
 * The simulator's fault layer (issue 5): cut this node's links to `blocked` peers (both ways: the
 * simulator sends the mirror image to the other side) and delay its frames to every peer by
 * `delayMs`. Refused unless the node was started with NEXUS_SIM_FAULTS=1, which only `nexus sim`
 * sets.
 */
export interface SimFaultRequest {
  t: 'sim-fault';
  blocked: string[];
  delayMs: number;
  /** Delay before this node applies each replica write: "exp:MEAN", "const:MS", "uniform:LO-HI" or "none". */
  replicaDelay?: string;
}

export type ClientRequest = PutRequest | GetRequest | StatusRequest | RepairRequest | SimFaultRequest | TimingsRequest | RingRequest | ReplicaGetRequest;
export type PeerOnlyRequest =
  | ReplicaPutRequest
  | InfoRequest
  | HintPutRequest
  | HandoffRequest
  | HeartbeatRequest
  | AeRootRequest
  | AeNodesRequest
  | AeKeysRequest
  | AeGetRequest
  | AeDoneRequest;
export type Request = ClientRequest | PeerOnlyRequest;
export type RequestType = Request['t'];

// ---- Replies (the `ok: true` bodies; failures travel as WireError) ----

export interface NodeStatus {
  id: string;
  url: string;
  state: 'up' | 'down';
  pid?: number;
  partitions: number;
  keys: number | null;
  hintsPending: number;
  [extra: string]: unknown;
}

export interface Replies {
  put: { ctx: string };
  get: { found: boolean; values: Uint8Array[]; ctx: string; siblings: number };
  status: { node: string; nodes: NodeStatus[]; n: number; partitions: number; ringEpoch: number; [extra: string]: unknown };
  rput: Record<string, never>;
  hput: Record<string, never>;
  handoff: { applied: number };
  hb: Record<string, never>;
  'ae-root': { segments: number; hash: Uint8Array };
  'ae-nodes': { hashes: Uint8Array[] };
  'ae-keys': { keys: Array<[string, Uint8Array]> };
  /** `reaped`: the keys whose object is only a reaped record (the collected tombstone). */
  'ae-get': { objs: Array<[string, Uint8Array | null]>; reaped?: string[] };
  'ae-done': Record<string, never>;
  'sim-fault': Record<string, never>;
  timings: { commit: number[]; rput: number[]; rget: number[]; delay: number[] };
  repair: { node: string; exchanges: number; segmentsCompared: number; keysRepaired: number; bytesSent: number; bytesReceived: number };
  rget: { obj: Uint8Array | null };
  /** `members` in settings order; `defaultR` resolved to a number. */
  ring: { node: string; fingerprint: string; members: string[]; partitions: number; n: number; defaultR: number };
  info: { keys: number; pid: number; readRepairs: number; [extra: string]: unknown };
}

export type ReplyOf<T extends RequestType> = Replies[T];
export type RequestOf<T extends RequestType> = Extract<Request, { t: T }>;

// ---- Frames ----

/** [kind, id, body]: requests carry the sender's remaining time budget in ms. */
export type Frame =
  | { kind: 'req'; id: number; msg: Request; timeoutMs: number }
  | { kind: 'res'; id: number; ok: true; body: unknown }
  | { kind: 'res'; id: number; ok: false; error: WireError };

// ---- Handshake (before any frame) ----

export interface Hello {
  t: 'hello';
  v: number;
  node: string;
  fp: string;
  nonce: Uint8Array;
}

export interface Auth {
  t: 'auth';
  v: number;
  role: 'peer' | 'client';
  node?: string;
  fp?: string;
  proof: Uint8Array;
  nonce: Uint8Array;
}

export interface Welcome {
  t: 'welcome';
  proof: Uint8Array;
}

export interface Refused {
  t: 'refused';
  error: WireError;
}

// ---- Validation of untrusted input ----

/** Names an untrusted value in an error message without calling anything it carries. */
export function describeValue(x: unknown): string {
  if (typeof x === 'string') return `"${x.slice(0, 40)}"`;
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  return `(${Array.isArray(x) ? 'array' : typeof x})`;
}

function bad(what: string): never {
  throw new NexusError(ErrorCodes.BAD_FRAME, `malformed message: ${what}`);
}

function isQuorumSpec(x: unknown): x is QuorumSpec {
  return x === 'one' || x === 'quorum' || x === 'all' || (typeof x === 'number' && Number.isFinite(x)) || (typeof x === 'string' && /^\d+$/.test(x));
}

function optional(o: Record<string, unknown>, field: string, check: (x: unknown) => boolean): void {
  if (o[field] !== undefined && o[field] !== null && !check(o[field])) bad(`field "${field}" has the wrong type`);
}

const isString = (x: unknown): boolean => typeof x === 'string';
const isBytes = (x: unknown): boolean => x instanceof Uint8Array;
const isBool = (x: unknown): boolean => typeof x === 'boolean';
const isIntArray = (x: unknown): boolean => Array.isArray(x) && x.every((i) => Number.isInteger(i) && i >= 0);
const isPositive = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Checks a decoded message against the union; unknown types are refused by name. */
export function validateRequest(raw: unknown): Request {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('request is not an object');
  const o = raw as Record<string, unknown>;
  const t = o.t;
  switch (t) {
    case 'put':
      if (typeof o.key !== 'string') bad('put needs a string key');
      if (!(o.value === null || o.value instanceof Uint8Array)) bad('put needs a bytes value or null');
      optional(o, 'ctx', isString);
      optional(o, 'w', isQuorumSpec);
      optional(o, 'strict', isBool);
      optional(o, 'timeoutMs', isPositive);
      optional(o, 'fwd', isBool);
      return o as unknown as PutRequest;
    case 'get':
      if (typeof o.key !== 'string') bad('get needs a string key');
      optional(o, 'r', isQuorumSpec);
      optional(o, 'strict', isBool);
      optional(o, 'timeoutMs', isPositive);
      return o as unknown as GetRequest;
    case 'status':
    case 'ring':
    case 'timings':
    case 'info':
    case 'hb':
      return o as unknown as Request;
    case 'hput':
      if (typeof o.key !== 'string' || !Number.isInteger(o.partition) || typeof o.target !== 'string' || !isBytes(o.obj))
        bad('hput needs key, partition, target and obj');
      return o as unknown as HintPutRequest;
    case 'ae-root':
      if (!Number.isInteger(o.partition)) bad('ae-root needs a partition');
      return o as unknown as AeRootRequest;
    case 'ae-nodes':
      if (!Number.isInteger(o.partition) || !Number.isInteger(o.level) || !isIntArray(o.indices)) bad('ae-nodes needs partition, level and indices');
      return o as unknown as AeNodesRequest;
    case 'ae-keys':
      if (!Number.isInteger(o.partition) || !isIntArray(o.segments)) bad('ae-keys needs partition and segments');
      return o as unknown as AeKeysRequest;
    case 'ae-done':
      if (!Number.isInteger(o.partition)) bad('ae-done needs a partition');
      return o as unknown as AeDoneRequest;
    case 'ae-get':
      if (!Array.isArray(o.keys) || !o.keys.every((k: unknown) => typeof k === 'string')) bad('ae-get needs a list of keys');
      return o as unknown as AeGetRequest;
    case 'sim-fault':
      if (!Array.isArray(o.blocked) || !o.blocked.every((b: unknown) => typeof b === 'string') || !(typeof o.delayMs === 'number' && o.delayMs >= 0))
        bad('sim-fault needs blocked (a list of node ids) and delayMs (>= 0)');
      optional(o, 'replicaDelay', isString);
      return o as unknown as SimFaultRequest;
    case 'repair':
      optional(o, 'partition', (x) => Number.isInteger(x) && (x as number) >= 0);
      return o as unknown as RepairRequest;
    case 'handoff':
      if (!Array.isArray(o.items) || !o.items.every((i: unknown) => typeof i === 'object' && i !== null && typeof (i as { key: unknown }).key === 'string' && isBytes((i as { obj: unknown }).obj)))
        bad('handoff needs items of {key, obj}');
      return o as unknown as HandoffRequest;
    case 'rput':
      if (typeof o.key !== 'string' || !Number.isInteger(o.partition) || !isBytes(o.obj)) bad('rput needs key, partition and obj');
      return o as unknown as ReplicaPutRequest;
    case 'rget':
      if (typeof o.key !== 'string') bad('rget needs a string key');
      return o as unknown as ReplicaGetRequest;
    default:
      throw new NexusError(ErrorCodes.BAD_FRAME, `unknown message type ${describeValue(t)}`);
  }
}

/** Request types a client may send; the rest are for authenticated peers only. */
export const CLIENT_REQUESTS: ReadonlySet<string> = new Set<RequestType>(['put', 'get', 'status', 'repair', 'sim-fault', 'timings', 'ring', 'rget']);
