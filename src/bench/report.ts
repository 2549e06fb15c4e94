// `nexus bench` reports: a markdown summary (terminal, README) and one self-contained HTML file
// with inline SVG charts — throughput and latency per R/W point beside the baselines, and the
// t-visibility curves, measured (dots) with the PBS prediction (dashed) over them. The SVG
// charts are also written on their own so the README can show them.

import type { BaselineResult } from './baselines.js';
import type { CpuPerOp } from './machine.js';
import type { BenchReport, PointResult } from './ycsb.js';
import { WORKLOADS } from './ycsb.js';

const ms = (us: number): string => (us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us} µs`);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const num = (x: number): string => x.toLocaleString('en-US');

function describeRun(r: BenchReport): string {
  const s = r.settings;
  return `Workload ${s.workload} (${WORKLOADS[s.workload].what}), ${s.distribution} over ${num(s.records)} records of ${s.valueBytes} B, ${s.clients} clients, ${s.durationSec} s per point; ${
    s.urls ? `cluster ${s.urls.join(',')}` : `${s.nodes} local nodes, N=${s.n}, fsync`
  }. Machine: ${r.machine.cores} cores, ${r.machine.cpuModel}, Node ${r.machine.node}.`;
}

/** "190 + 52 µs" (servers + client), or what is known of it. */
function cpuText(c: CpuPerOp | undefined): string {
  if (c === undefined) return '—';
  return c.servers === null ? `? + ${c.client} µs` : `${c.servers} + ${c.client} µs`;
}

function measured(b: BenchReport['baselines'][string] | undefined): b is BaselineResult | PointResult {
  return b !== undefined && 'throughput' in b;
}

export function markdown(r: BenchReport): string {
  const s = r.settings;
  const lines = [
    describeRun(r),
    '',
    '| R | W | ops/s | p50 | p95 | p99 | p99.9 | errors | most siblings | stale reads / probes | PBS gap | CPU per op: nodes + client |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.points.map((p) => {
      const st = p.staleness;
      return `| ${p.r} | ${p.w} | ${num(p.throughput)} | ${ms(p.latency.p50)} | ${ms(p.latency.p95)} | ${ms(p.latency.p99)} | ${ms(p.latency.p999)} | ${p.errors} | ${p.siblings.max} | ${
        st ? `${num(st.staleReads)} / ${num(st.probes)}` : '—'
      } | ${st?.maxGapPp !== undefined ? `${st.maxGapPp} pp` : '—'} | ${cpuText(p.cpuPerOp)} |`;
    }),
  ];
  const baseRows = Object.entries(r.baselines);
  if (baseRows.length > 0) {
    lines.push('', '| baseline | ops/s | p50 | p99 | p99.9 | errors | CPU per op: servers + client |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const [name, b] of baseRows) {
      if (measured(b)) lines.push(`| ${name} | ${num(b.throughput)} | ${ms(b.latency.p50)} | ${ms(b.latency.p99)} | ${ms(b.latency.p999)} | ${b.errors} | ${cpuText(b.cpuPerOp)} |`);
      else lines.push(`| ${name} | skipped: ${(b as { skipped: string }).skipped} | | | | | |`);
    }
  }
  const f = r.underFault;
  if (f && 'skipped' in f) lines.push('', `Under a fault: skipped (${f.skipped}).`);
  else if (f) {
    lines.push(
      '',
      `Under a fault — ${f.what}; ${f.durationSec} s per run, clients on the nodes still up:`,
      '',
      '| R | W | quorum | ops/s | succeeded | p50 | p99 | first error |',
      '|---:|---:|---|---:|---:|---:|---:|---|',
      ...f.points.map(
        (p) =>
          `| ${p.r} | ${p.w} | ${p.strict ? 'strict' : 'sloppy'} | ${num(p.throughput)} | ${pct(p.availability)} | ${ms(p.latency.p50)} | ${ms(p.latency.p99)} | ${p.firstError ? esc(p.firstError.slice(0, 90)).replace(/\|/g, '/') : ''} |`,
      ),
    );
  }
  const bars = Object.entries(r.bars);
  if (bars.length > 0) lines.push('', `Bars (R=W=2): ${bars.map(([k, v]) => `${k} ${v.value} (bar ${v.bar}: ${v.met ? 'met' : 'NOT met'})`).join('; ')}.`);
  const withCurves = r.points.filter((p) => p.staleness && p.staleness.visibility.length > 0);
  if (withCurves.length > 0) {
    const ts = withCurves[0]!.staleness!.visibility.map((v) => v.t);
    lines.push(
      '',
      `t-visibility: P(a read t ms after the ack returns the last of ${s.probeVersions} versions), measured / PBS-predicted; replica writes delayed by ${s.replicaDelay}, ${num(s.probesPerT)} probes per t; reads ${s.probeReads === 'direct' ? 'coordinated by the client' : 'coordinated by another node'}.`,
      '',
      `| R | W | ${ts.map((t) => `t=${t} ms`).join(' | ')} |`,
      `|---:|---:|${ts.map(() => '---:').join('|')}|`,
      ...withCurves.map(
        (p) => `| ${p.r} | ${p.w} | ${p.staleness!.visibility.map((v) => `${pct(v.consistent / v.probes)} / ${v.predicted ? pct(v.predicted.consistent) : '—'}`).join(' | ')} |`,
      ),
    );
    const k = withCurves.filter((p) => p.staleness!.staleReads > 0);
    if (k.length > 0)
      lines.push(
        '',
        `k-staleness at t=0: P(at most k−1 versions behind), k = 1…${s.probeVersions}, measured / predicted.`,
        '',
        ...k.map((p) => {
          const v = p.staleness!.visibility[0]!;
          let cum = 0;
          const got = v.behind.slice(0, s.probeVersions).map((c) => (cum += c) / v.probes);
          return `- R=${p.r} W=${p.w}: ${got.map((g, i) => `k=${i + 1} ${pct(g)} / ${v.predicted ? pct(v.predicted.withinK[i]!) : '—'}`).join(', ')}`;
        }),
      );
  }
  return lines.join('\n') + '\n';
}

// ---- SVG charts ----

const COLORS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#666666'];
const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Horizontal bars: one row per label. */
function barChart(title: string, rows: Array<{ label: string; value: number; text: string; muted?: boolean }>): string {
  const w = 760;
  const rowH = 22;
  const left = 150;
  const h = 40 + rows.length * rowH;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const body = rows
    .map((r, i) => {
      const y = 30 + i * rowH;
      const bw = ((w - left - 210) * r.value) / max; // room for the text after the longest bar
      return `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(r.label)}</text><rect x="${left}" y="${y + 2}" width="${bw.toFixed(1)}" height="${rowH - 6}" fill="${r.muted ? '#9aa' : '#3a7'}"/><text x="${(left + bw + 6).toFixed(1)}" y="${y + 14}">${esc(r.text)}</text>`;
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="system-ui,sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/><text x="10" y="18" font-weight="bold">${esc(title)}</text>\n${body}\n</svg>`;
}

/** P(fresh) against t: measured dots joined by solid lines, predictions dashed. */
export function visibilityChart(r: BenchReport): string {
  const curves = r.points.filter((p) => p.staleness && p.staleness.visibility.length > 0);
  const w = 760;
  const h = 360;
  const pad = { l: 50, r: 150, t: 30, b: 40 };
  const maxT = Math.max(1, ...curves.flatMap((p) => p.staleness!.visibility.map((v) => v.t)));
  const x = (t: number): number => pad.l + ((w - pad.l - pad.r) * t) / maxT;
  const y = (p: number): number => h - pad.b - (h - pad.t - pad.b) * p;
  const parts: string[] = [];
  for (let g = 0; g <= 4; g++) parts.push(`<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(g / 4)}" y2="${y(g / 4)}" stroke="#eee"/><text x="${pad.l - 6}" y="${y(g / 4) + 4}" text-anchor="end">${g * 25}%</text>`);
  for (const t of new Set(curves.flatMap((p) => p.staleness!.visibility.map((v) => v.t)))) parts.push(`<text x="${x(t)}" y="${h - pad.b + 16}" text-anchor="middle">${t}</text>`);
  parts.push(`<text x="${(pad.l + w - pad.r) / 2}" y="${h - 8}" text-anchor="middle">t, ms after the write's ack</text>`);
  curves.forEach((p, i) => {
    const c = COLORS[i % COLORS.length]!;
    const vis = p.staleness!.visibility;
    const line = (pts: Array<[number, number]>): string => pts.map(([t, v], j) => `${j === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<path d="${line(vis.map((v) => [v.t, v.consistent / v.probes]))}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
    for (const v of vis) parts.push(`<circle cx="${x(v.t).toFixed(1)}" cy="${y(v.consistent / v.probes).toFixed(1)}" r="3" fill="${c}"><title>R=${p.r} W=${p.w} t=${v.t}: ${pct(v.consistent / v.probes)} measured</title></circle>`);
    const pred = vis.filter((v) => v.predicted);
    if (pred.length > 0) parts.push(`<path d="${line(pred.map((v) => [v.t, v.predicted!.consistent]))}" fill="none" stroke="${c}" stroke-width="1.5" stroke-dasharray="5 4"/>`);
    parts.push(`<text x="${w - pad.r + 10}" y="${pad.t + 14 + i * 18}" fill="${c}">R=${p.r} W=${p.w}${p.staleness!.maxGapPp !== undefined ? ` (gap ${p.staleness!.maxGapPp} pp)` : ''}</text>`);
  });
  const s = r.settings;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="system-ui,sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-weight="bold">P(read returns the latest version), replica delay ${esc(s.replicaDelay)}: measured (dots), PBS (dashed)</text>
${parts.join('\n')}
</svg>`;
}

export function throughputChart(r: BenchReport): string {
  const rows = [
    ...r.points.map((p) => ({ label: `Nexus R=${p.r} W=${p.w}`, value: p.throughput, text: `${num(p.throughput)} ops/s` })),
    ...Object.entries(r.baselines).map(([name, b]) =>
      measured(b) ? { label: name, value: b.throughput, text: `${num(b.throughput)} ops/s`, muted: true } : { label: name, value: 0, text: 'skipped', muted: true },
    ),
  ];
  return barChart(`Throughput, workload ${r.settings.workload}, ${r.settings.clients} clients (${r.machine.cores} cores)`, rows);
}

export function latencyChart(r: BenchReport): string {
  const rows = [
    ...r.points.map((p) => ({ label: `Nexus R=${p.r} W=${p.w}`, value: p.latency.p99, text: `p50 ${ms(p.latency.p50)}, p99 ${ms(p.latency.p99)}` })),
    ...Object.entries(r.baselines)
      .filter(([, b]) => measured(b))
      .map(([name, b]) => {
        const m = b as BaselineResult | PointResult;
        return { label: name, value: m.latency.p99, text: `p50 ${ms(m.latency.p50)}, p99 ${ms(m.latency.p99)}`, muted: true };
      }),
  ];
  return barChart('p99 latency (bar), all operations', rows);
}

export function htmlReport(r: BenchReport): string {
  const table = markdown(r)
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .filter((l) => !/^\|[-:|]+\|$/.test(l));
  const rows = table.map((l) => `<tr>${l.slice(1, -1).split('|').map((c) => `<td>${esc(c.trim())}</td>`).join('')}</tr>`).join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>nexus bench — workload ${r.settings.workload}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:800px}table{border-collapse:collapse}td{padding:2px 8px;border-bottom:1px solid #eee}</style></head><body>
<h1>nexus bench — workload ${r.settings.workload}</h1>
<p>${esc(describeRun(r))}</p>
<h2>Throughput</h2>
${throughputChart(r)}
<h2>Latency</h2>
${latencyChart(r)}
<h2>t-visibility: measured and predicted</h2>
${visibilityChart(r)}
<h2>Figures</h2><table>${rows}</table>
<h2>Settings</h2><pre>${esc(JSON.stringify(r.settings, null, 1))}</pre>
</body></html>
`;
}
