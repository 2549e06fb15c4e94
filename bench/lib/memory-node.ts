// A Nexus node whose storage is in memory (src/storage/memory.ts) instead of SQLite: `nexus start`
// itself, with the same options, for bench/storage.ts only. Everything but the storage is the
// shipped node (staging, group commit, read cache and segment hashes included), so the difference
// between it and a real node is what durable SQLite storage costs. It keeps nothing across a
// restart (--data and --durability do not apply): never use it for data.

import { Command } from 'commander';
import { registerStartCommand } from '../../src/cli/node-commands.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const program = new Command().name('memory-node');
registerStartCommand(program, { name: 'memory node', storage: (cfg) => new MemoryStorage({ segments: cfg.segments }) });
await program.parseAsync(process.argv);
