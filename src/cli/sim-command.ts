// `nexus sim`: the node-failure simulation on a real local cluster (see src/sim/run.ts). A
// progress bar on stderr while it runs (cli-progress), a summary for people or one JSON document
// with --json, and the report (JSON, HTML) and the history (JSON lines) in --out. Exit status 0
// only when every check holds.

import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCodes, NexusError } from '../core/errors.js';
import { SCENARIOS, validateSchedule, type Scenario, type ScheduledFault } from '../sim/faults.js';
import { htmlReport } from '../sim/html.js';
import { runDeterministic, type DetReport } from '../sim/deterministic.js';
import { runSim, SIM_DEFAULTS, type SimReport } from '../sim/run.js';
import { printJson, reportError } from './output.js';

interface SimCliOptions {
  scenario: string;
  seed?: string;
  duration: string;
  nodes: string;
  clients: string;
  keys: string;
  r: string;
  w: string;
  strict?: boolean;
  out: string;
  json?: boolean;
  node?: string;
  deterministic?: boolean;
  schedule?: string;
}

function whole(v: string, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${what} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

export function registerSimCommand(program: Command): void {
  program
    .command('sim')
    .description('node-failure simulation: a workload on a local cluster while nodes crash, pause and are partitioned; then checks the history')
    .option('--scenario <name>', `${SCENARIOS.join(' | ')}`, 'mixed')
    .option('--schedule <file>', 'the faults from a JSON file instead of a scenario (see docs/adr/008): [{"at":1000,"fault":"kill","nodes":["n2"],"holdMs":2000}, …]')
    .option('--seed <n>', 'seed for every random choice (default: random, printed)')
    .option('--duration <sec>', 'seconds of faults', String(SIM_DEFAULTS.durationSec))
    .option('--nodes <k>', 'node processes', String(SIM_DEFAULTS.nodes))
    .option('--clients <c>', 'concurrent clients', String(SIM_DEFAULTS.clients))
    .option('--keys <k>', 'keys the clients share', String(SIM_DEFAULTS.keys))
    .option('--r <r>', 'read quorum', String(SIM_DEFAULTS.r))
    .option('--w <w>', 'write quorum', String(SIM_DEFAULTS.w))
    .option('--strict', 'strict quorums (primaries only); with R + W > N stale reads then fail the run')
    .option('--out <dir>', 'folder for the report (JSON, HTML) and the history', '.nexus/sim')
    .option('--json', 'print one JSON document instead of the summary')
    .option('--node <url>', 'run against an existing cluster (not supported yet)')
    .option('--deterministic', 'run the nodes in this process on a virtual clock and an in-memory network instead: a seed replays exactly (crashes, partitions, swizzle-clog, dropped/duplicated/reordered frames)')
    .action(async (o: SimCliOptions) => {
      const json = o.json === true;
      try {
        if (o.node !== undefined)
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, 'nexus sim starts its own cluster; running it against an existing one (--node) is not supported yet');
        if (o.schedule !== undefined && o.deterministic)
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, '--schedule drives a real cluster; --deterministic runs draw their faults from the seed');
        if (o.schedule === undefined && !SCENARIOS.includes(o.scenario as Scenario))
          throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `unknown scenario "${o.scenario}": use ${SCENARIOS.join(', ')}`);
        const nodes = whole(o.nodes, '--nodes', 2, 16);
        const n = Math.min(3, nodes);
        const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : whole(o.seed, '--seed', 0, 2 ** 32 - 1);
        let schedule: ScheduledFault[] | undefined;
        if (o.schedule !== undefined) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(readFileSync(o.schedule, 'utf8'));
          } catch (e) {
            throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `cannot read the schedule ${o.schedule}: ${(e as Error).message}`);
          }
          try {
            schedule = validateSchedule(parsed, Array.from({ length: nodes }, (_, i) => `n${i + 1}`));
          } catch (e) {
            throw new NexusError(ErrorCodes.INVALID_ARGUMENT, `${o.schedule}: ${(e as Error).message}`);
          }
        }
        const opts = {
          ...SIM_DEFAULTS,
          scenario: (schedule !== undefined ? 'file' : o.scenario) as Scenario | 'file',
          ...(schedule !== undefined ? { schedule } : {}),
          seed,
          durationSec: whole(o.duration, '--duration', 1, 24 * 3600),
          nodes,
          n,
          clients: whole(o.clients, '--clients', 1, 256),
          keys: whole(o.keys, '--keys', 1, 100_000),
          r: whole(o.r, '--r', 1, n),
          w: whole(o.w, '--w', 1, n),
          strict: o.strict === true,
        };
        if (o.deterministic) {
          const { report } = await runDeterministic({
            seed,
            nodes,
            n,
            faultSec: opts.durationSec,
            clients: opts.clients,
            keys: opts.keys,
            r: opts.r,
            w: opts.w,
          });
          if (json) printJson(report);
          else process.stdout.write(detSummary(report));
          process.exitCode = report.ok ? 0 : 1;
          return;
        }
        const bar = new SingleBar({ format: 'nexus sim [{bar}] {percentage}% | {status}', hideCursor: true, stream: process.stderr, noTTYOutput: false }, undefined);
        if (process.stderr.isTTY) bar.start(100, 0, { status: 'starting' });
        else
          process.stderr.write(
            `nexus sim: ${schedule ? `${schedule.length} scheduled faults from ${o.schedule}` : `scenario ${opts.scenario}, ${opts.durationSec} s of faults`}, seed ${seed}, ${nodes} nodes\n`,
          );
        let result: Awaited<ReturnType<typeof runSim>>;
        try {
          result = await runSim({ ...opts, progress: (f, status) => process.stderr.isTTY && bar.update(Math.round(f * 100), { status }) });
        } finally {
          if (process.stderr.isTTY) bar.stop();
        }
        const { report, history } = result;
        const dir = resolve(o.out);
        mkdirSync(dir, { recursive: true });
        const base = join(dir, `sim-${report.scenario}-${report.seed}`);
        writeFileSync(`${base}.json`, JSON.stringify(report, null, 2));
        writeFileSync(`${base}.history.jsonl`, history.map((h) => JSON.stringify(h)).join('\n') + '\n');
        writeFileSync(`${base}.html`, htmlReport(report));
        if (json) printJson({ ...report, files: { json: `${base}.json`, html: `${base}.html`, history: `${base}.history.jsonl` } });
        else process.stdout.write(summary(report, base));
        process.exitCode = report.ok ? 0 : 1;
      } catch (e) {
        process.exitCode = reportError(e, { json });
      }
    });
}

function summary(r: SimReport, base: string): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `${r.ok ? 'PASS' : 'FAIL'}  scenario ${r.scenario}, seed ${r.seed}, ${r.settings.nodes} nodes (N=${r.settings.n}, R=${r.settings.r}, W=${r.settings.w}${r.settings.strict ? ', strict' : ''})`,
    `  operations              ${r.operations} (${r.faults.filter((f) => f.action !== 'heal' && f.action !== 'restart' && f.action !== 'resume').length} fault episodes)`,
    `  acknowledged writes     ${r.acknowledgedWrites}`,
    `  lost writes             ${r.lostWrites}${r.lost.length ? `  e.g. ${JSON.stringify(r.lost[0])}` : ''}`,
    `  deleted values back     ${r.resurrected.length}`,
    `  replicas converged      ${r.converged && r.convergeMs !== null ? `yes, ${r.convergeMs} ms after the faults` : 'NO'}`,
    `  stale reads             ${r.staleReads} of ${r.reads} (${r.staleReadsForbidden ? 'forbidden: strict, R + W > N' : 'allowed: sloppy or partial quorums'})`,
    `  most siblings on a key  ${r.siblings.max} (${r.siblings.keysWithSiblings} keys with siblings)`,
    ...Object.entries(r.phases).map(([p, f]) => `  ${`${p}:`.padEnd(24)}${pct(f.availability)} available, p50 ${f.latencyMs.p50} ms, p99 ${f.latencyMs.p99} ms (${f.ops} ops)`),
    `  report                  ${base}.html (also .json, .history.jsonl)`,
    `  replay                  ${r.replay}`,
  ];
  return lines.join('\n') + '\n';
}

function detSummary(r: DetReport): string {
  return [
    `${r.ok ? 'PASS' : 'FAIL'}  deterministic simulation, seed ${r.seed} (${r.steps} scheduler steps)`,
    `  operations ${r.operations}, acknowledged writes ${r.acknowledgedWrites}, lost ${r.lostWrites}, deleted values back ${r.resurrected.length}`,
    `  replicas ${r.converged && r.convergeMs !== null ? `converged ${r.convergeMs} ms (virtual) after healing` : 'DID NOT converge'}`,
    `  faults: ${r.faults.join('; ')}`,
    ...(r.ok ? [] : [`  lost: ${JSON.stringify(r.lost.slice(0, 3))}`, `  divergent keys: ${r.divergentKeys.join(', ')}`]),
    `  replay: ${r.replay}`,
  ].join('\n') + '\n';
}
