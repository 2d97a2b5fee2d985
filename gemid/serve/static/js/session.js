/* Who is signed in, and the sign-in form.
 *
 * The page signs in with a session cookie (HttpOnly: the page's scripts never see it) from a name and
 * password, or from a one-time link the console printed (/signin?token=…, which sets the cookie and opens
 * the page). The service also hands the page a CSRF token (GET v1/session), which js/api.js sends with every
 * state-changing request: another site can make a browser send the cookie, never this token. A 401 from any
 * call brings this form back (the session expired or was ended).
 */

import { h, heading, uid } from './dom.js';
import { t } from './i18n.js';

/** The signed-in account {name, role, desk, csrf}, or null. */
export const session = { user: null };

export function csrfToken() {
  return session.user ? session.user.csrf : null;
}

/** Ask the service who this page is signed in as; null when it is not. */
export async function loadSession() {
  try {
    const res = await fetch('v1/session', { headers: { Accept: 'application/json' } });
    session.user = res.ok ? await res.json() : null;
  } catch (e) {
    session.user = null;
  }
  showUser();
  return session.user;
}

/** Who is signed in, in the header (redrawn with each view: the language may have changed). */
export function showUser() {
  const slot = document.getElementById('account');
  if (!slot) return;
  const u = session.user;
  if (!u) {
    slot.replaceChildren();
    return;
  }
  const who = `${u.name} · ${t(`role.${u.role}`)}${u.desk ? ` · ${u.desk}` : ''}`;
  slot.replaceChildren(h('span', { class: 'account-name', 'data-account': '', 'data-role': u.role }, who),
    h('button', { type: 'button', class: 'link account-out', onclick: signOut }, t('signin.out')));
}

async function signOut() {
  try {
    await fetch('v1/session', { method: 'DELETE', headers: { 'X-CSRF-Token': csrfToken() || '' } });
  } finally {
    session.user = null;
    showUser();
    window.location.reload();
  }
}

/** The sign-in form in `root`; `done` runs once signed in. */
export function viewSignIn(root, done, notice) {
  document.title = `${t('signin.title')} — gemid`;
  const nameId = uid('name');
  const passId = uid('password');
  const message = h('div', { class: 'notice bad', role: 'alert', hidden: !notice }, notice || '');
  const form = h('form', { class: 'panel signin', novalidate: true },
    heading(1, t('signin.title'), { tabindex: '-1' }),
    h('p', {}, t('signin.lead')),
    message,
    h('div', { class: 'field' }, h('label', { for: nameId }, t('signin.name')),
      h('input', { id: nameId, name: 'name', type: 'text', autocomplete: 'username', required: true })),
    h('div', { class: 'field' }, h('label', { for: passId }, t('signin.password')),
      h('input', { id: passId, name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, t('signin.submit')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = form.elements.name.value.trim();
    const password = form.elements.password.value;
    if (!name || !password) {
      message.textContent = t('signin.missing');
      message.hidden = false;
      return;
    }
    let res;
    let body = null;
    try {
      res = await fetch('v1/session', {
        method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ name, password }),
      });
      body = await res.json().catch(() => null);
    } catch (err) {
      res = null;
    }
    if (!res || !res.ok) {
      message.textContent = body && body.error ? body.error.message : t('signin.unreachable');
      message.hidden = false;
      return;
    }
    session.user = body;
    showUser();
    done();
  });
  root.replaceChildren(form);
  form.elements.name.focus();
}
