// What every benchmark shares: where the project is, the number parsers, progress lines, the command line

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

/** A timestamped progress line on stderr (stdout stays for the results). */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** The command that reproduces this run: `npm run bench:<name> -- …` or `node dist/bench/<name>.js …`. */
export function commandLine(name: string): string {
  const args = process.argv.slice(2).join(' ');
  if (process.env.npm_lifecycle_event === `bench:${name}`) return `npm run bench:${name}${args ? ` -- ${args}` : ''}`;
  return `node dist/bench/${name}.js${args ? ` ${args}` : ''}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const round2 = (x: number): number => Math.round(x * 100) / 100;
