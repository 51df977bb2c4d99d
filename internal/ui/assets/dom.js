// DOM and formatting helpers. Every string from the API goes through
// text nodes (never innerHTML), so a resource name cannot inject markup.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h builds an HTML element: h('td', {class: 'num'}, 'text', child). */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** s builds an SVG element. */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);

/** num formats a number with up to digits decimals, dropping trailing zeros. */
export function num(v, digits = 1) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en');
  return String(Number(v.toFixed(digits)));
}

export const rps = (v) => (v === undefined || v === null ? '–' : num(v, v < 10 ? 2 : 1));
export const pct = (v) => (v === undefined || v === null ? '–' : num(v * 100, v >= 0.9995 ? 0 : 2) + '%');
export const ms = (v) => (v === undefined || v === null ? '–' : (v >= 1000 ? num(v / 1000, 2) + ' s' : num(v, v < 10 ? 2 : 1) + ' ms'));

export function bytes(v) {
  if (v === undefined || v === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return num(v, 1) + ' ' + units[i];
}

/** duration formats seconds as "3d 4h", "5h 12m", "4m 3s" or "12s". */
export function duration(secs) {
  const neg = secs < 0;
  secs = Math.abs(Math.round(secs));
  const d = Math.floor(secs / 86400), hr = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60, sec = secs % 60;
  const out = d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
  return neg ? '-' + out : out;
}

/** ago formats a time as "12s ago". */
export const ago = (t) => (t ? duration((Date.now() - new Date(t)) / 1000) + ' ago' : '–');

/** utc formats a time as "2026-11-27 06:04 UTC". */
export const utc = (t) => new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';

/** split splits "namespace/name". */
export function split(full) {
  const i = full.indexOf('/');
  return i < 0 ? { ns: '', name: full } : { ns: full.slice(0, i), name: full.slice(i + 1) };
}

/** nameCell shows name with its namespace dimmed. */
export function nameCell(full) {
  const { ns, name } = split(full);
  return [ns ? h('span', { class: 'ns' }, ns + '/') : null, h('span', { class: 'name' }, name)];
}

/** health classifies a success rate: good, warn, bad, or idle without traffic. */
export function health(success) {
  if (success === undefined || success === null) return 'idle';
  if (success >= 0.99) return 'good';
  if (success >= 0.95) return 'warn';
  return 'bad';
}

/** colors of the health classes, for SVG. */
export const colors = { good: '#2e9d5b', warn: '#d99a1e', bad: '#d64545', idle: '#8a94a6' };

/** table builds a table in its scrolling wrapper. cols: [label, class]. */
export function table(cols, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', {}, h('tr', {}, cols.map(([label, cls]) => h('th', { class: cls }, label)))),
      h('tbody', {}, rows)));
}

/** empty is a table row saying there is nothing. */
export const empty = (n, text) => h('tr', {}, h('td', { colspan: n, class: 'muted' }, text));
