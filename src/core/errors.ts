// One error class with a stable `code` per failure, so that the CLI, the client and the wire
// protocol can all speak about failures without parsing messages. Each code says when it is thrown.

export const ErrorCodes = {
  /** Thrown when a request or a setting is malformed: bad R/W, empty key, junk option. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** Thrown when a key is longer than the key limit (1 KiB). */
  KEY_TOO_LARGE: 'KEY_TOO_LARGE',
  /** Thrown when a value is longer than the configured value limit. */
  VALUE_TOO_LARGE: 'VALUE_TOO_LARGE',
  /** Thrown when a write would leave a key with more siblings than allowed: read and resolve. */
  TOO_MANY_SIBLINGS: 'TOO_MANY_SIBLINGS',
  /** Thrown when a causal context sent by a client cannot be decoded. */
  BAD_CONTEXT: 'BAD_CONTEXT',
  /** Thrown when fewer replicas than R or W answered before the deadline. */
  QUORUM_NOT_MET: 'QUORUM_NOT_MET',
  /** Thrown when a request ran past its deadline. */
  TIMEOUT: 'TIMEOUT',
  /** Thrown when a link has too many requests in flight or too many bytes buffered. */
  OVERLOADED: 'OVERLOADED',
  /** Thrown when no link to a node could be established or it closed mid-request. */
  UNREACHABLE: 'UNREACHABLE',
  /** Thrown when the peer or client failed the challenge–response over the cluster secret. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** Thrown when a peer speaks another protocol version or has other cluster settings. */
  INCOMPATIBLE: 'INCOMPATIBLE',
  /** Thrown when a frame cannot be decoded or has an unknown message type. */
  BAD_FRAME: 'BAD_FRAME',
  /** Thrown when the local disk refuses a write (full, read-only, I/O error). */
  STORAGE_FAILED: 'STORAGE_FAILED',
  /** Thrown when a node is asked to act on data made with other cluster settings. */
  SETTINGS_MISMATCH: 'SETTINGS_MISMATCH',
  /** Thrown when a node is shutting down and refuses new work. */
  STOPPING: 'STOPPING',
  /** Thrown for anything unexpected; the message says what. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const KNOWN = new Set<string>(Object.values(ErrorCodes));

export class NexusError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'NexusError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }

  /** The plain form that crosses the wire. */
  toWire(): WireError {
    return { code: this.code, message: this.message };
  }

  /** Rebuilds an error received from the wire; unknown codes become INTERNAL. */
  static fromWire(e: WireError): NexusError {
    const code = KNOWN.has(e.code) ? (e.code as ErrorCode) : ErrorCodes.INTERNAL;
    return new NexusError(code, e.message);
  }

  /** Wraps anything thrown into a NexusError, keeping the code of one that already is. */
  static from(err: unknown): NexusError {
    if (err instanceof NexusError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new NexusError(ErrorCodes.INTERNAL, message);
  }
}

export interface WireError {
  code: string;
  message: string;
}

/** Input errors are the caller's fault: the CLI exits 2 for these, 1 for everything else. */
export function isUsageError(code: string): boolean {
  return (
    code === ErrorCodes.INVALID_ARGUMENT ||
    code === ErrorCodes.KEY_TOO_LARGE ||
    code === ErrorCodes.VALUE_TOO_LARGE ||
    code === ErrorCodes.BAD_CONTEXT
  );
}
