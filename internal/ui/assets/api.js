// The control plane's API, read with the token the user gave. The token
// arrives in the URL fragment (#token=..., which browsers never send to
// a server), moves to this tab's session storage and leaves the address
// bar at once.

const KEY = 'trellis.token';

/** takeToken moves a #token=... fragment into session storage. */
export function takeToken() {
  const m = location.hash.match(/^#token=([^&]*)(?:&view=([a-z]+))?/);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search + '#/' + (m[2] || 'overview'));
}

export const setToken = (t) => sessionStorage.setItem(KEY, t);

function headers() {
  const t = sessionStorage.getItem(KEY);
  return t ? { Authorization: 'Bearer ' + t } : {};
}

/** Unauthorized: the API refused the token (or there is none). */
export class Unauthorized extends Error {}

/** APIError carries the API's error message and status. */
export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** get fetches an API path and returns its JSON. A 503 from the health
 * endpoint is an answer (its body says what is wrong), not an error. */
export async function get(path, signal) {
  const r = await fetch(path, { headers: headers(), signal, cache: 'no-store' });
  if (r.status === 401) throw new Unauthorized('the control plane refused the token');
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok && !(r.status === 503 && body && path.startsWith('/api/v1/health'))) {
    throw new APIError(r.status, (body && body.error) || `${path}: ${r.status} ${r.statusText}`);
  }
  return body;
}

/** lines opens an NDJSON stream (the tap) and calls onObject with each
 * line's object until the stream ends or signal aborts. EventSource
 * cannot send the Authorization header, so this reads the body with a
 * ReadableStream reader. */
export async function lines(path, signal, onObject) {
  const r = await fetch(path, { headers: headers(), signal, cache: 'no-store' });
  if (r.status === 401) throw new Unauthorized('the control plane refused the token');
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    throw new APIError(r.status, msg);
  }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onObject(JSON.parse(line));
    }
  }
}
