/* The hash route and the visit counter that every view shares.
 *
 * Routes live in the hash (#/, #/history?…, #/parcel/<reference>, #/field?…, #/report/<id>, #/report/<id>/print) so a report link can be
 * bookmarked or shared; the server's short link /r/<id> redirects there. Views load data asynchronously,
 * and the technician may have moved on by the time it arrives: each render is a numbered visit, and a
 * view writes its answer only while its visit is still the current one (isCurrent). The renderer itself
 * lives in the entry module (app.js), which registers it here, so a view can ask for a fresh render
 * without importing the entry module back.
 */

let visit = 0;
let renderer = () => {};

/** The route in the hash: {name, id?, params}, or null for a plain in-page anchor such as #main. */
export function parseRoute() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  if (!raw.startsWith('/')) return null;
  const [path, qs] = raw.split('?');
  const params = new URLSearchParams(qs || '');
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch (e) {
    return { name: 'notfound', params };
  }
  if (!parts.length) return { name: 'identify', params };
  if (parts[0] === 'history' && parts.length === 1) return { name: 'history', params };
  if (parts[0] === 'parcel' && parts.length === 2 && parts[1]) return { name: 'parcel', id: parts[1], params };
  if (parts[0] === 'field' && parts.length === 1) return { name: 'field', params };
  if (parts[0] === 'report' && parts[1] && parts.length <= 3) {
    if (parts.length === 2) return { name: 'report', id: parts[1], params };
    if (parts[2] === 'print') return { name: 'print', id: parts[1], params };
  }
  return { name: 'notfound', params };
}

/** A new visit begins (called by the renderer): earlier visits' late answers are dropped from now on. */
export function newVisit() {
  visit += 1;
  return visit;
}

/** Whether the visit numbered `token` is still the one on screen. */
export function isCurrent(token) {
  return token === visit;
}

/** Set by the entry module: how to render the current route. */
export function setRenderer(fn) {
  renderer = fn;
}

/** Render the current route again (a search submitted with the same query changes no hash). */
export function rerender() {
  renderer();
}
