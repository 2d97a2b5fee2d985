/* The page's language: English or Urdu, from the technician's choice (kept in this browser), else the
 * browser's languages. Every string the translated views show comes from js/messages.js through `t`, so a
 * missing translation is a missing catalogue key (a test checks both catalogues hold the same keys).
 *
 * Urdu is written right to left: <html dir="rtl" lang="ur">, and the CSS picks a Nastaliq or Naskh font the
 * system has (Debian's fonts-noto-core: scripts/browser-deps.sh), never one fetched at run time. Figures stay
 * in Western digits, as Pakistani desks and instruments write them, and species, gemmological terms, file
 * names and references stay as written; `ltr` isolates them so a reading such as "RI 1.762" keeps its order
 * inside an Urdu sentence. The API's messages stay English; the page translates the codes it knows.
 */

import { MESSAGES } from './messages.js';

const STORE_KEY = 'gemid-lang';
export const LANGS = { en: { name: 'English', dir: 'ltr' }, ur: { name: 'اردو', dir: 'rtl' } };
let current = 'en';

function stored() {
  try { return window.localStorage.getItem(STORE_KEY); } catch (e) { return null; }
}

/** The language to start in: the one chosen here before, else the first of the browser's that we have. */
export function initLang() {
  const chosen = stored();
  if (chosen && LANGS[chosen]) {
    current = chosen;
  } else {
    const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'])
      .map((l) => String(l).toLowerCase().split('-')[0]);
    current = wanted.find((l) => LANGS[l]) || 'en';
  }
  applyLang();
}

export function lang() {
  return current;
}

/** Switch language (remembered in this browser); the caller redraws the view. */
export function setLang(code) {
  if (!LANGS[code]) return;
  current = code;
  try { window.localStorage.setItem(STORE_KEY, code); } catch (e) { /* private mode: this visit only */ }
  applyLang();
}

/** <html lang dir> and the static parts of index.html (elements with data-i18n). */
export function applyLang() {
  document.documentElement.lang = current;
  document.documentElement.dir = LANGS[current].dir;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
}

/** The catalogue's text for `key` in the current language, `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const table = MESSAGES[current] || MESSAGES.en;
  const text = key in table ? table[key] : MESSAGES.en[key];
  if (text === undefined) return key;
  // right to left, each value (a file name, a reference, a figure, a species) is isolated (U+2068 … U+2069) so
  // "tray.png" or "LOT-7/3" keeps its own order inside the Urdu sentence
  const [open, close] = LANGS[current].dir === 'rtl' ? ['\u2068', '\u2069'] : ['', ''];
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] === undefined || vars[name] === null ? ''
    : `${open}${vars[name]}${close}`));
}

/** `t` for a count: the key's `.one` form for 1, `.many` otherwise. */
export function tn(key, n, vars = {}) {
  return t(`${key}.${n === 1 ? 'one' : 'many'}`, { n, ...vars });
}
