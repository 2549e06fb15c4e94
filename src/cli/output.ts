// How the CLI speaks: one JSON document on stdout with --json, lines for people otherwise, a
// one-line reason on stderr for failures, and exit status 0 (ok), 2 (usage or invalid input) or 1.

import { isUsageError, NexusError } from '../core/errors.js';

export interface OutputMode {
  json: boolean;
}

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc) + '\n');
}

/** Values as CLI.md promises: UTF-8 text, or {"base64": …} for bytes that are not valid UTF-8. */
export function valueForJson(v: Uint8Array): string | { base64: string } {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(v);
  } catch {
    return { base64: Buffer.from(v).toString('base64') };
  }
}

export function valueForPeople(v: Uint8Array): string {
  const j = valueForJson(v);
  return typeof j === 'string' ? j : `(binary, base64) ${j.base64}`;
}

/** Reports a failure and returns the exit status to use. */
export function reportError(err: unknown, mode: OutputMode): number {
  const e = NexusError.from(err);
  const status = isUsageError(e.code) ? 2 : 1;
  const line = e.message.split('\n')[0]!;
  if (mode.json) printJson({ ok: false, error: { code: e.code, message: line } });
  process.stderr.write(`error: ${line}\n`);
  return status;
}
