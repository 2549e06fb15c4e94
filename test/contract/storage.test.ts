// One contract for every Storage implementation: the in-memory one and the SQLite one must agree.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';
import { emptyObject, encodeObject, update, type VersionedObject } from '../../src/core/version.js';
import { keyObjectHash, SegmentHashes, segmentOf } from '../../src/antientropy/segments.js';
import { MemoryStorage, SqliteStorage, type Storage } from '../../src/storage/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The single sibling's value as text (stored values may come back as Buffer, a Uint8Array). */
function text(o: VersionedObject): string {
  expect(o.siblings).toHaveLength(1);
  const v = o.siblings[0]!.value;
  expect(v).toBeInstanceOf(Uint8Array);
  return new TextDecoder().decode(v!);
}

/** An object with one live value written by actor `a`. */
function valueObj(value: string, counter = 1): VersionedObject {
  return update(emptyObject(), {}, 'a', counter, enc(value));
}

/** An object holding only a tombstone. */
function tombstone(counter = 1): VersionedObject {
  return update(emptyObject(), {}, 'a', counter, null);
}

interface Harness {
  name: string;
  create(): Storage;
  cleanup(): void;
}

function memoryHarness(): Harness {
  return { name: 'MemoryStorage', create: () => new MemoryStorage(), cleanup: () => {} };
}

function sqliteHarness(): Harness {
  let dir: string | undefined;
  return {
    name: 'SqliteStorage',
    create() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-storage-contract-'));
      return SqliteStorage.open({ dir, durability: 'os' });
    },
    cleanup() {
      if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

function storageContract(makeHarness: () => Harness): void {
  const harness = makeHarness();
  describe(harness.name, () => {
    let s: Storage;

    beforeEach(() => {
      s = harness.create();
    });

    afterEach(async () => {
      await s.close();
      harness.cleanup();
    });

    it('returns undefined for a key never stored', () => {
      expect(s.get('nope')).toBeUndefined();
    });

    it('round-trips values and tombstones through put and get', async () => {
      const o = update(valueObj('x', 1), {}, 'b', 2, enc('y'));
      await s.put('k', 0, o);
      await s.put('t', 0, tombstone());
      await s.flush();
      const got = s.get('k')!;
      expect(got.vv).toEqual({ a: 1, b: 2 });
      expect(got.siblings.map((x) => [x.actor, x.counter])).toEqual([['a', 1], ['b', 2]]);
      expect(got.siblings.every((x) => x.value instanceof Uint8Array)).toBe(true);
      expect(got.siblings.map((x) => new TextDecoder().decode(x.value!))).toEqual(['x', 'y']);
      expect(s.get('t')!.siblings).toEqual([{ actor: 'a', counter: 1, value: null }]);
    });

    it('gives the encoding of what get sees: staged, committed, overwritten, deleted, collected, or null', async () => {
      const encoded = (k: string): string | null => {
        const e = s.getEncoded(k);
        if (e === undefined) return null;
        expect(e.obj).toEqual(s.get(k)); // the state get sees, with its encoding
        return Buffer.from(e.bytes).toString('hex');
      };
      const expected = (o: VersionedObject | undefined): string | null => (o === undefined ? null : encodeObject(o).toString('hex'));
      expect(encoded('nope')).toBeNull();
      const first = valueObj('x');
      const landed = s.put('k', 0, first);
      expect(encoded('k')).toBe(expected(first)); // staged
      await landed;
      expect(encoded('k')).toBe(expected(first)); // committed (and cached)
      expect(encoded('k')).toBe(expected(s.get('k')));
      const second = update(first, first.vv, 'b', 2, enc('y'));
      await s.put('k', 0, second);
      expect(encoded('k')).toBe(expected(second)); // the cache follows the overwrite
      const dead = tombstone(3);
      await s.put('d', 1, dead);
      expect(encoded('d')).toBe(expected(dead));
      expect(await s.collect('d', 1, dead)).toBe(true);
      expect(encoded('d')).toBeNull(); // collected: get sees nothing either
      expect(s.get('d')).toBeUndefined();
    });

    it('keeps a landed state in buffers of its own, not in the frame its values arrived in', async () => {
      const hex = (o: VersionedObject | undefined): string => encodeObject(o!).toString('hex');
      const first = valueObj('x');
      await s.put('k', 0, first);
      expect(hex(s.get('k'))).toBe(hex(first)); // cached now
      // The new value is a view into a large buffer, as a value decoded from a frame is.
      const frame = new Uint8Array(64 * 1024);
      frame.set(enc('from-a-frame'), 1000);
      const second = update(first, {}, 'b', 2, frame.subarray(1000, 1000 + 'from-a-frame'.length));
      await s.put('k', 0, second);
      const got = s.get('k')!;
      expect(hex(got)).toBe(hex(second));
      for (const sib of got.siblings) expect(sib.value!.buffer).not.toBe(frame.buffer);
      const bytes = s.getEncoded('k')!.bytes;
      expect(bytes.buffer).not.toBe(frame.buffer);
      expect(bytes.toString('hex')).toBe(hex(second));
      frame.fill(0); // the frame's memory reused: the stored state does not change
      expect(hex(s.get('k'))).toBe(hex(update(first, {}, 'b', 2, enc('from-a-frame'))));
    });

    it('shows a staged write to get before the put resolves', async () => {
      const o = valueObj('x');
      const done = s.put('k', 0, o);
      expect(s.get('k')).toEqual(o);
      await done;
      expect(text(s.get('k')!)).toBe('x');
    });

    it('does not resolve a put synchronously', async () => {
      let resolved = false;
      const done = s.put('k', 0, valueObj('x')).then(() => {
        resolved = true;
      });
      await Promise.resolve();
      expect(resolved).toBe(false);
      await done;
      expect(resolved).toBe(true);
    });

    it('commits puts issued in one tick in one transaction, and resolves them all', async () => {
      const before = s.stats();
      const puts: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) puts.push(s.put(`k${i}`, i % 4, valueObj(`v${i}`)));
      await Promise.all(puts);
      const after = s.stats();
      expect(after.commits - before.commits).toBe(1);
      expect(after.writes - before.writes).toBe(50);
      for (let i = 0; i < 50; i++) expect(text(s.get(`k${i}`)!)).toBe(`v${i}`);
    });

    it('collapses puts of one key in one tick to the latest, resolving each', async () => {
      const before = s.stats();
      const first = s.put('k', 0, valueObj('old', 1));
      const second = s.put('k', 0, valueObj('new', 2));
      await Promise.all([first, second]);
      expect(s.stats().writes - before.writes).toBe(1);
      expect(text(s.get('k')!)).toBe('new');
    });

    it('tracks liveKeyCount through puts, tombstones and overwrites', async () => {
      expect(s.liveKeyCount()).toBe(0);
      const p1 = s.put('a', 0, valueObj('x'));
      expect(s.liveKeyCount()).toBe(1); // staged writes count
      await p1;
      expect(s.liveKeyCount()).toBe(1);
      await s.put('b', 1, valueObj('y'));
      expect(s.liveKeyCount()).toBe(2);
      await s.put('t', 0, tombstone()); // tombstone-only object: not live
      expect(s.liveKeyCount()).toBe(2);
      await s.put('a', 0, valueObj('x2', 2)); // live -> live
      expect(s.liveKeyCount()).toBe(2);
      await s.put('a', 0, update(s.get('a')!, s.get('a')!.vv, 'a', 3, null)); // live -> deleted
      expect(s.liveKeyCount()).toBe(1);
      await s.put('t', 0, update(s.get('t')!, {}, 'b', 1, enc('z'))); // deleted -> live sibling
      expect(s.liveKeyCount()).toBe(2);
      // Several states of one key in one tick count once.
      const q = [s.put('c', 0, valueObj('1', 1)), s.put('c', 0, tombstone(2)), s.put('c', 0, valueObj('3', 3))];
      expect(s.liveKeyCount()).toBe(3);
      await Promise.all(q);
      expect(s.liveKeyCount()).toBe(3);
    });

    it('scans one partition in key order, staged writes included', async () => {
      await Promise.all([
        s.put('m', 1, valueObj('m')),
        s.put('b', 1, valueObj('b')),
        s.put('x', 2, valueObj('x')),
        s.put('a', 0, valueObj('a')),
        s.put('z', 1, valueObj('z')),
      ]);
      expect(s.scanPartition(1).map(([k]) => k)).toEqual(['b', 'm', 'z']);
      expect(s.scanPartition(7)).toEqual([]);
      const staged = s.put('c', 1, valueObj('c'));
      const overwrite = s.put('m', 1, valueObj('m2', 2));
      const scan = s.scanPartition(1);
      expect(scan.map(([k]) => k)).toEqual(['b', 'c', 'm', 'z']);
      expect(text(scan[2]![1])).toBe('m2');
      await Promise.all([staged, overwrite]);
      expect(s.scanPartition(1).map(([k]) => k)).toEqual(['b', 'c', 'm', 'z']);
    });

    it('orders keys by code point, as SQLite does', async () => {
      const keys = ['\u{1F600}', '\uFF01', 'b', 'a'];
      await Promise.all(keys.map((k) => s.put(k, 0, valueObj(k))));
      expect(s.scanPartition(0).map(([k]) => k)).toEqual(['a', 'b', '\uFF01', '\u{1F600}']);
    });

    it('gets and sets metadata', () => {
      expect(s.getMeta('actor')).toBeUndefined();
      s.setMeta('actor', 'n1');
      expect(s.getMeta('actor')).toBe('n1');
      s.setMeta('actor', 'n2');
      expect(s.getMeta('actor')).toBe('n2');
    });

    it('keeps segment hashes equal to a rebuild, and lists one segment\'s keys with their hashes', async () => {
      const keys = Array.from({ length: 40 }, (_, i) => `key${i}`);
      await Promise.all(keys.map((k, i) => s.put(k, i % 2, valueObj(k, i + 1))));
      await s.put('key3', 1, update(s.get('key3')!, s.get('key3')!.vv, 'a', 99, null));
      // Hashes follow the committed state: a staged write shows once it has landed.
      const before = s.segmentHashes(1).toArray();
      const staged = s.put('key5', 1, valueObj('later', 100));
      expect(s.segmentHashes(1).toArray()).toEqual(before);
      await staged;
      for (const p of [0, 1]) {
        const rebuilt = SegmentHashes.rebuild(s.scanPartition(p), s.segments);
        expect(s.segmentHashes(p).equals(rebuilt)).toBe(true);
        for (const seg of [...new Set(s.scanPartition(p).map(([k]) => segmentOf(k, s.segments)))].slice(0, 5)) {
          const expected = s.scanPartition(p).filter(([k]) => segmentOf(k, s.segments) === seg).map(([k, o]) => [k, keyObjectHash(k, o)]);
          const listed = s.keyHashes(p, [seg]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
          expect(listed).toEqual(expected.sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
        }
      }
      expect(await s.checkSegments([0, 1, 2])).toEqual([]);
    });

    it('collects a tombstone only while it is the key\'s exact state, and remembers it as reaped', async () => {
      await s.put('live', 0, valueObj('v'));
      await s.put('dead', 0, tombstone(2));
      const dead = s.get('dead')!;
      expect(await s.collect('live', 0, s.get('live')!)).toBe(false); // not a tombstone
      expect(await s.collect('dead', 0, tombstone(3))).toBe(false); // another state
      const before = s.segmentHashes(0).toArray();
      expect(await s.collect('dead', 0, dead)).toBe(true);
      expect(s.get('dead')).toBeUndefined();
      expect(s.reaped('dead')).toEqual(dead);
      expect(s.reapedCount()).toBe(1);
      expect(s.scanPartition(0).map(([k]) => k)).toEqual(['live']);
      // The key no longer counts in its segment, but exchanges still list it as reaped.
      const seg = segmentOf('dead', s.segments);
      expect(s.segmentHashes(0).get(seg).equals(before[seg]!)).toBe(false);
      expect(s.segmentHashes(0).equals(SegmentHashes.rebuild(s.scanPartition(0), s.segments))).toBe(true);
      expect(s.keyHashes(0, [seg]).map(([k]) => k)).not.toContain('dead');
      expect(s.reapedHashes(0, [seg])).toEqual([['dead', keyObjectHash('dead', dead)]]);
      // Writing the key again replaces the reaped record.
      await s.put('dead', 0, update(dead, dead.vv, 'a', 5, enc('back')));
      expect(text(s.get('dead')!)).toBe('back');
      expect(s.reaped('dead')).toBeUndefined();
      expect(s.reapedCount()).toBe(0);
    });

    it('lists only tombstones older than the cutoff, and forgets reaped records by age', async () => {
      await s.put('old', 0, tombstone(1));
      await s.put('value', 0, valueObj('v', 2));
      await new Promise((r) => setTimeout(r, 5));
      const cutoff = Date.now();
      await new Promise((r) => setTimeout(r, 5));
      await s.put('new', 0, tombstone(3));
      expect(s.tombstones(0, cutoff, 10).map(([k]) => k)).toEqual(['old']);
      expect(s.tombstones(0, Date.now() + 1, 10).map(([k]) => k).sort()).toEqual(['new', 'old']);
      expect(s.tombstones(0, Date.now() + 1, 1)).toHaveLength(1);
      expect(s.tombstones(1, Date.now() + 1, 10)).toEqual([]);
      expect(await s.collect('old', 0, s.get('old')!)).toBe(true);
      expect(await s.forgetReaped(cutoff)).toBe(0); // reaped just now
      expect(await s.forgetReaped(Date.now() + 1)).toBe(1);
      expect(s.reaped('old')).toBeUndefined();
      expect(s.reapedCount()).toBe(0);
    });

    it('commits staged writes on close, then refuses work with STOPPING', async () => {
      const pending = s.put('k', 0, valueObj('x'));
      await s.close();
      await pending; // close commits what was staged
      const stopping = (e: unknown) => e instanceof NexusError && e.code === ErrorCodes.STOPPING;
      expect(() => s.get('k')).toThrowError(expect.objectContaining({ code: ErrorCodes.STOPPING }));
      await expect(s.put('k', 0, valueObj('y', 2))).rejects.toSatisfy(stopping);
      expect(() => s.scanPartition(0)).toThrowError(expect.objectContaining({ code: ErrorCodes.STOPPING }));
      expect(() => s.getMeta('x')).toThrowError(expect.objectContaining({ code: ErrorCodes.STOPPING }));
      expect(() => s.setMeta('x', 'y')).toThrowError(expect.objectContaining({ code: ErrorCodes.STOPPING }));
      await s.close(); // closing again is harmless
    });
  });
}

describe('Storage contract', () => {
  storageContract(memoryHarness);
  storageContract(sqliteHarness);
});

describe('MemoryStorage failure hook', () => {
  it('fails a whole batch as disk full and shows the previous state again', async () => {
    let fail = false;
    const s = new MemoryStorage({ failWrites: () => fail });
    await s.put('k', 0, valueObj('old', 1));
    fail = true;
    const p1 = s.put('k', 0, valueObj('new', 2));
    const p2 = s.put('j', 0, valueObj('j'));
    expect(s.liveKeyCount()).toBe(2);
    await expect(p1).rejects.toMatchObject({ code: ErrorCodes.STORAGE_FAILED, message: 'disk full (simulated)' });
    await expect(p2).rejects.toMatchObject({ code: ErrorCodes.STORAGE_FAILED });
    expect(text(s.get('k')!)).toBe('old');
    expect(s.get('j')).toBeUndefined();
    expect(s.liveKeyCount()).toBe(1);
    fail = false;
    await s.put('j', 0, valueObj('j'));
    expect(s.liveKeyCount()).toBe(2);
    await s.close();
  });
});
