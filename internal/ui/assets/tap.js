// The live tap view: requests as the sidecars see them, streamed from
// GET /api/v1/tap (NDJSON, docs/tap.md). Unlike the other views it is not
// refreshed: it keeps its stream open until stopped or left.

import { get, lines, APIError } from './api.js';
import { h, ms, split } from './dom.js';

const MAX_ROWS = 200;
// BODY_BYTES is how much of each body the "Bodies" toggle asks for
// (body=N; docs/tap.md, "Body capture").
const BODY_BYTES = 256;

function targets(svcs, dps) {
  const opt = (value, label) => h('option', { value }, label);
  return [
    h('optgroup', { label: 'Services (requests to them)' }, svcs.map((o) => opt(`service/${o.metadata.namespace}/${o.metadata.name}`, `${o.metadata.name} (${o.metadata.namespace})`))),
    h('optgroup', { label: 'Dataplanes (everything they handle)' }, dps.map((o) => opt(`dataplane/${o.metadata.namespace}/${o.metadata.name}`, `${o.metadata.name} (${o.metadata.namespace})`))),
  ];
}

const who = (end) => (end && end.service ? split(end.service).name : end && end.address ? end.address : '?');

function eventRow(e) {
  const cls = e.status >= 500 || e.status === 0 ? 'bad-text' : e.status >= 400 ? 'warn-text' : 'good-text';
  const flags = [e.responseFlags && e.responseFlags !== '-' ? e.responseFlags : '', e.reason].filter(Boolean).join(' ');
  return h('tr', { 'data-event': '', 'data-status': e.status },
    h('td', { class: 'muted' }, new Date(e.time).toLocaleTimeString([], { hour12: false }) + '.' + String(new Date(e.time).getMilliseconds()).padStart(3, '0')),
    h('td', {}, split(e.dataplane || '').name, h('span', { class: 'ns' }, ' ' + (e.direction || ''))),
    h('td', { title: `${e.source && e.source.identity}\n→ ${e.destination && e.destination.identity}` }, who(e.source), ' → ', who(e.destination), e.tls ? [' ', h('span', { class: 'badge good' }, 'TLS')] : null),
    h('td', {}, e.method),
    h('td', { class: 'path', title: `${e.authority}${e.path}` }, e.path),
    h('td', { class: ['num', cls] }, e.status === 0 ? 'none' : String(e.status), e.grpcStatus ? ` grpc ${e.grpcStatus}` : ''),
    h('td', { class: 'num' }, ms(e.durationMs)),
    h('td', { class: 'muted' }, flags || '–'));
}

// bodyText renders a captured body: text as is (it only ever reaches a
// text node), other bytes base64; undefined when it was not captured.
function bodyText(body, encoding, truncated) {
  if (body === undefined) return undefined;
  const text = encoding ? `(${encoding}) ${body}` : body === '' ? '(empty)' : body;
  return text + (truncated ? ' …(truncated)' : '');
}

// bodyRow shows an event's captured bodies under its row, or is null.
function bodyRow(e) {
  const req = bodyText(e.requestBody, e.requestBodyEncoding, e.requestBodyTruncated);
  const rsp = bodyText(e.responseBody, e.responseBodyEncoding, e.responseBodyTruncated);
  if (req === undefined && rsp === undefined) return null;
  return h('tr', { class: 'tap-body' }, h('td', { colspan: 8 },
    req !== undefined ? h('div', { 'data-body': 'request' }, '> body: ' + req) : null,
    rsp !== undefined ? h('div', { 'data-body': 'response' }, '< body: ' + rsp) : null));
}

/** tap is the view; mount builds it in el, unmount ends the stream. */
export const tap = {
  title: 'Tap',
  ctrl: null,
  async mount(el) {
    const select = h('select', { name: 'target', required: true });
    const path = h('input', { name: 'path', placeholder: '/ (prefix)', size: 14 });
    const method = h('select', { name: 'method' }, ['', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH'].map((m) => h('option', { value: m }, m || 'any')));
    const maxRps = h('input', { name: 'maxRps', type: 'number', min: 1, max: 1000, value: 20, size: 5 });
    const bodies = h('input', { name: 'bodies', type: 'checkbox', title: `the first ${BODY_BYTES} bytes of each body, shown as sent: bodies are not redacted` });
    const button = h('button', { type: 'submit' }, 'Start');
    const notices = h('div', { class: 'tap-notices', 'aria-live': 'polite' });
    const count = h('span', { class: 'muted' }, '');
    const tbody = h('tbody');
    let n = 0;
    const form = h('form', { class: 'tap card', onsubmit: (ev) => { ev.preventDefault(); this.ctrl ? this.stop() : start(); } },
      h('label', {}, 'Target', select), h('label', {}, 'Path prefix', path), h('label', {}, 'Method', method),
      h('label', {}, 'Max events/s', maxRps), h('label', { class: 'check' }, 'Bodies', bodies), button, count);
    el.replaceChildren(h('div', {},
      h('h1', {}, 'Live tap'),
      h('p', { class: 'muted' }, 'Requests as the sidecars handle them, newest first, capped per second so a tap cannot hurt traffic (docs/tap.md).'),
      form, notices,
      h('div', { class: 'table-wrap' }, h('table', { class: 'tap' },
        h('thead', {}, h('tr', {}, ['Time', 'Dataplane', 'Source → destination', 'Method', 'Path', 'Status', 'Latency', 'Flags'].map((c) => h('th', {}, c)))),
        tbody))));
    const note = (text, bad) => notices.replaceChildren(h('span', { class: bad ? 'bad-text' : '' }, text));
    const start = async () => {
      const q = new URLSearchParams({ target: select.value, maxRps: maxRps.value || '20' });
      if (path.value) q.set('path', path.value);
      if (method.value) q.set('method', method.value);
      if (bodies.checked) q.set('body', String(BODY_BYTES));
      const ctrl = (this.ctrl = new AbortController());
      button.textContent = 'Stop';
      button.classList.add('stop');
      tbody.replaceChildren();
      n = 0;
      count.textContent = '';
      note(`tapping ${select.value}…`);
      try {
        await lines('/api/v1/tap?' + q, ctrl.signal, (o) => {
          if (o.type === 'notice') return note(o.message);
          if (o.type !== 'event') return;
          const body = bodyRow(o);
          tbody.prepend(...(body ? [eventRow(o), body] : [eventRow(o)]));
          count.textContent = `${++n} events`;
          // Trim to MAX_ROWS events; a body row goes with its event.
          let shown = Math.min(n, MAX_ROWS + 1);
          while (shown > MAX_ROWS) {
            const last = tbody.lastElementChild;
            if (last.hasAttribute('data-event')) shown--;
            last.remove();
          }
        });
        if (!ctrl.signal.aborted) note('the control plane ended the tap');
      } catch (err) {
        if (ctrl.signal.aborted) return;
        if (err instanceof APIError && err.status === 404 && /unknown kind/.test(err.message)) note('This control plane has no tap endpoint (GET /api/v1/tap): it is older than the tap.', true);
        else note('tap: ' + err.message, true);
      } finally {
        if (this.ctrl === ctrl) this.ctrl = null;
        if (!this.ctrl) { button.textContent = 'Start'; button.classList.remove('stop'); }
      }
    };
    try {
      const [svcs, dps] = await Promise.all([get('/api/v1/services'), get('/api/v1/dataplanes')]);
      select.replaceChildren(...targets(svcs.items, dps.items));
      const want = new URLSearchParams(location.hash.split('?')[1] || '').get('target');
      if (want) select.value = want;
    } catch (err) {
      note('listing targets: ' + err.message, true);
    }
  },
  stop() {
    if (this.ctrl) { this.ctrl.abort(); this.ctrl = null; }
  },
  unmount() { this.stop(); },
};
