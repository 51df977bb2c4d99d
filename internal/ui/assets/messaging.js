// The Messaging view: messages per broker and topic (GET
// /api/v1/stats?kind=topic, what `trellis stat topic` shows), and the
// Brokers and Subscriptions of the HTTP bridge with their status.

import { get } from './api.js';
import { h, table, empty, nameCell, rps, num } from './dom.js';
import { WINDOW, conditionBadges } from './views.js';
import { list, fullName, meshOf } from './resources.js';

const VIA = { bridge: 'HTTP bridge', kafka: 'Kafka filter', nats: 'NATS filter' };

function card(label, value, cls, key) {
  return h('div', { class: 'stat', 'data-card': key }, h('div', { class: 'k' }, label), h('div', { class: ['v', cls && cls + '-text'] }, value));
}

/** rateCell is a rate, dimmed when zero; data-rate carries the number. */
function rateCell(v, cls) {
  return h('td', { class: ['num', !(v > 0) && 'muted', v > 0 && cls], 'data-rate': v ?? 0 }, rps(v ?? 0));
}

/** The rows as `trellis stat topic` shows them: Published is the bridge's
 * acknowledged publishes plus the filters' produced records/messages,
 * Delivered the bridge's accepted deliveries plus the filters' consumed. */
function topicRows(rows) {
  return rows.map((r) => {
    const p = r.perSecond || {};
    const published = (p.published || 0) + (p.produced || 0), delivered = (p.delivered || 0) + (p.consumed || 0);
    return h('tr', {
      'data-broker': r.broker, 'data-topic': r.topic, 'data-via': r.via, 'data-mesh': r.mesh,
      'data-published': published, 'data-delivered': delivered,
    },
    h('td', {}, nameCell(r.broker)),
    h('td', { class: 'mono' }, r.topic || h('span', { class: 'muted', title: 'Kafka denials that name no topic' }, '–')),
    h('td', { class: 'muted' }, VIA[r.via] || r.via),
    rateCell(published),
    rateCell(delivered),
    rateCell(p.retried, 'warn-text'),
    rateCell(p.deadLettered, 'bad-text'),
    rateCell(p.denied, 'bad-text'),
    h('td', { class: 'num', 'data-lag': r.lag ?? '' }, r.lag === undefined || r.lag === null ? h('span', { class: 'muted' }, '–') : num(r.lag, 0)));
  });
}

function brokerRows(brokers) {
  return brokers.map((b) => {
    const sp = b.spec || {};
    const mode = sp.type === 'nats' ? (sp.nats && sp.nats.jetStream ? 'JetStream' : 'core NATS') : '';
    return h('tr', { 'data-name': fullName(b) },
      h('td', {}, nameCell(fullName(b)), h('div', { class: 'muted' }, meshOf(b))),
      h('td', {}, sp.type || '?', mode ? h('div', { class: 'muted' }, mode) : null),
      h('td', { class: 'mono' }, (sp.addresses || []).map((a) => h('div', {}, a))),
      h('td', { class: 'muted' }, [sp.credentials ? 'credentials' : null, sp.tls ? 'TLS' : null].filter(Boolean).join(', ') || 'none'),
      h('td', {}, conditionBadges(b)));
  });
}

function subscriptionRows(subs, rates) {
  return subs.map((s) => {
    const sp = s.spec || {};
    const broker = (sp.brokerRef || {}).name || '?';
    const r = rates.get(broker + '\u0000' + sp.topic);
    const retry = sp.retry || {};
    const bo = retry.backoff || {};
    return h('tr', { 'data-name': fullName(s), 'data-topic': sp.topic },
      h('td', {}, nameCell(fullName(s)), h('div', { class: 'muted' }, meshOf(s))),
      h('td', {}, h('span', { class: 'mono' }, sp.topic), h('div', { class: 'muted' }, `on ${broker}, group ${sp.consumerGroup || s.metadata.name}`)),
      h('td', {}, `${(sp.targetRef || {}).name || '?'}`, h('span', { class: 'mono muted' }, (sp.port ? ':' + sp.port : '') + (sp.path || '/'))),
      h('td', { class: 'num' }, String(sp.concurrency || 1)),
      h('td', {}, `${retry.maxDeliveries || 5} deliveries`, h('div', { class: 'muted' }, `back-off ${bo.base || '100ms'}…${bo.max || '10s'}`)),
      h('td', { class: 'mono' }, sp.deadLetter ? sp.deadLetter.topic : h('span', { class: 'muted' }, 'dropped')),
      h('td', { class: 'num', 'data-delivered': r ? r.perSecond.delivered : 0 }, r ? rps(r.perSecond.delivered) : '–'),
      h('td', {}, conditionBadges(s)));
  });
}

export const messaging = {
  title: 'Messaging',
  async load(signal) {
    const [topics, brokers, subs] = await Promise.all([
      get(`/api/v1/stats?kind=topic&window=${WINDOW}`, signal),
      list('brokers', signal),
      list('subscriptions', signal),
    ]);
    return { rows: topics.rows || [], brokers, subs };
  },
  render({ rows, brokers, subs }) {
    const sum = (k) => rows.reduce((a, r) => a + ((r.perSecond || {})[k] || 0), 0);
    const dead = sum('deadLettered'), denied = sum('denied');
    const rates = new Map(rows.filter((r) => r.via === 'bridge').map((r) => [r.broker + '\u0000' + r.topic, r]));
    const out = [
      h('h1', {}, 'Messaging'),
      h('p', { class: 'muted' }, `Messages per broker and topic over the last ${WINDOW}, as the sidecars report them: the HTTP bridge's publishes the broker acknowledged and deliveries the application accepted, `,
        'and the Kafka and NATS filters\u2019 records produced and consumed. Lag is what the broker reports waiting for the bridge\u2019s subscriptions. The CLI: ', h('code', {}, 'trellis stat topic'), '.'),
      h('div', { class: 'cards' },
        card('Topics', String(rows.length), null, 'topics'),
        card('Published/s', rps(sum('published') + sum('produced')), null, 'published'),
        card('Delivered/s', rps(sum('delivered') + sum('consumed')), null, 'delivered'),
        card('Retried/s', rps(sum('retried')), sum('retried') > 0 ? 'warn' : null, 'retried'),
        card('Dead-lettered/s', rps(dead), dead > 0 ? 'bad' : 'good', 'dead-lettered'),
        card('Denied/s', rps(denied), denied > 0 ? 'bad' : 'good', 'denied')),
      table([['Broker'], ['Topic'], ['Via'], ['Published/s', 'num'], ['Delivered/s', 'num'], ['Retried/s', 'num'], ['Dead-lettered/s', 'num'], ['Denied/s', 'num'], ['Lag', 'num']],
        rows.length ? topicRows(rows) : empty(9, `No messages in the last ${WINDOW}. Applications publish through their sidecar's HTTP bridge (docs/bridge.md) or through the Kafka and NATS filters (docs/messaging.md).`),
        { class: 'topics' }),
    ];
    if (brokers) {
      out.push(h('h3', {}, `Brokers (${brokers.length})`),
        table([['Broker'], ['Type'], ['Addresses'], ['Auth'], ['Status']], brokers.length ? brokerRows(brokers) : empty(5, 'No brokers.'), { class: 'brokers' }));
    }
    if (subs) {
      out.push(h('h3', {}, `Subscriptions (${subs.length})`),
        table([['Subscription'], ['Topic'], ['Delivered to'], ['Concurrency', 'num'], ['Retry'], ['Dead letter'], ['Delivered/s', 'num'], ['Status']],
          subs.length ? subscriptionRows(subs, rates) : empty(8, 'No subscriptions.'), { class: 'subscriptions' }));
    }
    return h('div', {}, out);
  },
};
