// The metrics views: Overview (service graph), Services and Routes. Each
// view has load(signal), which fetches what it shows, and render(data),
// which returns its DOM; app.js calls both every refresh.

import { get } from './api.js';
import { h, table, empty, nameCell, rps, pct, ms, bytes, health, split } from './dom.js';
import { graph, legend } from './graph.js';
import { sparkCell } from './charts.js';

export const WINDOW = '1m', SERIES_WINDOW = '5m', STEP = '10s';

const byName = (rows) => new Map((rows || []).map((r) => [r.mesh + '\u0000' + r.name, r]));

function statCard(label, value, cls, attrs = {}) {
  return h('div', { class: 'stat', ...attrs }, h('div', { class: 'k' }, label), h('div', { class: ['v', cls && cls + '-text'] }, value));
}

export const overview = {
  title: 'Overview',
  async load(signal) {
    const [svc, edges, health, dps] = await Promise.all([
      get(`/api/v1/stats?kind=service&window=${WINDOW}`, signal),
      get(`/api/v1/edges?window=${WINDOW}`, signal),
      get('/api/v1/health', signal).catch((e) => ({ error: e.message })),
      get('/api/v1/dataplanes', signal),
    ]);
    return { svc, edges, health, dps };
  },
  render({ svc, edges, health: hl, dps }) {
    const rows = svc.rows || [];
    const active = rows.filter((r) => r.requests > 0);
    const total = active.reduce((a, r) => a + r.rps, 0);
    const reqs = active.reduce((a, r) => a + r.requests, 0);
    const ok = active.reduce((a, r) => a + r.requests * (r.successRate ?? 1), 0);
    const success = reqs ? ok / reqs : null;
    const items = dps.items || [];
    const connected = items.filter((d) => d.status && d.status.connected).length;
    const behind = (hl.proxies || []).filter((p) => !p.inSync).length;
    const mtls = edges.edges.filter((e) => e.mtls === 'yes').length;
    const healthy = hl.store && hl.store.ok && hl.reconciler && hl.reconciler.ready;
    return h('div', {},
      h('h1', {}, 'Overview'),
      h('div', { class: 'cards' },
        statCard('Services active', `${active.length} / ${rows.length}`, null, { 'data-card': 'services' }),
        statCard('Requests/s', rps(total), null, { 'data-card': 'rps' }),
        statCard('Success rate', pct(success), health(success), { 'data-card': 'success' }),
        statCard('Dataplanes connected', `${connected} / ${items.length}`, connected === items.length ? 'good' : 'bad', { 'data-card': 'dataplanes' }),
        statCard('xDS', behind ? `${behind} behind` : 'all in sync', behind ? 'warn' : 'good', { 'data-card': 'xds' }),
        statCard('mTLS edges', `${mtls} / ${edges.edges.length}`, mtls === edges.edges.length ? 'good' : 'warn', { 'data-card': 'mtls' }),
        statCard('Control plane', hl.error ? 'unreachable' : healthy ? 'healthy' : 'degraded', hl.error || !healthy ? 'bad' : 'good', { 'data-card': 'control-plane' })),
      h('div', { class: 'card' },
        h('h2', {}, `Service graph `, h('span', { class: 'muted' }, `(last ${WINDOW})`)),
        graph(rows, edges.edges),
        legend()));
  },
};

/** metricsTable is the golden metrics of stats rows with sparklines from
 * their series. */
function metricsTable(kind, rows, series) {
  const pts = byName(series.rows);
  const body = rows.map((r) => {
    const p = (pts.get(r.mesh + '\u0000' + r.name) || {}).points || [];
    return h('tr', { 'data-name': r.name, 'data-mesh': r.mesh, 'data-rps': r.rps, class: 'health-' + (r.requests > 0 ? health(r.successRate) : 'idle') },
      h('td', {}, nameCell(r.name)),
      h('td', { class: 'muted' }, r.mesh),
      sparkCell(rps(r.rps), p, 'rps', { format: rps, min: 0 }),
      sparkCell(pct(r.successRate), p, 'successRate', { format: pct, floor: 0.9, max: 1, color: '#2e9d5b' }),
      h('td', { class: 'num' }, ms(r.latencyP50Ms)),
      h('td', { class: 'num' }, ms(r.latencyP95Ms)),
      sparkCell(ms(r.latencyP99Ms), p, 'latencyP99Ms', { format: ms, min: 0, color: '#b86b1e' }),
      kind === 'service' ? h('td', { class: 'num' }, String(r.tcpConnections)) : null,
      kind === 'service' ? h('td', { class: 'num' }, `${bytes(r.bytesReceivedPerSecond)}/s`) : null);
  });
  const cols = [[kind === 'service' ? 'Service' : 'Route'], ['Mesh'], [`Requests/s`, 'num'], ['Success', 'num'], ['p50', 'num'], ['p95', 'num'], ['p99', 'num']];
  if (kind === 'service') cols.push(['TCP conns', 'num'], ['Bytes/s', 'num']);
  return table(cols, body.length ? body : empty(cols.length, `No ${kind}s.`), { class: kind + 's' });
}

export const services = {
  title: 'Services',
  async load(signal) {
    const [stats, series] = await Promise.all([
      get(`/api/v1/stats?kind=service&window=${WINDOW}`, signal),
      get(`/api/v1/stats/series?kind=service&window=${SERIES_WINDOW}&step=${STEP}`, signal),
    ]);
    return { stats, series };
  },
  render({ stats, series }) {
    return h('div', {},
      h('h1', {}, 'Services'),
      h('p', { class: 'muted' }, `Golden metrics of each service, server side (its own sidecars' inbound), over the last ${WINDOW}; the charts show the last ${SERIES_WINDOW} in ${STEP} steps. `,
        'Bytes/s are received from the application.'),
      metricsTable('service', stats.rows || [], series));
  },
};

/** backends lists a route rule's backends with weights and the share of
 * traffic the callers actually sent each one (from the edges). */
function backends(route, rule, observed) {
  const ns = route.metadata.namespace || 'default';
  const refs = (rule.backendRefs || []).map((b) => ({ name: `${b.namespace || ns}/${b.name}`, weight: b.weight ?? 1, port: b.port }));
  const wsum = refs.reduce((a, b) => a + b.weight, 0) || 1;
  const osum = refs.reduce((a, b) => a + (observed.get(b.name) || 0), 0);
  return h('div', { class: 'backends' },
    refs.map((b) => h('div', { 'data-backend': b.name },
      h('span', { class: 'name' }, split(b.name).name), b.port ? h('span', { class: 'ns' }, ':' + b.port) : null,
      ` weight ${b.weight} (${pct(b.weight / wsum)})`,
      osum > 0 ? h('span', { class: 'muted' }, ` · observed ${pct((observed.get(b.name) || 0) / osum)} at ${rps(observed.get(b.name) || 0)} rps`) : null)),
    osum > 0 ? h('div', { class: 'split', title: 'observed split' }, refs.map((b) => {
      const bar = h('span', { title: split(b.name).name });
      bar.style.width = `${(100 * (observed.get(b.name) || 0)) / osum}%`; // CSSOM: allowed by the page's CSP
      return bar;
    })) : null);
}

function matchText(m) {
  const parts = [];
  if (m.path) parts.push(`${m.path.type || 'PathPrefix'} ${m.path.value}`);
  if (m.method) parts.push(m.method);
  for (const hd of m.headers || []) parts.push(`${hd.name}: ${hd.value}`);
  return parts.join(', ') || 'any';
}

export const routes = {
  title: 'Routes',
  async load(signal) {
    const [stats, series, http, grpc, tcp, edges] = await Promise.all([
      get(`/api/v1/stats?kind=route&window=${WINDOW}`, signal),
      get(`/api/v1/stats/series?kind=route&window=${SERIES_WINDOW}&step=${STEP}`, signal),
      get('/api/v1/httproutes', signal),
      get('/api/v1/grpcroutes', signal),
      get('/api/v1/tcproutes', signal),
      get(`/api/v1/edges?window=${WINDOW}`, signal),
    ]);
    return { stats, series, routes: [...http.items, ...grpc.items, ...tcp.items], edges };
  },
  render({ stats, series, routes: list, edges }) {
    const observed = new Map();
    for (const e of edges.edges) observed.set(e.to, (observed.get(e.to) || 0) + e.rps);
    const rows = list.map((r) => {
      const full = `${r.metadata.namespace}/${r.metadata.name}`;
      const parents = (r.spec.parentRefs || []).map((p) => `${p.kind || 'Service'} ${p.name}${p.port ? ':' + p.port : ''}`).join(', ');
      return h('tr', { 'data-route': full },
        h('td', {}, nameCell(full), h('div', { class: 'muted' }, r.kind)),
        h('td', {}, parents),
        h('td', {}, (r.spec.rules || []).map((rule, i) => h('div', { class: 'rule' },
          h('div', { class: 'muted' }, `rule ${i}: `, (rule.matches || [{}]).map(matchText).join(' | ')),
          backends(r, rule, observed)))),
        h('td', {}, conditionBadges(r)));
    });
    return h('div', {},
      h('h1', {}, 'Routes'),
      h('p', { class: 'muted' }, `Golden metrics per route, as the calling sidecars saw them, over the last ${WINDOW}.`),
      metricsTable('route', stats.rows || [], series),
      h('h3', {}, 'Route configuration and the traffic split it produces'),
      table([['Route'], ['Attached to'], ['Rules → backends (configured weight, observed share)'], ['Status']], rows.length ? rows : empty(4, 'No routes.'), { class: 'route-config' }));
  },
};

/** conditions lists an object's status conditions: its own, and those per
 * parent (routes) or per target (policies). */
export function conditions(obj) {
  const st = obj.status || {};
  const out = (st.conditions || []).map((c) => ({ ...c, scope: '' }));
  const ref = (r) => `${r.kind || 'Service'} ${r.name}${r.port ? ':' + r.port : ''}`;
  for (const p of st.parents || []) for (const c of p.conditions || []) out.push({ ...c, scope: ref(p.parentRef) });
  for (const p of st.ancestors || []) for (const c of p.conditions || []) out.push({ ...c, scope: ref(p.ancestorRef) });
  return out;
}

/** conditionBadges shows conditions as badges, with the reason and
 * message of every one that is not True. */
export function conditionBadges(obj) {
  const cs = conditions(obj);
  if (cs.length === 0) return h('span', { class: 'badge idle' }, 'no status yet');
  return cs.map((c) => {
    const cls = c.status === 'True' ? 'good' : c.status === 'False' ? 'bad' : 'warn';
    const title = `${c.type}=${c.status}${c.reason ? ' (' + c.reason + ')' : ''}${c.scope ? ' for ' + c.scope : ''}${c.message ? ': ' + c.message : ''}`;
    return h('span', { class: 'cond', 'data-condition': c.type, 'data-status': c.status },
      h('span', { class: ['badge', cls], title }, c.type + (c.status === 'True' ? '' : '=' + c.status)),
      c.status !== 'True' ? h('span', { class: 'msg' }, `${c.reason || ''}${c.message ? ': ' + c.message : ''}${c.scope ? ' (' + c.scope + ')' : ''}`) : null);
  });
}
