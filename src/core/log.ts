// Structured logs through pino (fast JSON lines, levels, child loggers). Nodes log to stderr so
// that stdout stays free for the CLI's --json output.

import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level: string = process.env.NEXUS_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { node: name } }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything: unit tests and the simulation. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
