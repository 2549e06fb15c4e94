// The `nexus` command line (see README and ../shared/CLI.md for the promised interface).

import { Command, CommanderError } from 'commander';
import { registerDataCommands } from './data-commands.js';
import { registerNodeCommands } from './node-commands.js';
import { printJson } from './output.js';
import { registerSimCommand } from './sim-command.js';
import { registerBenchCommand } from './bench-command.js';

const program = new Command();
program
  .name('nexus')
  .description('Nexus: a Dynamo-style leaderless key-value store')
  .showHelpAfterError()
  .exitOverride();

registerNodeCommands(program);
registerDataCommands(program);
registerSimCommand(program);
registerBenchCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version are successes; everything else commander refuses is a usage error (2).
    if (e.exitCode === 0) process.exit(0);
    if (process.argv.includes('--json')) printJson({ ok: false, error: { code: 'INVALID_ARGUMENT', message: e.message.replace(/^error: /, '') } });
    process.exit(2);
  }
  throw e;
}
