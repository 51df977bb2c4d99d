// The Resources view (every kind with its status, NACKs and refused
// objects first) and the Dataplanes view (connection, configuration and
// certificate state of each sidecar).

import { get, APIError } from './api.js';
import { h, table, empty, nameCell, rps, duration, ago, utc } from './dom.js';
import { conditions, conditionBadges } from './views.js';
import { WINDOW } from './views.js';

/** The kinds listed, in the order the control plane applies them. A kind
 * the control plane does not know (an older one) is left out. */
const KINDS = [
  ['meshes', 'Mesh'], ['services', 'Service'], ['dataplanes', 'Dataplane'], ['httproutes', 'HTTPRoute'],
  ['grpcroutes', 'GRPCRoute'], ['tcproutes', 'TCPRoute'], ['trafficpolicies', 'TrafficPolicy'], ['accesspolicies', 'AccessPolicy'],
  ['brokers', 'Broker'], ['subscriptions', 'Subscription'],
];

/** list lists a kind; null when the control plane does not know it. */
export async function list(plural, signal) {
  try {
    return (await get('/api/v1/' + plural, signal)).items || [];
  } catch (err) {
    if (err instanceof APIError && err.status === 404 && /unknown kind/.test(err.message)) return null;
    throw err;
  }
}

export const fullName = (o) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);
export const meshOf = (o) => (o.kind === 'Mesh' ? o.metadata.name : (o.metadata.labels || {})['trellis.dev/mesh'] || 'default');
const shortType = (url) => url.replace(/^type\.googleapis\.com\/envoy\.(config|extensions\.transport_sockets\.tls)\.[a-z_.]*v3\./, '');

/** nacks lists a Dataplane's rejected xDS updates. */
const nacks = (dp) => ((dp.status && dp.status.xds) || []).filter((x) => x.nackError || x.nackVersion);

/** problems collects what needs attention: refused or unresolved objects,
 * NACKs, disconnected sidecars and proxies behind on configuration. */
function problems(byKind, hl) {
  const out = [];
  for (const [, kind] of KINDS) {
    for (const o of byKind[kind] || []) {
      for (const c of conditions(o)) {
        if (c.status !== 'True') out.push({ kind, name: fullName(o), what: `${c.type}=${c.status} ${c.reason || ''}${c.scope ? ' for ' + c.scope : ''}`, detail: c.message });
      }
      if (kind === 'Dataplane') {
        for (const x of nacks(o)) out.push({ kind, name: fullName(o), what: `NACK of ${shortType(x.typeURL)} version ${x.nackVersion || '?'}`, detail: x.nackError, nack: true });
        if (!(o.status && o.status.connected)) out.push({ kind, name: fullName(o), what: 'not connected', detail: o.status && o.status.lastSeen ? `last seen ${ago(o.status.lastSeen)}` : 'never connected' });
      }
    }
  }
  for (const p of hl.proxies || []) {
    if (!p.inSync) out.push({ kind: 'Proxy', name: p.node, what: 'configuration not acknowledged', detail: 'waiting on ' + (p.behind || []).map(shortType).join(', ') });
  }
  return out;
}

export const resources = {
  title: 'Resources',
  async load(signal) {
    const [lists, hl] = await Promise.all([
      Promise.all(KINDS.map(([plural]) => list(plural, signal))),
      get('/api/v1/health', signal).catch((e) => ({ error: e.message })),
    ]);
    const byKind = {};
    KINDS.forEach(([, kind], i) => { if (lists[i]) byKind[kind] = lists[i]; });
    return { byKind, hl };
  },
  render({ byKind, hl }) {
    const probs = problems(byKind, hl);
    const sections = KINDS.filter(([, kind]) => byKind[kind]).map(([plural, kind]) => {
      const items = byKind[kind];
      const rows = items.map((o) => h('tr', { 'data-kind': kind, 'data-name': fullName(o) },
        h('td', {}, nameCell(fullName(o))),
        h('td', { class: 'muted' }, meshOf(o)),
        h('td', { class: 'num muted' }, o.metadata.creationTimestamp ? duration((Date.now() - new Date(o.metadata.creationTimestamp)) / 1000) : '–'),
        h('td', {}, conditionBadges(o), nacks(o).map((x) => h('span', { class: 'cond', 'data-nack': x.typeURL },
          h('span', { class: 'badge bad' }, 'NACK ' + shortType(x.typeURL)), h('span', { class: 'msg' }, x.nackError || '')))),
        h('td', {}, h('details', { 'data-key': `${kind}/${fullName(o)}` }, h('summary', {}, 'spec'), h('pre', {}, JSON.stringify(o.spec, null, 2))))));
      return h('section', { 'data-kind': kind },
        h('h3', {}, `${kind} (${items.length})`),
        table([['Name'], ['Mesh'], ['Age', 'num'], ['Status'], ['']], rows.length ? rows : empty(5, `No ${plural}.`), { class: 'resources' }));
    });
    return h('div', {},
      h('h1', {}, 'Resources'),
      probs.length === 0
        ? h('div', { class: 'notice', 'data-problems': 0 }, 'Nothing needs attention: every object is accepted with its references resolved, every sidecar connected and acknowledging its configuration.')
        : h('div', { class: 'notice bad', 'data-problems': probs.length },
          h('strong', {}, `${probs.length} problem${probs.length > 1 ? 's' : ''}`),
          h('ul', {}, probs.map((p) => h('li', { class: p.nack ? 'nack' : '' }, h('strong', {}, `${p.kind} ${p.name}: `), p.what, p.detail ? h('span', { class: 'msg' }, p.detail) : null)))),
      sections);
  },
};

function certCell(p) {
  if (!p || !p.leafExpiry) return h('td', { class: 'muted', 'data-cert': 'none' }, p ? 'no mesh identity reported' : 'no metrics yet');
  const left = (new Date(p.leafExpiry) - Date.now()) / 1000;
  const cls = left <= 0 ? 'bad' : left < 3600 ? 'warn' : 'good';
  return h('td', { 'data-cert': p.leafExpiry, title: 'leaf certificate expiry, as the sidecar last reported' },
    h('span', { class: ['badge', cls] }, left <= 0 ? `expired ${duration(-left)} ago` : `expires in ${duration(left)}`),
    h('div', { class: 'muted' }, utc(p.leafExpiry)));
}

function xdsCell(dp, sync) {
  const st = dp.status || {};
  const ns = nacks(dp);
  const parts = [];
  if (!sync) parts.push(h('span', { class: 'badge idle' }, st.connected ? 'on another replica' : 'no stream'));
  else if (sync.inSync) parts.push(h('span', { class: 'badge good' }, 'in sync'));
  else parts.push(h('span', { class: 'badge warn', title: (sync.behind || []).join('\n') }, 'behind: ' + (sync.behind || []).map(shortType).join(', ')));
  for (const x of ns) parts.push(h('span', { class: 'badge bad', title: x.nackError }, 'NACK ' + shortType(x.typeURL)), h('span', { class: 'msg' }, x.nackError || ''));
  const types = (sync && sync.types) || st.xds || [];
  const acked = types.filter((x) => x.ackedVersion).map((x) => `${shortType(x.typeURL)} ${x.ackedVersion}`);
  if (acked.length) parts.push(h('div', { class: 'muted mono' }, acked.join(' · ')));
  return h('td', { 'data-xds': sync ? (sync.inSync ? 'in-sync' : 'behind') : 'unknown' }, parts);
}

export const dataplanes = {
  title: 'Dataplanes',
  async load(signal) {
    const [dps, hl, proxies, stats] = await Promise.all([
      get('/api/v1/dataplanes', signal),
      get('/api/v1/health', signal).catch((e) => ({ error: e.message })),
      get('/api/v1/stats/proxies', signal),
      get(`/api/v1/stats?kind=dataplane&window=${WINDOW}`, signal),
    ]);
    return { dps: dps.items || [], hl, proxies: proxies.items || [], stats: stats.rows || [] };
  },
  render({ dps, hl, proxies, stats }) {
    const sync = new Map((hl.proxies || []).map((p) => [p.node, p]));
    const pushed = new Map(proxies.map((p) => [p.node, p]));
    const load = new Map(stats.map((r) => [r.name, r]));
    const rows = dps.map((dp) => {
      const id = fullName(dp), st = dp.status || {};
      const ready = (st.conditions || []).find((c) => c.type === 'Ready');
      const p = pushed.get(id), r = load.get(id);
      return h('tr', { 'data-dataplane': id, 'data-connected': String(!!st.connected) },
        h('td', {}, nameCell(id), h('div', { class: 'muted' }, (dp.metadata.labels || {}).app ? `app ${dp.metadata.labels.app}${dp.metadata.labels.version ? ' ' + dp.metadata.labels.version : ''}` : '')),
        h('td', { class: 'muted' }, meshOf(dp)),
        h('td', { 'data-state': st.connected ? 'connected' : 'disconnected' },
          h('span', { class: ['badge', st.connected ? 'good' : 'bad'] }, st.connected ? 'connected' : 'disconnected'),
          ready ? h('span', { class: ['badge', ready.status === 'True' ? 'good' : 'warn'], title: ready.message }, ready.status === 'True' ? 'ready' : `not ready: ${ready.reason}`) : null,
          h('div', { class: 'muted' }, st.connected ? `to ${st.controlPlane || '?'}` : st.lastSeen ? `last seen ${ago(st.lastSeen)}` : 'never connected')),
        xdsCell(dp, sync.get(id)),
        certCell(p),
        h('td', { class: 'num' }, r && r.requests > 0 ? `${rps(r.rps)} rps` : '–'),
        h('td', { class: 'num muted' }, p ? ago(p.lastPush) : '–'));
    });
    return h('div', {},
      h('h1', {}, 'Dataplanes'),
      h('p', { class: 'muted' }, 'Each sidecar: its xDS stream, whether it acknowledged the configuration last sent (NACKs in red), its leaf certificate, and its inbound load over the last ' + WINDOW + '.'),
      table([['Dataplane'], ['Mesh'], ['Connection'], ['Configuration (xDS)'], ['Certificate'], ['Inbound', 'num'], ['Metrics pushed', 'num']],
        rows.length ? rows : empty(7, 'No dataplanes.'), { class: 'dataplanes' }));
  },
};
