// The service graph: services as nodes, who-calls-whom edges from
// GET /api/v1/edges, laid out left to right by call depth, drawn as
// inline SVG. Edges are coloured by success rate (green ≥ 99 %, amber
// ≥ 95 %, red below, grey without requests), thicker with more traffic,
// labelled with the request rate and p99 latency, and marked with a lock
// when every caller's proxy reports mutual TLS.

import { s, h, rps, ms, pct, bytes, split, health, colors } from './dom.js';

const NW = 214, NH = 56, GAP = 200, VGAP = 40, PAD = 24;

const key = (mesh, name) => mesh + '\u0000' + name;

/** layout places nodes in columns by longest call path from a caller. */
function layout(nodes, edges) {
  const ids = [...nodes.keys()];
  const layer = new Map(ids.map((id) => [id, 0]));
  const linked = new Set();
  for (const e of edges) { linked.add(e.src); linked.add(e.dst); }
  // Longest path, bounded by the number of nodes (cycles stop there).
  for (let i = 0; i < ids.length; i++) {
    let moved = false;
    for (const e of edges) {
      if (e.src !== e.dst && layer.get(e.dst) < layer.get(e.src) + 1 && layer.get(e.src) + 1 < ids.length) {
        layer.set(e.dst, layer.get(e.src) + 1);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const cols = [];
  for (const id of ids.filter((id) => linked.has(id)).sort()) {
    (cols[layer.get(id)] ||= []).push(id);
  }
  // One barycentre pass: a node sits near the callers it hangs from.
  const row = new Map();
  cols.forEach((col, c) => {
    if (!col) return;
    const bary = (id) => {
      const ys = edges.filter((e) => e.dst === id && row.has(e.src)).map((e) => row.get(e.src));
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
    };
    if (c > 0) col.sort((a, b) => bary(a) - bary(b) || (a < b ? -1 : 1));
    col.forEach((id, r) => row.set(id, r - (col.length - 1) / 2));
  });
  const maxRows = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
  const pos = new Map();
  cols.forEach((col, c) => col && col.forEach((id) => {
    pos.set(id, { x: PAD + c * (NW + GAP), y: PAD + (row.get(id) + (maxRows - 1) / 2) * (NH + VGAP) });
  }));
  let width = PAD * 2 + Math.max(1, cols.length) * NW + Math.max(0, cols.length - 1) * GAP;
  let height = linked.size ? PAD * 2 + maxRows * NH + (maxRows - 1) * VGAP : PAD;
  // Services without traffic: a row (or rows) of their own below.
  const idle = ids.filter((id) => !linked.has(id)).sort();
  const idleTop = height + (linked.size ? 8 : 0) + 18;
  const perRow = Math.max(1, Math.floor((Math.max(width, 4 * (NW + 24)) - PAD) / (NW + 24)));
  idle.forEach((id, i) => pos.set(id, { x: PAD + (i % perRow) * (NW + 24), y: idleTop + Math.floor(i / perRow) * (NH + 16) }));
  if (idle.length) {
    width = Math.max(width, PAD * 2 + Math.min(idle.length, perRow) * (NW + 24));
    height = idleTop + Math.ceil(idle.length / perRow) * (NH + 16) + PAD;
  }
  return { pos, width, height, idleTop: idle.length ? idleTop : null };
}

function lock(x, y, color) {
  return s('g', { class: 'lock', transform: `translate(${x},${y})` },
    s('title', {}, 'mutual TLS'),
    s('path', { d: 'M2.5 5V3.5a3 3 0 0 1 6 0V5', fill: 'none', stroke: color, 'stroke-width': 1.6 }),
    s('rect', { x: 0.5, y: 5, width: 10, height: 7.5, rx: 1.5, fill: color }));
}

function edgeLabel(e) {
  const parts = [];
  if (e.requests > 0 || e.rps > 0) {
    parts.push(`${rps(e.rps)} rps`);
    if (e.latencyP99Ms !== undefined) parts.push(`p99 ${ms(e.latencyP99Ms)}`);
  } else {
    parts.push(`${e.tcpConnections} conn`, `${bytes(e.bytesSentPerSecond + e.bytesReceivedPerSecond)}/s`);
  }
  return parts.join(' · ');
}

/** graph draws services (rows of GET /api/v1/stats) and edges (of GET
 * /api/v1/edges) as an SVG element. */
export function graph(services, edgeList) {
  const nodes = new Map();
  for (const r of services) nodes.set(key(r.mesh, r.name), r);
  const edges = edgeList.map((e) => ({ ...e, src: key(e.mesh, e.from), dst: key(e.mesh, e.to) }));
  for (const e of edges) {
    if (!nodes.has(e.src)) nodes.set(e.src, { mesh: e.mesh, name: e.from });
    if (!nodes.has(e.dst)) nodes.set(e.dst, { mesh: e.mesh, name: e.to });
  }
  const { pos, width, height, idleTop } = layout(nodes, edges);
  // Natural size, shrunk to the page when wider (style.css).
  const svg = s('svg', { class: 'graph', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'service graph' });
  const defs = s('defs');
  for (const [cls, c] of Object.entries(colors)) {
    defs.append(s('marker', { id: 'arrow-' + cls, viewBox: '0 0 10 10', refX: 9, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 11, markerHeight: 11, orient: 'auto-start-reverse' },
      s('path', { d: 'M0 0L10 5L0 10z', fill: c })));
  }
  svg.append(defs);
  if (nodes.size === 0) {
    svg.append(s('text', { x: PAD, y: PAD, class: 'sub' }, 'No services yet.'));
    return svg;
  }
  const edgeLayer = s('g', { class: 'edges' }), labelLayer = s('g', { class: 'labels' }), nodeLayer = s('g', { class: 'nodes' });
  for (const e of edges) {
    const a = pos.get(e.src), b = pos.get(e.dst);
    if (!a || !b || e.src === e.dst) continue;
    const cls = e.requests > 0 ? health(e.successRate) : 'idle';
    let d, mx, my;
    if (b.x > a.x) {
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x - 2, y2 = b.y + NH / 2, dx = (x2 - x1) / 2;
      d = `M${x1},${y1}C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      // The label sits past the middle, where a caller's edges to
      // different callees have drawn apart.
      const t = 0.62, u = 1 - t;
      mx = u * u * u * x1 + 3 * u * u * t * (x1 + dx) + 3 * u * t * t * (x2 - dx) + t * t * t * x2;
      my = (u * u * u + 3 * u * u * t) * y1 + (3 * u * t * t + t * t * t) * y2;
    } else { // a call back or within a column: an arc below both
      const x1 = a.x + NW / 2, y1 = a.y + NH, x2 = b.x + NW / 2 + 8, y2 = b.y + NH + 2, drop = 46;
      d = `M${x1},${y1}C${x1},${y1 + drop} ${x2},${y2 + drop} ${x2},${y2}`;
      mx = (x1 + x2) / 2; my = (y1 + y2) / 2 + drop * 0.75;
    }
    const width = 1.5 + Math.min(4.5, Math.log2(1 + (e.rps || 0)));
    const g = s('g', { class: ['edge', cls], 'data-from': e.from, 'data-to': e.to, 'data-mesh': e.mesh, 'data-rps': e.rps, 'data-success': e.successRate ?? '', 'data-mtls': e.mtls },
      s('title', {}, `${e.from} → ${e.to}\n${rps(e.rps)} requests/s, success ${pct(e.successRate)}, p50 ${ms(e.latencyP50Ms)}, p99 ${ms(e.latencyP99Ms)}\nmutual TLS: ${e.mtls}`),
      s('path', { d, stroke: colors[cls], 'stroke-width': width, 'marker-end': `url(#arrow-${cls})` }));
    edgeLayer.append(g);
    const text = edgeLabel(e);
    const tw = text.length * 6.3 + (e.mtls === 'yes' ? 18 : 0) + (e.mtls === 'no' ? 52 : 0) + 10;
    const label = s('g', { class: 'label', transform: `translate(${(mx - tw / 2).toFixed(1)},${(my - 10).toFixed(1)})` },
      s('rect', { width: tw, height: 20, rx: 10 }),
      s('text', { x: 8, y: 14 }, text));
    if (e.mtls === 'yes') label.append(lock(tw - 18, 3.5, colors.good));
    if (e.mtls === 'no') label.append(s('text', { x: tw - 56, y: 14, fill: colors.warn }, 'no mTLS'));
    g.append(label);
    labelLayer.append(g);
  }
  if (idleTop !== null) {
    nodeLayer.append(s('text', { x: PAD, y: idleTop - 8, class: 'idle-title' }, 'on no edge in the window (a route\'s parent service: its callers\' requests show on the edges to the route\'s backends)'));
  }
  for (const [id, n] of nodes) {
    const p = pos.get(id);
    const cls = n.requests > 0 ? health(n.successRate) : 'idle';
    const { ns, name } = split(n.name);
    const sub = n.requests > 0 ? `${rps(n.rps)} rps · ${pct(n.successRate)} · p99 ${ms(n.latencyP99Ms)}` : (ns ? ns + ' · ' : '') + 'no requests';
    nodeLayer.append(s('g', { class: ['node', cls], 'data-service': n.name, 'data-mesh': n.mesh, 'data-rps': n.rps ?? 0, transform: `translate(${p.x},${p.y})` },
      s('title', {}, `service ${n.name} (mesh ${n.mesh})`),
      s('rect', { width: NW, height: NH, rx: 9, stroke: colors[cls] }),
      s('text', { x: 12, y: 23, class: 'title' }, name),
      s('text', { x: 12, y: 42, class: 'sub' }, sub)));
  }
  svg.append(edgeLayer, nodeLayer, labelLayer);
  return svg;
}

/** legend explains the graph's colours and marks. */
export function legend() {
  return h('div', { class: 'legend' },
    h('span', {}, h('i', { class: 'g' }), 'success ≥ 99 %'),
    h('span', {}, h('i', { class: 'a' }), '≥ 95 %'),
    h('span', {}, h('i', { class: 'r' }), 'below 95 %'),
    h('span', {}, h('i', { class: 'n' }), 'no requests (TCP only)'),
    h('span', {}, s('svg', { width: 11, height: 13, viewBox: '0 0 11 13', class: 'spark' }, lock(0, 0, colors.good)),
      ' mutual TLS on every caller · edge width grows with the request rate · nodes show the server side, edges the callers\' side'));
}
