// Who this node is in version vectors, kept with its data so that a dot is never issued twice
// (Riak's kv679 bugs):
// - The actor id is the node id plus an incarnation. A node on an empty data folder, or one that
//   did not shut down cleanly (it may have lost an unsynced tail, or sent a dot to replicas that it
//   never stored itself), takes a new incarnation: its old dots can then never be mistaken for new.
// - Counters come from one node-wide counter reserved durably in blocks: a restart skips to the end
//   of the last reserved block, so a counter never goes back, whatever happened to any one key.
// It also pins the cluster settings: a node refuses data made with other settings.

import { randomBytes } from 'node:crypto';
import { type ClusterSettings, settingsFingerprint } from '../core/config.js';
import { ErrorCodes, NexusError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Storage } from '../storage/types.js';

const COUNTER_BLOCK = 10_000;

export class NodeIdentity {
  private incarnation: string;
  private next: number;
  private limit: number;

  private constructor(
    private readonly storage: Storage,
    readonly nodeId: string,
    private readonly log: Logger,
    private readonly newIncarnation: () => string,
  ) {
    this.incarnation = storage.getMeta('incarnation')!;
    this.limit = Number(storage.getMeta('counter_hwm') ?? '0');
    this.next = this.limit + 1;
  }

  /**
   * Checks the data folder belongs to this node and these settings, takes a new incarnation when
   * the folder is new or the last run did not stop cleanly, and marks the run as in progress.
   */
  static open(storage: Storage, nodeId: string, settings: ClusterSettings, log: Logger, newIncarnation: () => string = randomIncarnation): NodeIdentity {
    const fp = settingsFingerprint(settings);
    const storedNode = storage.getMeta('node_id');
    if (storedNode === undefined) {
      storage.setMeta('node_id', nodeId);
      storage.setMeta('settings', JSON.stringify(settings));
      storage.setMeta('fingerprint', fp);
      storage.setMeta('counter_hwm', '0');
      storage.setMeta('incarnation', newIncarnation());
      storage.setMeta('clean', '1');
      log.info({ fingerprint: fp }, 'initialised a new data folder');
    } else {
      if (storedNode !== nodeId)
        throw new NexusError(ErrorCodes.SETTINGS_MISMATCH, `this data folder belongs to node "${storedNode}", not "${nodeId}"`);
      const storedFp = storage.getMeta('fingerprint');
      if (storedFp !== fp)
        throw new NexusError(
          ErrorCodes.SETTINGS_MISMATCH,
          `this data folder was made with other cluster settings (${describe(storage.getMeta('settings'))}); ` +
            `now given ${describe(JSON.stringify(settings))}. Start with the original members, partitions and N, or use a new data folder`,
        );
      if (storage.getMeta('clean') !== '1') {
        storage.setMeta('incarnation', newIncarnation());
        log.warn('the last run did not stop cleanly: taking a new incarnation so no dot can be reused');
      }
    }
    storage.setMeta('clean', '0');
    return new NodeIdentity(storage, nodeId, log, newIncarnation);
  }

  /** The actor id that tags this node's new dots. */
  get actor(): string {
    return `${this.nodeId}~${this.incarnation}`;
  }

  /** The next counter, never issued before by this node; reserves a new block durably when needed. */
  nextCounter(): number {
    if (this.next > this.limit) {
      const limit = this.limit + COUNTER_BLOCK;
      this.storage.setMeta('counter_hwm', String(limit)); // throws STORAGE_FAILED on a full disk: no dot issued
      this.limit = limit;
    }
    return this.next++;
  }

  /**
   * Called when a local write of a dot this node issued failed: replicas may hold a dot that this
   * node's own state lacks, so later dots must come from a new actor.
   */
  renew(reason: string): void {
    const inc = this.newIncarnation();
    try {
      this.storage.setMeta('incarnation', inc);
    } catch {
      // Not persisted: the run is already marked unclean, so the next start renews again anyway.
    }
    this.incarnation = inc;
    this.log.warn({ reason }, 'took a new incarnation');
  }

  /** Marks a clean stop: the next start may keep this incarnation. */
  markClean(): void {
    this.storage.setMeta('clean', '1');
  }
}

function randomIncarnation(): string {
  return randomBytes(6).toString('base64url');
}

function describe(settingsJson: string | undefined): string {
  try {
    const s = JSON.parse(settingsJson ?? '') as ClusterSettings;
    return `members ${s.members.map((m) => m.id).join(',')}, partitions ${s.partitions}, N ${s.n}`;
  } catch {
    return 'unknown settings';
  }
}
