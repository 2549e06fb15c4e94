import { describe, expect, it } from 'vitest';
import { PartitionRows } from '../../src/storage/partition-rows.js';

const sorted = (a: Float64Array): number[] => Array.from(a).sort((x, y) => x - y);

describe('PartitionRows', () => {
  it('applies a commit to rowids the open scan has passed and leaves the rest to the scan', () => {
    const rows = new PartitionRows();
    rows.scanned(0, 1, 0);
    rows.scanned(1, 2, 0);
    rows.scanned(0, 5, 0);
    expect(rows.complete).toBe(false);
    rows.inserted(1, 3, 0); // a reused rowid below the scan's position: only the commit can add it
    rows.inserted(0, 9, 0); // above it: the scan will read the row when it gets there
    rows.deleted(0, 1);
    rows.deleted(1, 7); // the scan will not see a deleted row
    rows.moved(1, 0, 2, 0);
    rows.moved(0, 1, 8, 0);
    rows.scanned(1, 8, 0); // the scan reads row 8 where the move left it
    rows.scanned(0, 9, 0);
    rows.scanDone();
    expect(rows.complete).toBe(true);
    expect(sorted(rows.rowids(0))).toEqual([2, 5, 9]);
    expect(sorted(rows.rowids(1))).toEqual([3, 8]);
    expect(rows.rowids(2)).toEqual(new Float64Array(0));
    expect(rows.size).toBe(5);
  });

  it('grows past its first allocation and removes from the middle', () => {
    const rows = new PartitionRows();
    rows.scanDone();
    for (let id = 1; id <= 1000; id++) rows.inserted(id % 3, id, id % 7);
    rows.deleted(2, 500);
    rows.deleted(0, 499); // 499 is in partition 1: nothing happens
    expect(sorted(rows.rowids(2))).toEqual(Array.from({ length: 333 }, (_, i) => 3 * i + 2).filter((id) => id !== 500));
    expect(rows.rowids(1)).toContain(499);
    expect(rows.size).toBe(999);
  });

  it('lists the rows of the segments asked for, through growth, removals and moves', () => {
    const rows = new PartitionRows();
    for (let id = 1; id <= 500; id++) rows.scanned(id % 2, id, id % 5);
    rows.scanDone();
    for (let id = 501; id <= 1000; id++) rows.inserted(id % 2, id, id % 5);
    // Removals swap the last row into the hole: its segment must move with it.
    for (let id = 10; id <= 1000; id += 10) rows.deleted(id % 2, id);
    // A moved row keeps its segment (the key's, whatever the partition).
    rows.moved(1, 0, 3, 3);
    rows.moved(0, 1, 4, 4);
    const expected = (partition: number, segs: number[]): number[] =>
      Array.from({ length: 1000 }, (_, i) => i + 1)
        .filter((id) => id % 10 !== 0)
        .filter((id) => (id === 3 ? 0 : id === 4 ? 1 : id % 2) === partition && segs.includes(id % 5));
    for (const partition of [0, 1])
      for (const segs of [[0], [3], [1, 4], [0, 1, 2, 3, 4]]) expect(sorted(rows.rowids(partition, new Set(segs)))).toEqual(expected(partition, segs));
    expect(sorted(rows.rowids(0))).toEqual(expected(0, [0, 1, 2, 3, 4]));
    expect(rows.rowids(0, new Set([7]))).toEqual(new Float64Array(0));
  });
});
