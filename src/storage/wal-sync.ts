// Durability for commits made with synchronous=NORMAL: an fdatasync of the WAL file on libuv's
// thread pool, so the main thread never waits for the disk. In WAL mode synchronous=FULL differs
// from NORMAL only by syncing the WAL after each commit; doing that here, before a batch is
// acknowledged, gives the same guarantee (an acknowledged write survives a power loss) while the
// event loop keeps serving. One sync covers every commit that finished before it started, so
// commits arriving during a sync share the next one.
//
// After a failed fdatasync the state of the file's dirty pages is unknown (Linux may have dropped
// them and a later sync may then succeed without writing them), so the first failure is final:
// every later sync rejects with it.

import { fdatasync } from 'node:fs';

type SyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class WalSync {
  /** Waiters of the sync running now, or undefined when none is. */
  private running: Waiter[] | undefined;
  /** Waiters for the next sync: their commits finished after the running one started. */
  private next: Waiter[] = [];
  private failure: Error | undefined;
  private count = 0;

  constructor(
    private readonly fd: number,
    private readonly syncFn: SyncFn = fdatasync,
  ) {}

  /** Resolves once everything written to the file before this call is on disk. */
  sync(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.next.push({ resolve, reject });
      if (this.running === undefined) this.start();
    });
  }

  /** Syncs run so far (each may have covered several commits). */
  get syncs(): number {
    return this.count;
  }

  private start(): void {
    const group = this.next;
    this.next = [];
    this.running = group;
    this.count++;
    this.syncFn(this.fd, (err) => {
      this.running = undefined;
      if (err !== null) this.failure ??= err;
      for (const w of group) {
        if (this.failure !== undefined) w.reject(this.failure);
        else w.resolve();
      }
      if (this.next.length === 0) return;
      if (this.failure !== undefined) {
        const waiting = this.next;
        this.next = [];
        for (const w of waiting) w.reject(this.failure);
        return;
      }
      this.start();
    });
  }
}
