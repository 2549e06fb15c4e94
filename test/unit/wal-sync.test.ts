// WalSync: one fdatasync covers the commits before it; a commit made while one runs waits for the
// next; the first failure is final. Driven by a fake sync function (pure logic).

import { describe, expect, it } from 'vitest';
import { WalSync } from '../../src/storage/wal-sync.js';

/** A sync function whose calls complete only when the test says so. */
function manualSync(): { fn: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void; calls: Array<(err: NodeJS.ErrnoException | null) => void> } {
  const calls: Array<(err: NodeJS.ErrnoException | null) => void> = [];
  return { fn: (_fd, cb) => void calls.push(cb), calls };
}

const settled = async (p: Promise<unknown>): Promise<string> => {
  let state = 'pending';
  p.then(() => (state = 'resolved'), () => (state = 'rejected'));
  await new Promise((r) => setImmediate(r));
  return state;
};

describe('WalSync', () => {
  it('shares one sync between the commits waiting when it starts, and starts the next for later ones', async () => {
    const { fn, calls } = manualSync();
    const sync = new WalSync(7, fn);
    const a = sync.sync();
    expect(calls).toHaveLength(1); // started at once
    const b = sync.sync(); // came after the running sync started: must wait for a new one
    const c = sync.sync();
    expect(calls).toHaveLength(1);
    calls[0]!(null);
    expect(await settled(a)).toBe('resolved');
    expect(await settled(b)).toBe('pending');
    expect(calls).toHaveLength(2); // one sync for both b and c
    calls[1]!(null);
    expect(await settled(b)).toBe('resolved');
    expect(await settled(c)).toBe('resolved');
    expect(sync.syncs).toBe(2);
  });

  it('fails every waiter, and every later sync, with the first error', async () => {
    const { fn, calls } = manualSync();
    const sync = new WalSync(7, fn);
    const eio = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    const a = sync.sync();
    const b = sync.sync();
    calls[0]!(eio);
    await expect(a).rejects.toBe(eio);
    await expect(b).rejects.toBe(eio); // never synced again: the dirty pages' state is unknown
    await expect(sync.sync()).rejects.toBe(eio);
    expect(calls).toHaveLength(1);
  });
});
