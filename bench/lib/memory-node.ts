// A Nexus node whose storage is in memory (src/storage/memory.ts) instead of SQLite: the same
// `start` arguments as `nexus start`, for bench/storage.ts only. Everything but the storage
// is the shipped node (staging, group commit, read cache and segment hashes included), so the
// difference between it and a real node is what durable SQLite storage costs. It keeps nothing
// across a restart: never use it for data.

import { Command } from 'commander';
import { nodeConfigFrom } from '../../src/cli/node-commands.js';
import { NexusNode } from '../../src/node.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const program = new Command().name('memory-node');
const start = program.command('start').allowUnknownOption(false);
for (const opt of ['--id <id>', '--port <port>', '--data <dir>', '--peers <list>', '--n <n>', '--partitions <q>', '--durability <mode>', '--segments <k>'])
  start.option(opt);
start.action(async (o: Parameters<typeof nodeConfigFrom>[0]) => {
  const { cfg } = nodeConfigFrom(o);
  const node = await NexusNode.start(cfg, { storage: new MemoryStorage({ segments: cfg.segments }) });
  process.stdout.write(`memory node ${cfg.id} listening on ws://${cfg.host}:${cfg.port} (pid ${process.pid}) ready\n`);
  const stop = (): void => void node.stop().then(() => process.exit(0), () => process.exit(1));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
});
await program.parseAsync(process.argv);
