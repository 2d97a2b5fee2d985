/* gemid technician page, entry module: capture, results, readings, history and the printable report.
 *
 * Plain browser JavaScript as ES modules, no build step and no external assets, because lab PCs and airport
 * desks may be offline: index.html loads this file with <script type="module">, and it imports the rest
 * from js/. This module owns only the start-up (the service's limits, the skip link, pasting photos) and
 * the router that draws the view for the hash route; each view lives in its own module:
 *   js/capture.js          #/            choose, check and upload photos; the parcel's results
 *   js/results.js          #/report/<id> one stone's report card, and a stored report with its revisions
 *   js/readings.js                       instrument readings and the re-ranking they bring
 *   js/history.js          #/history     search stored reports, and their CSV
 *   js/parcel.js           #/parcel/<r>  the stones stored under one reference, its CSV and printed document
 *   js/field.js            #/field       field accuracy, the shadow model and drift (GET /v1/field)
 *   js/print.js            #/report/<id>/print  the report on paper, with its QR code
 * over a small shared core: js/api.js (the service), js/dom.js (building elements as text, never markup),
 * js/format.js (wording and figures), js/stones.js (a tray photo's numbered stones, the table of stones), js/route.js (the hash route), js/report-sections.js (a report's
 * read-only parts), js/session.js (who is signed in, the sign-in form, the CSRF token),
 * js/conclusion.js (the conclusion from photo and readings, and the rankings under it). Modules import what they use, and no module imports one that imports it back (views
 * reach the router through js/route.js); nothing is shared through `window`. The entry keeps the address
 * static/app.js that the page has always loaded. The page speaks English or Urdu (js/i18n.js, js/messages.js;
 * the switch in the header), right to left in Urdu.
 */

import { loadConfig } from './js/api.js';
import { addFiles, viewIdentify } from './js/capture.js';
import { h, heading } from './js/dom.js';
import { viewField } from './js/field.js';
import { viewHistory } from './js/history.js';
import { LANGS, initLang, lang, setLang, t } from './js/i18n.js';
import { viewParcel } from './js/parcel.js';
import { viewPrint } from './js/print.js';
import { viewReport } from './js/results.js';
import { isCurrent, newVisit, parseRoute, setRenderer } from './js/route.js';
import { loadSession, session, showUser, viewSignIn } from './js/session.js';

let firstRender = true;

function viewNotFound(root) {
  document.title = `${t('page.notfound')} — gemid`;
  root.append(heading(1, t('page.notfound'), { tabindex: '-1' }),
    h('p', {}, h('a', { href: '#/' }, t('page.goidentify'))));
}

const VIEWS = {
  identify: viewIdentify, history: viewHistory, parcel: viewParcel, field: viewField, report: viewReport, print: viewPrint,
  notfound: viewNotFound,
};

/** Draw the view for the hash route; after the first page load, focus its h1 so keyboard and screen-reader
 * users start at the new content, as a sighted user does. */
function render() {
  const route = parseRoute();
  if (!route) return;
  const token = newVisit();
  const root = document.getElementById('view');
  root.replaceChildren();
  if (!session.user) {  // every view reads or writes reports: signed in first
    document.body.dataset.view = 'signin';
    viewSignIn(root, render);
    return;
  }
  showUser();
  const navName = ['history', 'identify', 'field'].includes(route.name) ? route.name : null;
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.dataset.nav === navName) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  document.body.dataset.view = route.name;
  const first = firstRender;
  firstRender = false;
  Promise.resolve(VIEWS[route.name](root, route, token)).then(() => {
    if (!isCurrent(token) || first) return;
    const h1 = root.querySelector('h1');
    if (h1) h1.focus();
  }).catch((e) => {
    root.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, t('page.error', { message: e.message })));
  });
  if (!first) window.scrollTo(0, 0);
}

async function start() {
  const skip = document.querySelector('[data-skip]');
  if (skip) {
    skip.addEventListener('click', (e) => {
      e.preventDefault();
      document.getElementById('main').focus();
    });
  }
  document.addEventListener('paste', (e) => {
    if (parseRoute() && parseRoute().name !== 'identify') return;
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((f) => f.type.startsWith('image/'));
    if (files.length) addFiles(files);
  });
  initLang();
  const switcher = document.getElementById('lang-switch');
  const label = () => {
    const other = lang() === 'en' ? 'ur' : 'en';
    switcher.textContent = t('lang.switch');
    switcher.setAttribute('lang', other);
    switcher.setAttribute('dir', LANGS[other].dir);
    switcher.setAttribute('aria-label', t('lang.switch.label'));
  };
  if (switcher) {
    label();
    switcher.hidden = false;
    switcher.addEventListener('click', () => {
      setLang(lang() === 'en' ? 'ur' : 'en');
      label();
      render();
    });
  }
  setRenderer(render);
  window.addEventListener('hashchange', render);
  window.addEventListener('gemid-signed-out', () => viewSignIn(document.getElementById('view'), render,
    t('signin.ended')));
  await Promise.all([loadConfig(), loadSession()]);
  render();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
