// Reading a node's log after (or during) a run: pino writes one JSON object per line with `time`
// (ms since the epoch) and `msg`; anything else in the file (a stack trace, the "ready" line) is
// skipped. The failure benchmarks take the nodes' own timestamps of "judged down/up" and "handoff
// started/finished" from here.

import { readFileSync } from 'node:fs';

export interface LogEvent {
  time: number;
  msg: string;
  level?: number;
  [field: string]: unknown;
}

export function readLog(path: string): LogEvent[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as LogEvent;
      if (typeof e.time === 'number' && typeof e.msg === 'string') out.push(e);
    } catch {
      // a partial last line
    }
  }
  return out;
}
