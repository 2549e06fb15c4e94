// Which keys the committed store may hold: a Bloom filter over every key ever committed, so that a
// read of a key the store has never held (every write of a fresh key: the replica reads before it
// merges) skips SQLite. A point lookup that misses still runs a statement, a read transaction and
// its locks: ~5–8 µs here, three per fresh put across the replicas (~8.5% of the nodes' busy time
// in a profile of the core benchmark's puts). A filter answers in well under a microsecond.
//
// No false negatives: every committed key is added (at open, and before each commit). False
// positives only cost the lookup they would have cost anyway. Keys are never removed (a removed
// row's key stays a "maybe"), so the filter only fills.
//
// It grows as a scalable Bloom filter (Almeida et al., 2007): when the current layer holds its
// capacity, a new layer of twice the capacity takes the new keys, and a key may be present if any
// layer says so. Each layer keeps ~1% false positives at capacity (10 bits and 7 probes per key),
// so the total stays a few percent after many doublings.

const BITS_PER_KEY = 10;
const PROBES = 7;
const MIN_CAPACITY = 1 << 16;

class Layer {
  readonly bits: Uint32Array;
  readonly mask: number;
  count = 0;

  constructor(readonly capacity: number) {
    // A power of two number of bits, so a probe is a mask rather than a division.
    let bits = 1 << 5;
    while (bits < capacity * BITS_PER_KEY) bits *= 2;
    this.bits = new Uint32Array(bits >>> 5);
    this.mask = bits - 1;
  }

  add(h1: number, h2: number): void {
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      this.bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    this.count++;
  }

  has(h1: number, h2: number): boolean {
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

export class KeyFilter {
  private readonly layers: Layer[];
  private h1 = 0;
  private h2 = 0;

  /** `expected`: how many keys the store holds now (the first layer has room for twice as many). */
  constructor(expected = 0) {
    this.layers = [new Layer(Math.max(MIN_CAPACITY, 2 * expected))];
  }

  add(key: string): void {
    if (this.mightHave(key)) return; // keeps a rewritten key from using up capacity
    let top = this.layers[this.layers.length - 1]!;
    if (top.count >= top.capacity) this.layers.push((top = new Layer(2 * top.capacity)));
    top.add(this.h1, this.h2);
  }

  /** False when `key` was never added; true when it was (or, rarely, when it was not). */
  mightHave(key: string): boolean {
    this.hash(key);
    for (const layer of this.layers) if (layer.has(this.h1, this.h2)) return true;
    return false;
  }

  /** Bytes held by the bit arrays. */
  get bytes(): number {
    return this.layers.reduce((n, l) => n + l.bits.byteLength, 0);
  }

  /**
   * Two independent 32-bit hashes of the key's UTF-16 code units (FNV-1a with two offset bases,
   * the second also multiplied through a different odd constant), combined by double hashing
   * (Kirsch and Mitzenmacher) into the probe positions. The filter lives in memory only, so the
   * hash need not be stable across versions.
   */
  private hash(key: string): void {
    let a = 0x811c9dc5;
    let b = 0x9747b28c;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    // Final mixing (murmur3's fmix32), so that keys differing in the last character spread too.
    a ^= a >>> 16;
    a = Math.imul(a, 0x85ebca6b);
    a ^= a >>> 13;
    b ^= b >>> 15;
    b = Math.imul(b, 0xc2b2ae35);
    b ^= b >>> 16;
    this.h1 = a >>> 0;
    this.h2 = (b | 1) >>> 0; // odd: the probes then visit distinct bits of a power-of-two array
  }
}
