// Storage in memory, for unit tests and the deterministic simulation. Same staging, group commit
// and failure semantics as the SQLite storage (both extend StagedStorage); objects are kept encoded,
// as on disk, so a caller that mutates an object after `put` cannot change what was "stored".

import { ErrorCodes, NexusError } from '../core/errors.js';
import { decodeObject, type VersionedObject } from '../core/version.js';
import { compareKeys, StagedStorage, type StagedWrite } from './staging.js';
import type { Storage } from './types.js';

export interface MemoryStorageOptions {
  /**
   * Consulted once per group commit; when it returns true the whole batch fails with
   * STORAGE_FAILED "disk full (simulated)" and nothing of it is kept. Meta writes never fail.
   * Default: never fail.
   */
  failWrites?: () => boolean;
}

interface Row {
  partition: number;
  live: boolean;
  bytes: Buffer;
}

export class MemoryStorage extends StagedStorage implements Storage {
  private readonly rows = new Map<string, Row>();
  private readonly meta = new Map<string, string>();
  private readonly failWrites: () => boolean;

  constructor(opts: MemoryStorageOptions = {}) {
    super(0);
    this.failWrites = opts.failWrites ?? (() => false);
  }

  getMeta(name: string): string | undefined {
    this.assertOpen();
    return this.meta.get(name);
  }

  setMeta(name: string, value: string): void {
    this.assertOpen();
    this.meta.set(name, value);
  }

  protected readCommitted(key: string): VersionedObject | undefined {
    const row = this.rows.get(key);
    return row === undefined ? undefined : decodeObject(row.bytes);
  }

  protected readCommittedLive(key: string): boolean {
    return this.rows.get(key)?.live ?? false;
  }

  protected scanCommitted(partition: number): Array<[string, VersionedObject]> {
    const out: Array<[string, VersionedObject]> = [];
    for (const [key, row] of this.rows) if (row.partition === partition) out.push([key, decodeObject(row.bytes)]);
    return out.sort((x, y) => compareKeys(x[0], y[0]));
  }

  protected commitBatch(batch: ReadonlyArray<readonly [string, StagedWrite]>): void {
    if (this.failWrites()) throw new NexusError(ErrorCodes.STORAGE_FAILED, 'disk full (simulated)');
    for (const [key, w] of batch) this.rows.set(key, { partition: w.partition, live: w.live, bytes: w.bytes });
  }

  protected closeStore(): void {}
}
