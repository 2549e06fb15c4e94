// Everything a benchmark or simulation starts is registered here, so that it is stopped and removed however the
// run ends: normally (each owner stops its own in a finally), on an exception, on Ctrl-C or SIGTERM
// (the 'exit' hook kills what is left with SIGKILL and removes temp folders synchronously).

import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const c of children) if (isRunning(c)) c.kill('SIGKILL');
    for (const d of dirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // nothing more can be done while exiting
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nnexus: ${sig}: stopping child processes and removing temp folders\n`);
      process.exit(130);
    });
  }
}

export function isRunning(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

export function trackChild(c: ChildProcess): void {
  install();
  children.add(c);
  c.once('exit', () => children.delete(c));
}

export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}

/** Removes a temp folder now and forgets it. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** SIGTERM, then SIGKILL if the process has not exited within `graceMs`; resolves once it exited. */
export function stopChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (!isRunning(c)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    c.kill('SIGTERM');
  });
}
