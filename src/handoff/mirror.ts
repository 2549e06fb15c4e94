// The hint store's logic, shared by the SQLite and in-memory versions: every hint is mirrored in
// memory (a stand-in holds hints only for the length of an outage, and reads and delivery must not
// touch the disk), and changes are persisted by group commit through a `HintPersister` — the hints
// written in one event-loop turn are committed together, one batch in flight at a time, and an
// `addHint` resolves only once the batch holding its latest version is durable.

import { ErrorCodes, NexusError } from '../core/errors.js';
import { merge, type VersionedObject } from '../core/version.js';
import type { Hint, HintStore } from './types.js';

/** Writes hint changes durably; resolves once committed, rejects with STORAGE_FAILED. */
export interface HintPersister {
  persist(upserts: Hint[], deletes: number[]): Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: NexusError) => void;
}

export class HintMirror implements HintStore {
  private readonly byId = new Map<number, Hint>();
  private readonly byTargetKey = new Map<string, number>();
  private readonly byKey = new Map<string, Set<number>>();
  /** Hint ids per target, oldest first: delivery and counts never walk other targets' hints. */
  private readonly byTarget = new Map<string, Set<number>>();
  private nextId = 1;
  private dirty = new Set<number>();
  private deleted = new Set<number>();
  private waiters: Waiter[] = [];
  private scheduled = false;
  private inFlight = false;

  constructor(
    private readonly persister: HintPersister,
    existing: Hint[] = [],
    /** Runs the group commit once the current burst of work is done (the simulation injects its scheduler). */
    private readonly defer: (fn: () => void) => void = setImmediate,
  ) {
    for (const h of existing) this.index(h);
  }

  async addHint(target: string, key: string, partition: number, obj: VersionedObject, now: number): Promise<void> {
    const tk = `${target}\u0000${key}`;
    const id = this.byTargetKey.get(tk);
    const hint = id === undefined ? undefined : this.byId.get(id);
    let changedId: number;
    if (hint) {
      const merged = merge(hint.obj, obj);
      hint.obj = merged;
      hint.version++;
      changedId = hint.id;
    } else {
      const fresh: Hint = { id: this.nextId, version: 1, target, key, partition, obj, createdAt: now };
      this.index(fresh);
      changedId = fresh.id;
    }
    this.dirty.add(changedId);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  hintsFor(target: string, limit: number): Hint[] {
    const out: Hint[] = [];
    for (const id of this.byTarget.get(target) ?? []) {
      out.push({ ...this.byId.get(id)! });
      if (out.length >= limit) break;
    }
    return out;
  }

  hintedState(key: string): VersionedObject | undefined {
    const ids = this.byKey.get(key);
    if (!ids) return undefined;
    let state: VersionedObject | undefined;
    for (const id of ids) {
      const h = this.byId.get(id)!;
      state = state ? merge(state, h.obj) : h.obj;
    }
    return state;
  }

  removeHints(done: ReadonlyArray<{ id: number; version: number }>): number {
    let removed = 0;
    for (const { id, version } of done) {
      const h = this.byId.get(id);
      if (!h || h.version !== version) continue; // gone already, or updated since it was sent
      this.byId.delete(id);
      this.byTargetKey.delete(`${h.target}\u0000${h.key}`);
      const ids = this.byKey.get(h.key)!;
      ids.delete(id);
      if (ids.size === 0) this.byKey.delete(h.key);
      const forTarget = this.byTarget.get(h.target)!;
      forTarget.delete(id);
      if (forTarget.size === 0) this.byTarget.delete(h.target);
      this.dirty.delete(id);
      this.deleted.add(id);
      removed++;
    }
    // Deletes are persisted lazily: losing one only means delivering that hint again (a no-op merge).
    if (removed > 0) this.schedule();
    return removed;
  }

  pendingHints(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [target, ids] of this.byTarget) out.set(target, ids.size);
    return out;
  }

  hintsOlderThan(before: number, limit: number): Hint[] {
    const out: Hint[] = [];
    for (const h of this.byId.values()) {
      if (h.createdAt < before) out.push({ ...h });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Resolves once every change made so far is persisted (or failed). */
  async flush(): Promise<void> {
    if (this.dirty.size === 0 && this.deleted.size === 0 && !this.inFlight) return;
    await new Promise<void>((resolve) => {
      this.waiters.push({ resolve, reject: () => resolve() });
      this.schedule();
    });
  }

  private index(h: Hint): void {
    this.byId.set(h.id, h);
    this.byTargetKey.set(`${h.target}\u0000${h.key}`, h.id);
    let ids = this.byKey.get(h.key);
    if (!ids) this.byKey.set(h.key, (ids = new Set()));
    ids.add(h.id);
    let forTarget = this.byTarget.get(h.target);
    if (!forTarget) this.byTarget.set(h.target, (forTarget = new Set()));
    forTarget.add(h.id);
    if (h.id >= this.nextId) this.nextId = h.id + 1;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      void this.commit();
    });
  }

  private async commit(): Promise<void> {
    if (this.inFlight) return;
    const upserts = [...this.dirty].map((id) => this.byId.get(id)).filter((h): h is Hint => h !== undefined).map((h) => ({ ...h }));
    const deletes = [...this.deleted];
    const waiters = this.waiters;
    this.dirty = new Set();
    this.deleted = new Set();
    this.waiters = [];
    if (upserts.length === 0 && deletes.length === 0) {
      for (const w of waiters) w.resolve();
      return;
    }
    this.inFlight = true;
    try {
      await this.persister.persist(upserts, deletes);
      for (const w of waiters) w.resolve();
    } catch (e) {
      // Not acknowledged, but still held: retry with the next batch (hints may be the only copy).
      for (const h of upserts) if (this.byId.get(h.id)?.version === h.version) this.dirty.add(h.id);
      for (const id of deletes) if (!this.byId.has(id)) this.deleted.add(id);
      const err = e instanceof NexusError ? e : new NexusError(ErrorCodes.STORAGE_FAILED, `storing hints failed: ${(e as Error).message}`);
      for (const w of waiters) w.reject(err);
    } finally {
      this.inFlight = false;
      if (this.waiters.length > 0) this.schedule();
    }
  }
}
