// The simulation's HTML report: one self-contained file (inline SVG, no scripts) with the verdict,
// a per-second chart of operations by outcome with p99 latency, and the fault timeline under it.

import type { SimReport } from './run.js';

const W = 900;
const H = 240;
const PAD = 40;

export function htmlReport(r: SimReport): string {
  const pts = r.timeline;
  const last = Math.max(1, ...pts.map((p) => p.t + 1), ...r.faults.map((f) => Math.ceil(f.at / 1000)));
  const maxOps = Math.max(1, ...pts.map((p) => p.ok + p.failed + p.unknown));
  const maxLat = Math.max(1, ...pts.map((p) => p.p99Ms));
  const x = (t: number): number => PAD + ((W - 2 * PAD) * t) / last;
  const y = (v: number, max: number): number => H - PAD - ((H - 2 * PAD) * v) / max;
  const bw = Math.max(1, (W - 2 * PAD) / last - 1);
  const bars = pts
    .map((p) => {
      let base = 0;
      return (['ok', 'unknown', 'failed'] as const)
        .map((k) => {
          const v = p[k];
          const top = y(base + v, maxOps);
          const rect = `<rect x="${x(p.t).toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${(y(base, maxOps) - top).toFixed(1)}" class="${k}"><title>${p.t}s ${k}: ${v}</title></rect>`;
          base += v;
          return rect;
        })
        .join('');
    })
    .join('\n');
  const line = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${(x(p.t) + bw / 2).toFixed(1)},${y(p.p99Ms, maxLat).toFixed(1)}`).join(' ');
  const marks = r.faults
    .map((f) => `<line x1="${x(f.at / 1000)}" x2="${x(f.at / 1000)}" y1="${PAD}" y2="${H - PAD}" class="fault"><title>${f.at} ms: ${f.action} ${f.nodes.join(',')} ${f.detail ?? ''}</title></line>`)
    .join('\n');
  const rows = r.faults.map((f) => `<tr><td>${(f.at / 1000).toFixed(1)} s</td><td>${f.action}</td><td>${f.nodes.join(', ')}</td><td>${esc(f.detail ?? '')}</td></tr>`).join('');
  const phases = Object.entries(r.phases)
    .map(([p, f]) => `<tr><td>${p}</td><td>${f.ops}</td><td>${(f.availability * 100).toFixed(1)}%</td><td>${f.latencyMs.p50} ms</td><td>${f.latencyMs.p99} ms</td></tr>`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>nexus sim ${r.scenario} seed ${r.seed}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:${W}px}.ok{fill:#4a9}.unknown{fill:#e9b44c}.failed{fill:#d55}
.fault{stroke:#555;stroke-dasharray:3 3}.p99{fill:none;stroke:#36c;stroke-width:1.5}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}
.verdict{font-size:20px;font-weight:bold;color:${r.ok ? '#2a7' : '#c33'}}</style></head><body>
<h1>nexus sim — ${r.scenario}, seed ${r.seed}</h1>
<p class="verdict">${r.ok ? 'every check held' : 'a check failed'}</p>
<p>${r.operations} operations, ${r.acknowledgedWrites} acknowledged writes, <b>${r.lostWrites} lost</b>, ${r.resurrected.length} deleted values back,
replicas ${r.converged ? `converged ${r.convergeMs} ms after the faults ended` : '<b>did not converge</b>'}; stale reads ${r.staleReads} of ${r.reads}
(${r.staleReadsForbidden ? 'forbidden here' : 'allowed: sloppy or partial quorums'}); most siblings on a key: ${r.siblings.max}.</p>
<p>Replay: <code>${esc(r.replay)}</code></p>
<svg width="${W}" height="${H}" role="img" aria-label="operations per second by outcome, p99 latency, faults">
<text x="${PAD}" y="20">operations per second (green ok, yellow unknown, red failed); blue: p99 latency (max ${maxLat} ms); dashed: faults</text>
${bars}
<path d="${line}" class="p99"/>
${marks}
<line x1="${PAD}" x2="${W - PAD}" y1="${H - PAD}" y2="${H - PAD}" stroke="#999"/>
<text x="${PAD}" y="${H - 15}">0 s</text><text x="${W - PAD - 30}" y="${H - 15}">${last} s</text><text x="5" y="${PAD + 5}">${maxOps}</text>
</svg>
<h2>Per phase</h2><table><tr><th>phase</th><th>ops</th><th>available</th><th>p50</th><th>p99</th></tr>${phases}</table>
<h2>Faults</h2><table><tr><th>at</th><th>action</th><th>nodes</th><th></th></tr>${rows}</table>
${r.lost.length ? `<h2>Lost writes</h2><pre>${esc(JSON.stringify(r.lost, null, 1))}</pre>` : ''}
${r.resurrected.length ? `<h2>Deleted values back</h2><pre>${esc(JSON.stringify(r.resurrected, null, 1))}</pre>` : ''}
${r.divergentKeys.length ? `<h2>Keys whose replicas differ</h2><pre>${esc(r.divergentKeys.join('\n'))}</pre>` : ''}
</body></html>
`;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
