/* The #/parcel/<reference> view: every stone stored under one reference (lot number), as the service lists
 * them (GET /v1/parcels/{reference}): counts by conclusion on top, each photo with its stones numbered, and
 * one row per stone (the service's own rows, gemid.report.table_row). Its print is the parcel's document:
 * the photos small, the table compact, the photo hashes, model and disclaimer, about 20 stones to an A4 page.
 */

import { API, api } from './api.js';
import { enc, h, heading } from './dom.js';
import { utc } from './format.js';
import { isCurrent } from './route.js';
import { byPhoto, countsLine, stonesFigure, stonesTable } from './stones.js';

export function parcelHref(reference) {
  return `#/parcel/${enc(reference)}`;
}

export async function viewParcel(root, route, token) {
  const reference = route.id;
  document.title = `Parcel ${reference} — gemid`;
  const body = h('div', {}, h('p', {}, 'Loading parcel…'));
  root.append(h('h1', { tabindex: '-1' }, 'Parcel ', h('span', { class: 'parcel-ref' }, reference)), body);
  let parcel;
  try {
    parcel = await api(`parcels/${enc(reference)}`);
  } catch (e) {
    if (!isCurrent(token)) return;
    body.replaceChildren(h('div', { class: 'notice bad', role: 'alert' },
      e.status === 404 ? `No report is stored under the reference ${reference}.` : e.message),
    h('p', {}, h('a', { href: '#/history' }, 'Search the history')));
    return;
  }
  if (!isCurrent(token)) return;
  const reports = parcel.reports || [];
  const items = reports.map((report, i) => ({ report, row: parcel.rows[i] }));
  const model = reports.length ? reports[0].model || {} : {};
  const photos = byPhoto(reports);
  body.replaceChildren(
    h('div', { class: 'actions no-print' },
      h('a', { class: 'button', href: `${API}parcels/${enc(reference)}.csv`, download: '' }, 'Download CSV'),
      h('button', { type: 'button', class: 'secondary', onclick: () => window.print() }, 'Print parcel'),
      h('a', { class: 'button secondary', href: `#/history?reference=${enc(reference)}` }, 'In History')),
    h('p', { class: 'print-only parcel-doc-head' },
      `gemid parcel document · reference ${reference} · printed ${utc(new Date().toISOString())} · `
      + `model ${model.name || '?'} ${model.version || ''}`),
    countsLine(parcel.counts || {}, parcel.stones, parcel.photos),
    h('section', { class: 'parcel-photos', 'aria-label': 'Photos' },
      photos.map((group) => stonesFigure(group))),
    heading(2, 'Stones'),
    stonesTable(items, { caption: `Stones of parcel ${reference}` }),
    h('section', { class: 'parcel-hashes' }, heading(2, 'Photos (SHA-256)'),
      h('ul', { class: 'mono' }, photos.map((g) => h('li', {}, `${g[0].file || 'photo'}: ${(g[0].image || {}).sha256}`)))),
    reports.length ? h('p', { class: 'disclaimer' }, h('strong', {}, 'Disclaimer. '), reports[0].disclaimer) : null);
}
