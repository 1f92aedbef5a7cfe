// The bench's results: a Markdown report, the same data as JSON, and an SVG chart of the ratios against their
// targets, written to bench/results/<name>.{md,json,svg}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TargetResult {
  id: string;
  /** What is measured, for a reader. */
  title: string;
  /** The target as text, e.g. "≤ 1.0× bare pipe". */
  target: string;
  /** The measured figure as text. */
  measured: string;
  /** Measured ratio (lower is better when `limit.kind` is 'max', higher when 'min'); absent for absolute targets. */
  ratio?: number;
  limit?: { kind: 'max' | 'min'; value: number };
  pass: boolean;
  /** What limits it when not met, or anything a reader needs. */
  note?: string;
}

export interface Table {
  title: string;
  head: string[];
  rows: (string | number)[][];
}

export interface Report {
  date: string;
  mode: string;
  environment: string;
  targets: TargetResult[];
  tables: Table[];
  seconds: number;
}

const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) : '-') : v);

export function toMarkdown(r: Report, chartFile: string): string {
  const lines = [
    `# Benchmark ${r.date} (${r.mode})`,
    '',
    r.environment,
    '',
    `![ratios against targets](${chartFile})`,
    '',
    '## Targets',
    '',
    '| target | measured | goal | result |',
    '| --- | --- | --- | --- |',
    ...r.targets.map((t) => `| ${t.title} | ${t.measured} | ${t.target} | ${t.pass ? 'met' : `**not met**${t.note ? `: ${t.note}` : ''}`} |`),
  ];
  for (const t of r.tables) {
    lines.push('', `## ${t.title}`, '', `| ${t.head.join(' | ')} |`, `| ${t.head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
    for (const row of t.rows) lines.push(`| ${row.map(fmt).join(' | ')} |`);
  }
  lines.push('', `(${r.seconds.toFixed(0)} s)`, '');
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * One bar per ratio target, on a log scale around 1×: the bar is the measured ratio, the tick is the target;
 * green when met, red when not. Targets without a ratio are listed below as met / not met.
 */
export function toSvg(r: Report): string {
  const ratios = r.targets.filter((t) => t.ratio !== undefined && t.limit && Number.isFinite(t.ratio));
  const others = r.targets.filter((t) => !ratios.includes(t));
  const rowH = 34;
  const left = 360;
  const width = 1000;
  const plotW = width - left - 90;
  const top = 56;
  const height = top + ratios.length * rowH + 40 + others.length * 22 + 20;
  const lo = Math.log(0.25);
  const hi = Math.log(4);
  const x = (v: number) => left + ((Math.log(Math.min(4, Math.max(0.25, v))) - lo) / (hi - lo)) * plotW;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="22" font-size="16" font-weight="bold">${esc(`Proxy against its baselines, ${r.date} (${r.mode})`)}</text>`,
    `<text x="12" y="42" fill="#555">bar: measured ratio (log scale), black tick: target; green met, red not met</text>`,
  ];
  for (const v of [0.25, 0.5, 1, 2, 4]) {
    parts.push(`<line x1="${x(v)}" y1="${top - 6}" x2="${x(v)}" y2="${top + ratios.length * rowH}" stroke="${v === 1 ? '#999' : '#e3e3e3'}"/>`);
    parts.push(`<text x="${x(v)}" y="${top + ratios.length * rowH + 16}" text-anchor="middle" fill="#555">${v}×</text>`);
  }
  ratios.forEach((t, i) => {
    const y = top + i * rowH;
    const color = t.pass ? '#2e9d4a' : '#d0342c';
    const from = x(1);
    const to = x(t.ratio!);
    parts.push(`<text x="${left - 10}" y="${y + 20}" text-anchor="end">${esc(t.title)}</text>`);
    parts.push(`<rect x="${Math.min(from, to)}" y="${y + 6}" width="${Math.max(2, Math.abs(to - from))}" height="20" fill="${color}"/>`);
    parts.push(`<line x1="${x(t.limit!.value)}" y1="${y + 2}" x2="${x(t.limit!.value)}" y2="${y + 30}" stroke="black" stroke-width="3"/>`);
    parts.push(`<text x="${Math.max(from, to) + 6}" y="${y + 20}">${t.ratio!.toFixed(2)}×</text>`);
  });
  let y = top + ratios.length * rowH + 44;
  for (const t of others) {
    const text = `${t.title}: ${t.measured} (${t.target})`;
    parts.push(`<text x="12" y="${y}" fill="${t.pass ? '#2e9d4a' : '#d0342c'}">${t.pass ? '✔' : '✘'} ${esc(text.length > 140 ? `${text.slice(0, 139)}…` : text)}</text>`);
    y += 22;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export function writeReport(dir: string, name: string, r: Report): { md: string; json: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const files = { md: join(dir, `${name}.md`), json: join(dir, `${name}.json`), svg: join(dir, `${name}.svg`) };
  writeFileSync(files.svg, toSvg(r));
  writeFileSync(files.md, toMarkdown(r, `${name}.svg`));
  writeFileSync(files.json, `${JSON.stringify(r, null, 2)}\n`);
  return files;
}
