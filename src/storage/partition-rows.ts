// Which rows of `objects` belong to each partition, kept in memory instead of in an SQLite index.
//
// Anti-entropy and handoff list a partition's rows; nothing on the write path does. An index on
// `partition` made every commit rewrite one index leaf page per partition its rows fell in (a
// batch of 17 fresh keys touched ~16 of 64 partitions, so ~16 of the commit's ~24 WAL pages);
// dropping it cut 3 nodes' CPU per put by 20–30% in interleaved runs (docs/adr/004). Here a
// partition is a growable array of rowids, 8 bytes per row; the rows themselves are then read by
// rowid, which is what SQLite did after walking the index anyway.
//
// Filled at open by a scan in rowid order that runs beside the commits (sqlite.ts). The scan owns
// the rowids above its position: it reads the table as it is when it gets there. Commits own the
// rowids at or below it, which the scan has passed. So a change made by a commit is applied only
// to a rowid the scan has already covered, and every row is counted exactly once. (Listings also
// check each row's partition in SQL, so a stale rowid could only cost a lookup, never list a row
// of another partition; a missing one would hide a row, which is what the rule prevents.)

export class PartitionRows {
  private readonly lists = new Map<number, { ids: Float64Array; length: number }>();
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
  scanned(partition: number, rowid: number): void {
    this.push(partition, rowid);
    this.covered = rowid;
  }

  /** The scan found no rows after the last one it read. */
  scanDone(): void {
    this.covered = Infinity;
  }

  // ---- Commits (applied once their transaction has committed) ----

  inserted(partition: number, rowid: number): void {
    if (rowid <= this.covered) this.push(partition, rowid);
  }

  deleted(partition: number, rowid: number): void {
    if (rowid <= this.covered) this.drop(partition, rowid);
  }

  moved(from: number, to: number, rowid: number): void {
    if (rowid > this.covered || from === to) return;
    this.drop(from, rowid);
    this.push(to, rowid);
  }

  /** The rowids of one partition, in no particular order. Meaningful only when `complete`. */
  rowids(partition: number): Float64Array {
    const l = this.lists.get(partition);
    return l === undefined ? new Float64Array(0) : l.ids.slice(0, l.length);
  }

  private push(partition: number, rowid: number): void {
    let l = this.lists.get(partition);
    if (l === undefined) {
      l = { ids: new Float64Array(64), length: 0 };
      this.lists.set(partition, l);
    }
    if (l.length === l.ids.length) {
      const grown = new Float64Array(l.ids.length * 2);
      grown.set(l.ids);
      l.ids = grown;
    }
    l.ids[l.length++] = rowid;
  }

  /** Removes one rowid (a linear search: deletes are rare, collected tombstones only). */
  private drop(partition: number, rowid: number): void {
    const l = this.lists.get(partition);
    if (l === undefined) return;
    const at = l.ids.subarray(0, l.length).indexOf(rowid);
    if (at < 0) return;
    l.ids[at] = l.ids[--l.length]!;
  }
}
