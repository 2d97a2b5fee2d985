/* DOM building for every view: `h` (HTML) and `s` (SVG) elements from attributes and children, headings,
 * unique ids and the screen-reader announcer.
 *
 * Every piece of data from the API reaches the page through these helpers, which write text nodes and
 * attributes only (never innerHTML), so a file name or a reference typed by someone cannot inject markup.
 * Keeping them in one small module lets every view rely on that without re-checking it.
 */

const SVGNS = 'http://www.w3.org/2000/svg';
let uidCounter = 0;

/** An HTML element: attributes (`on…` functions become listeners, `true` a bare attribute) and children. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

/** The same for an SVG element (the stone outline and inclusion boxes over the photo). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

export function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function heading(level, text, attrs) {
  return h(`h${Math.min(6, Math.max(1, level))}`, attrs || {}, text);
}

export const uid = (prefix) => `${prefix}-${++uidCounter}`;
export const enc = encodeURIComponent;

/** Tell screen-reader users what changed (the #announce live region), as a sighted user would see it. */
export function announce(text) {
  const live = document.getElementById('announce');
  live.textContent = '';
  window.setTimeout(() => { live.textContent = text; }, 50);
}
