// A baseline server for the core benchmark, run as its own process (so it never shares the load
// generator's event loop):
//
//   node dist/src/bench/echo-server.js --mode echo
//   node dist/src/bench/echo-server.js --mode fsync --dir <folder>
//
// `echo` sends every binary message straight back. `fsync` first decodes it as a Nexus request
// frame and upserts its key and value into SQLite (WAL, synchronous=FULL) with group commit the
// way Nexus does it: messages arriving in the same event-loop turn are committed in one
// transaction at setImmediate, and each is echoed only after that commit returned.
//
// It listens on an ephemeral port on 127.0.0.1 and prints `listening <port>` on stdout. A text
// message is answered with its counters as JSON ({writes, commits}). It exits when its stdin
// closes (the parent is gone) or on SIGTERM/SIGINT.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { decode } from '../transport/codec.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const mode = arg('--mode') ?? 'echo';
if (mode !== 'echo' && mode !== 'fsync') {
  process.stderr.write(`echo-server: --mode must be echo or fsync, got ${mode}\n`);
  process.exit(2);
}

type Commit = (ws: WebSocket, data: Buffer) => void;

function fsyncCommitter(dir: string): { commit: Commit; close: () => void; stats: () => { commits: number; writes: number } } {
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, 'echo.db'));
  const journal = db.pragma('journal_mode = WAL', { simple: true });
  if (journal !== 'wal') throw new Error(`could not enable WAL (journal_mode is ${String(journal)})`);
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)');
  const upsert = db.prepare<[string, Buffer]>('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  const tx = db.transaction((rows: Array<[string, Buffer]>) => {
    for (const [k, v] of rows) upsert.run(k, v);
  });
  let rows: Array<[string, Buffer]> = [];
  let replies: Array<[WebSocket, Buffer]> = [];
  let scheduled = false;
  let commits = 0;
  let writes = 0;
  const flush = (): void => {
    scheduled = false;
    const batchRows = rows;
    const batchReplies = replies;
    rows = [];
    replies = [];
    tx(batchRows);
    commits++;
    writes += batchRows.length;
    for (const [ws, data] of batchReplies) ws.send(data, { binary: true });
  };
  return {
    commit(ws, data) {
      // The same frame shape Nexus clients send: [kind, id, {t:'put', key, value, ...}, timeout].
      const frame = decode(data) as [number, number, { key: string; value: Uint8Array }, number];
      const msg = frame[2];
      rows.push([msg.key, Buffer.from(msg.value.buffer, msg.value.byteOffset, msg.value.byteLength)]);
      replies.push([ws, data]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    close: () => {
      if (rows.length > 0) flush();
      db.close();
    },
    stats: () => ({ commits, writes }),
  };
}

const store = mode === 'fsync' ? fsyncCommitter(arg('--dir') ?? '.') : undefined;

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 << 20 });
server.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    // A text message is the benchmark asking for the commit counters.
    if (!isBinary) return ws.send(JSON.stringify(store?.stats() ?? { writes: 0, commits: 0 }));
    if (store) store.commit(ws, data);
    else ws.send(data, { binary: true });
  });
});
server.on('listening', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});

const stop = (): void => {
  for (const ws of server.clients) ws.terminate();
  server.close();
  store?.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
