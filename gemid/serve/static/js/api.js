/* Everything the page asks of the service: JSON calls to the /v1 API, photo uploads with progress, the
 * URLs of a report's preview, QR code and short link, and the service's own limits (ui-config.json).
 *
 * One place turns any failure (network down, HTTP error, validation error, refusal of a file) into the
 * message the technician should read, taken from the API's error body whenever it has one, so every view
 * shows the service's words rather than its own guesses. Paths are relative to the page, so the service
 * can be mounted under a prefix behind a proxy. State-changing calls carry the session's CSRF token
 * (js/session.js); a 401 tells the page to ask for sign-in again.
 */

import { enc } from './dom.js';
import { csrfToken, session } from './session.js';

export const API = 'v1/';

/** The service's limits and public address, filled once by loadConfig before the first view. */
export const config = { max_bytes: null, public_url: null };

class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The message a technician should read, straight from the API's error body when there is one. */
export function errorMessage(body, status) {
  if (body && body.error && body.error.message) return body.error.message;
  if (body && Array.isArray(body.reports)) {
    const bad = body.reports.find((r) => r && r.error);
    if (bad) return bad.error.message;
  }
  if (body && body.detail) {
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => {
        const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== 'body').join('.') : '';
        return where ? `${where}: ${d.msg}` : d.msg;
      }).join('; ');
    }
  }
  if (status === 0) return 'Could not reach the gemid service. Check that it is running and the network, then try again.';
  if (status === 413) return 'The file is too large for the service.';
  return `The service answered HTTP ${status}.`;
}

export function errorCode(body) {
  if (body && body.error && body.error.code) return body.error.code;
  if (body && Array.isArray(body.reports)) {
    const bad = body.reports.find((r) => r && r.error);
    if (bad) return bad.error.code;
  }
  return null;
}

/** A 401: the session ended (expired, signed out elsewhere); the page asks to sign in again. */
function signedOut(status) {
  if (status === 401 && session.user) {
    session.user = null;
    window.dispatchEvent(new Event('gemid-signed-out'));
  }
}

export async function api(path, { method = 'GET', json } = {}) {
  const opts = { method, headers: { Accept: 'application/json' } };
  if (method !== 'GET' && csrfToken()) opts.headers['X-CSRF-Token'] = csrfToken();
  if (json !== undefined) {
    opts.body = JSON.stringify(json);
    opts.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(API + path, opts);
  } catch (e) {
    throw new ApiError(errorMessage(null, 0), 0, null);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!res.ok) {
    signedOut(res.status);
    throw new ApiError(errorMessage(body, res.status), res.status, body);
  }
  return body;
}

/** One photo per request, so each file gets its own progress bar and its own answer. */
export function uploadOne(file, reference, scale, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${API}identify`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (csrfToken()) xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded / Math.max(1, e.total));
    });
    xhr.upload.addEventListener('load', () => onProgress(1));
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      signedOut(xhr.status);
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener('error', () => resolve({ status: 0, body: null }));
    xhr.addEventListener('abort', () => resolve({ status: 0, body: null }));
    const form = new FormData();
    form.append('images', file, file.name || 'photo');
    if (reference) form.append('reference', reference);
    if (scale && scale.coin) form.append('coin_mm', scale.coin);
    if (scale && scale.ruler) form.append('ruler', 'true');
    xhr.send(form);
  });
}

export function reportPath(id, revision) {
  return `reports/${enc(id)}${revision ? `?revision=${enc(revision)}` : ''}`;
}

export function imageUrl(report) {
  return `${API}reports/${enc(report.report_id)}/preview.jpg?size=1024`;
}

export function qrUrl(id) {
  return `${API}reports/${enc(id)}/qr.svg`;
}

/** The public verification link printed on the report (and in its QR code): `/verify/<code>`, where the code
 * is the report's own unguessable token, known to the server only; it comes with the QR code. Falls back to
 * the short link when the server cannot say (an older service). */
export async function verificationUrl(id) {
  try {
    const res = await fetch(qrUrl(id));
    const url = res.ok ? res.headers.get('X-Verification-URL') : null;
    if (url) return url;
  } catch (e) {
    // offline or refused: the short link still opens the report for a signed-in user
  }
  return shortUrl(id);
}

export function shortUrl(id) {
  const base = config.public_url || new URL('.', window.location.href).href;
  return new URL(`r/${enc(id)}`, base.endsWith('/') ? base : `${base}/`).href;
}

export async function loadConfig() {
  try {
    const res = await fetch('ui-config.json', { headers: { Accept: 'application/json' } });
    const cfg = res.ok ? await res.json() : null;
    if (cfg && typeof cfg === 'object') Object.assign(config, cfg);
  } catch (e) {
    /* limits unknown: the server still checks every file */
  }
}
