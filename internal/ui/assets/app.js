// The Trellis dashboard: hash routing between views, a refresh every
// REFRESH_MS of the view shown, and the token prompt. No framework and no
// build step: the files under internal/ui/assets are what the browser
// runs, embedded in the trellis binary.

import { takeToken, setToken, get, Unauthorized } from './api.js';
import { h } from './dom.js';
import { overview, services, routes } from './views.js';
import { resources, dataplanes } from './resources.js';
import { tap } from './tap.js';
import { messaging } from './messaging.js';

const REFRESH_MS = 3000;
const VIEWS = { overview, services, routes, messaging, resources, dataplanes, tap };

const main = document.getElementById('main');
const status = document.getElementById('status');
let current = null, timer = null, ctrl = null, lastOK = null;

const viewName = () => {
  const m = location.hash.match(/^#\/([a-z]+)/);
  return m && VIEWS[m[1]] ? m[1] : 'overview';
};

function setStatus(cls, text) {
  status.replaceChildren(h('span', { 'data-refresh': cls }, h('span', { class: ['dot', cls] }), text));
}

function askToken(message) {
  clearTimeout(timer);
  const form = document.getElementById('token-form').content.firstElementChild.cloneNode(true);
  const err = form.querySelector('.error');
  if (message) { err.textContent = message; err.hidden = false; }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken(form.elements.token.value.trim());
    show();
  });
  main.replaceChildren(form);
  setStatus('bad', 'token needed');
  form.elements.token.focus();
}

/** refresh loads the current view's data and renders it, keeping open
 * <details> open and the page where it was scrolled. */
async function refresh() {
  const name = current, view = VIEWS[name];
  clearTimeout(timer);
  ctrl?.abort();
  ctrl = new AbortController();
  const signal = ctrl.signal;
  try {
    const data = await view.load(signal);
    if (signal.aborted || name !== current) return;
    const open = new Set([...main.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
    const node = view.render(data);
    for (const d of node.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
    main.replaceChildren(node);
    main.dataset.view = name;
    main.dataset.loaded = String(Date.now());
    lastOK = Date.now();
    setStatus('good', `live · every ${REFRESH_MS / 1000}s`);
  } catch (err) {
    if (signal.aborted) return;
    if (err instanceof Unauthorized) return askToken(sessionStorage.getItem('trellis.token') ? 'The control plane refused this token.' : '');
    setStatus('bad', `refresh failed: ${err.message}` + (lastOK ? ` (data from ${Math.round((Date.now() - lastOK) / 1000)}s ago)` : ''));
    if (!main.dataset.loaded) main.replaceChildren(h('div', { class: 'notice bad' }, 'Cannot read the control plane: ' + err.message));
  }
  if (name === current && !document.hidden) timer = setTimeout(refresh, REFRESH_MS);
}

async function show() {
  const name = viewName();
  if (current && VIEWS[current].unmount) VIEWS[current].unmount();
  current = name;
  clearTimeout(timer);
  ctrl?.abort();
  delete main.dataset.loaded;
  document.title = `${VIEWS[name].title} · Trellis`;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  const view = VIEWS[name];
  if (view.mount) {
    // The tap streams instead of refreshing; check the token first.
    try {
      await get('/api/v1/meshes');
    } catch (err) {
      if (err instanceof Unauthorized) return askToken(sessionStorage.getItem('trellis.token') ? 'The control plane refused this token.' : '');
    }
    await view.mount(main);
    main.dataset.view = name;
    main.dataset.loaded = String(Date.now());
    setStatus('good', 'live tap');
    return;
  }
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  refresh();
}

takeToken();
window.addEventListener('hashchange', show);
document.addEventListener('visibilitychange', () => {
  // No polling in a hidden tab; catch up at once when shown again.
  if (document.hidden) clearTimeout(timer);
  else if (current && !VIEWS[current].mount) refresh();
});
show();
