import { describe, expect, it } from 'vitest';
import { KeyFilter } from '../../src/storage/key-filter.js';

describe('KeyFilter', () => {
  it('never forgets a key it was given, across its growth', () => {
    const f = new KeyFilter(0);
    const keys = Array.from({ length: 300_000 }, (_, i) => (i % 3 === 0 ? `user${i * 7919}` : i % 3 === 1 ? `κλειδί/${i}` : `😀${i}`));
    for (const k of keys) f.add(k);
    expect(f.bytes).toBeGreaterThan(new KeyFilter(0).bytes); // it grew a layer
    expect(keys.filter((k) => !f.mightHave(k))).toEqual([]);
  });

  it('says no to nearly every key it was not given', () => {
    const f = new KeyFilter(100_000);
    for (let i = 0; i < 100_000; i++) f.add(`present-${i}`);
    let maybe = 0;
    for (let i = 0; i < 100_000; i++) if (f.mightHave(`absent-${i}`)) maybe++;
    expect(maybe / 100_000).toBeLessThan(0.02);
    expect(new KeyFilter().mightHave('')).toBe(false);
  });
});
