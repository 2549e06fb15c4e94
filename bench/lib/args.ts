// What every benchmark's command line shares: where the project is, and the number parsers.

import { InvalidArgumentError } from 'commander';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file runs as dist/bench/lib/args.js). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The built CLI that starts node processes. */
export const CLI_MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** A commander parser for a positive (or, with allowZero, non-negative) number or integer. */
export function positive(what: string, integer: boolean, allowZero = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (n === 0 && !allowZero) || (integer && !Number.isInteger(n)))
      throw new InvalidArgumentError(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}`);
    return n;
  };
}
