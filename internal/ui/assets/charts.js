// Small time-series charts (sparklines) as inline SVG, from the points of
// GET /api/v1/stats/series.

import { s, h } from './dom.js';

/**
 * spark draws one metric of a series' points.
 * key: the point field ('rps', 'successRate', 'latencyP99Ms').
 * o: {width, height, color, format, min, max} — min/max fix the scale's
 * ends; left out, it spans the values (from 0 for rates and latency).
 */
export function spark(points, key, o = {}) {
  const w = o.width || 110, ht = o.height || 26, pad = 2;
  const vals = (points || []).map((p) => (p[key] === undefined ? null : p[key]));
  const known = vals.filter((v) => v !== null);
  const svg = s('svg', { class: 'spark', width: w, height: ht, viewBox: `0 0 ${w} ${ht}`, role: 'img', 'data-metric': key });
  if (known.length === 0) {
    svg.append(s('line', { x1: 0, y1: ht - pad, x2: w, y2: ht - pad, stroke: '#dde3ea', 'stroke-dasharray': '3 3' }));
    svg.append(s('title', {}, 'no data yet'));
    return svg;
  }
  let lo = o.min ?? Math.min(0, ...known), hi = o.max ?? Math.max(...known);
  if (o.floor !== undefined) lo = Math.min(o.floor, ...known);
  if (hi - lo < 1e-9) hi = lo + 1;
  const x = (i) => (vals.length === 1 ? w / 2 : pad + (i * (w - 2 * pad)) / (vals.length - 1));
  const y = (v) => ht - pad - ((v - lo) * (ht - 2 * pad)) / (hi - lo);
  // One path per run of known values: a gap where a step had no data.
  const color = o.color || '#1f6fb2';
  let line = '', area = '', run = [];
  const flush = () => {
    if (run.length === 1) { // a lone value: a dot
      svg.append(s('circle', { cx: x(run[0][0]).toFixed(1), cy: y(run[0][1]).toFixed(1), r: 2, fill: color }));
    } else if (run.length > 1) {
      const pts = run.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      line += 'M' + pts.join('L');
      area += `M${x(run[0][0]).toFixed(1)},${ht - pad}L${pts.join('L')}L${x(run.at(-1)[0]).toFixed(1)},${ht - pad}Z`;
    }
    run = [];
  };
  vals.forEach((v, i) => (v === null ? flush() : run.push([i, v])));
  flush();
  svg.append(
    s('path', { d: area, fill: color, 'fill-opacity': 0.12 }),
    s('path', { d: line, fill: 'none', stroke: color, 'stroke-width': 1.5, 'stroke-linejoin': 'round' }),
  );
  const fmt = o.format || String;
  const first = points[0].time, last = points.at(-1).time;
  svg.append(s('title', {}, `${key}: ${fmt(known.at(-1))} now; range ${fmt(Math.min(...known))} – ${fmt(Math.max(...known))} (${new Date(first).toLocaleTimeString()} – ${new Date(last).toLocaleTimeString()})`));
  return svg;
}

/** sparkCell is a table cell with the current value and its sparkline. */
export function sparkCell(value, points, key, o = {}) {
  return h('td', { class: 'spark-cell num' }, h('span', { class: 'last' }, value), spark(points, key, o));
}
