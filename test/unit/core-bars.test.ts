// The core benchmark's bars over several rounds (bench/lib/report.ts): pure, no processes.
import { describe, expect, it } from 'vitest';
import { medianBars, type Bar } from '../../bench/lib/report.js';

const bar = (name: string, ratio: number, op: Bar['op'], target: number): Bar => ({
  name,
  ratio,
  op,
  target,
  pass: op === '>=' ? ratio >= target : ratio <= target,
});

describe('medianBars', () => {
  it('takes the median of the rounds ratio by ratio, and judges the median', () => {
    const rounds = [
      [bar('put', 0.54, '>=', 0.5), bar('lat', 1.6, '<=', 2)],
      [bar('put', 0.37, '>=', 0.5), bar('lat', 2.1, '<=', 2)],
      [bar('put', 0.44, '>=', 0.5), bar('lat', 1.7, '<=', 2)],
    ];
    expect(medianBars(rounds)).toEqual([bar('put', 0.44, '>=', 0.5), bar('lat', 1.7, '<=', 2)]);
  });

  it('with an even count takes the middle value on the failing side', () => {
    const rounds = [
      [bar('put', 0.55, '>=', 0.5), bar('lat', 1.9, '<=', 2)],
      [bar('put', 0.45, '>=', 0.5), bar('lat', 2.2, '<=', 2)],
    ];
    const [put, lat] = medianBars(rounds);
    expect(put).toMatchObject({ ratio: 0.45, pass: false });
    expect(lat).toMatchObject({ ratio: 2.2, pass: false });
  });

  it('with one round returns its bars', () => {
    const one = [bar('put', 0.4, '>=', 0.5)];
    expect(medianBars([one])).toEqual(one);
  });
});
