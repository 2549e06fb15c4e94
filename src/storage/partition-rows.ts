// Which rows of `objects` belong to each partition, kept in memory instead of in an SQLite index.
//
// Anti-entropy and handoff list a partition's rows; nothing on the write path does. An index on
// `partition` made every commit rewrite one index leaf page per partition its rows fell in (a
// batch of 17 fresh keys touched ~16 of 64 partitions, so ~16 of the commit's ~24 WAL pages);
// dropping it cut 3 nodes' CPU per put by 20–30% in interleaved runs (docs/adr/004). Here a
// partition is a growable array of rowids, 8 bytes per row, with each row's anti-entropy segment
// beside it (4 bytes); the rows themselves are then read by rowid, which is what SQLite did after
// walking the index anyway. An exchange asks for the keys of a few differing segments: keeping the
// segments here lets it read just those rows rather than the whole partition (~10 ms per 3,000
// rows, on the main thread, and under load most partitions differ by a write in flight).
//
// Filled at open by a scan in rowid order that runs beside the commits (sqlite.ts). The scan owns
// the rowids above its position: it reads the table as it is when it gets there. Commits own the
// rowids at or below it, which the scan has passed. So a change made by a commit is applied only
// to a rowid the scan has already covered, and every row is counted exactly once. (Listings also
// check each row's partition in SQL, so a stale rowid could only cost a lookup, never list a row
// of another partition; a missing one would hide a row, which is what the rule prevents.)

export class PartitionRows {
  private readonly lists = new Map<number, { ids: Float64Array; segs: Uint32Array; length: number }>();
  /** Rowids up to here are covered; Infinity once the open scan has read the whole table. */
  private covered = 0;

  /** Whether the lists hold every row (the open scan has finished). */
  get complete(): boolean {
    return this.covered === Infinity;
  }

  /** The highest rowid the open scan has read (Infinity once it has finished): where it goes on. */
  get scannedTo(): number {
    return this.covered;
  }

  /** Rows in all partitions, for tests and stats. */
  get size(): number {
    let n = 0;
    for (const l of this.lists.values()) n += l.length;
    return n;
  }

  // ---- The open scan ----

  /** A row the open scan read; `rowid` is above every rowid it read before. */
  scanned(partition: number, rowid: number, segment: number): void {
    this.push(partition, rowid, segment);
    this.covered = rowid;
  }

  /** The scan found no rows after the last one it read. */
  scanDone(): void {
    this.covered = Infinity;
  }

  // ---- Commits (applied once their transaction has committed) ----

  inserted(partition: number, rowid: number, segment: number): void {
    if (rowid <= this.covered) this.push(partition, rowid, segment);
  }

  deleted(partition: number, rowid: number): void {
    if (rowid <= this.covered) this.drop(partition, rowid);
  }

  moved(from: number, to: number, rowid: number, segment: number): void {
    if (rowid > this.covered || from === to) return;
    this.drop(from, rowid);
    this.push(to, rowid, segment);
  }

  /**
   * The rowids of one partition (only those in `segments`, if given), in no particular order.
   * Meaningful only when `complete`.
   */
  rowids(partition: number, segments?: ReadonlySet<number>): Float64Array {
    const l = this.lists.get(partition);
    if (l === undefined) return new Float64Array(0);
    if (segments === undefined) return l.ids.slice(0, l.length);
    const out: number[] = [];
    for (let i = 0; i < l.length; i++) if (segments.has(l.segs[i]!)) out.push(l.ids[i]!);
    return Float64Array.from(out);
  }

  private push(partition: number, rowid: number, segment: number): void {
    let l = this.lists.get(partition);
    if (l === undefined) {
      l = { ids: new Float64Array(64), segs: new Uint32Array(64), length: 0 };
      this.lists.set(partition, l);
    }
    if (l.length === l.ids.length) {
      const ids = new Float64Array(l.ids.length * 2);
      ids.set(l.ids);
      l.ids = ids;
      const segs = new Uint32Array(l.segs.length * 2);
      segs.set(l.segs);
      l.segs = segs;
    }
    l.segs[l.length] = segment;
    l.ids[l.length++] = rowid;
  }

  /** Removes one rowid (a linear search: deletes and moves are rare, collected tombstones only). */
  private drop(partition: number, rowid: number): void {
    const l = this.lists.get(partition);
    if (l === undefined) return;
    const at = l.ids.subarray(0, l.length).indexOf(rowid);
    if (at < 0) return;
    l.length--;
    l.ids[at] = l.ids[l.length]!;
    l.segs[at] = l.segs[l.length]!;
  }
}
