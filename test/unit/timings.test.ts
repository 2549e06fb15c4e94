import { describe, expect, it } from 'vitest';
import { parseDelaySpec, Recent } from '../../src/core/timings.js';

describe('node timings', () => {
  it('hand over the values since the last take, the latest ones when more came than fit', () => {
    const r = new Recent(4);
    expect(r.take()).toEqual([]);
    r.push(1);
    r.push(2);
    expect(r.take()).toEqual([1, 2]);
    for (let i = 1; i <= 6; i++) r.push(i);
    expect(r.take()).toEqual([3, 4, 5, 6]);
    expect(r.take()).toEqual([]);
  });

  it('parse delay distributions, and refuse the rest naming the forms they take', () => {
    expect(parseDelaySpec('none')).toBeNull();
    expect(parseDelaySpec('const:3')!.sample(0.7)).toBe(3);
    expect(parseDelaySpec('uniform:2-6')!.sample(0.5)).toBe(4);
    const exp = parseDelaySpec('exp:5')!;
    expect(exp.sample(0)).toBe(0);
    expect(exp.sample(1 - Math.exp(-1))).toBeCloseTo(5, 9); // the mean is the 63rd percentile
    for (const bad of ['gauss:3', 'exp:', 'exp:-1', 'uniform:5-2', 'const:x', 'exp:100000'])
      expect(() => parseDelaySpec(bad), bad).toThrow(/exp:MEAN, const:MS or uniform:LO-HI|LO <= HI/);
  });
});
