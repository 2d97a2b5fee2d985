/* The #/parcel/<reference> view: every stone stored under one reference (lot number), as the service lists
 * them (GET /v1/parcels/{reference}): counts by conclusion on top, each photo with its stones numbered, and
 * one row per stone (the service's own rows, gemid.report.table_row). Its print is the parcel's document:
 * the photos small, the table compact, the photo hashes, model and disclaimer, about 20 stones to an A4 page.
 * "Download PDF" gets the service's own manifest (GET /v1/parcels/{reference}.pdf) in the page's language.
 */

import { API, api } from './api.js';
import { enc, h, heading } from './dom.js';
import { utc } from './format.js';
import { lang, t, tn } from './i18n.js';
import { isCurrent } from './route.js';
import { byPhoto, countsLine, stonesFigure, stonesTable } from './stones.js';

export function parcelHref(reference) {
  return `#/parcel/${enc(reference)}`;
}

export async function viewParcel(root, route, token) {
  const reference = route.id;
  document.title = `${t('parcel.title')}${reference} — gemid`;
  const body = h('div', {}, h('p', {}, t('parcel.loading')));
  root.append(h('h1', { tabindex: '-1' }, t('parcel.title'), h('bdi', { class: 'parcel-ref' }, reference)), body);
  let parcel;
  try {
    parcel = await api(`parcels/${enc(reference)}`);
  } catch (e) {
    if (!isCurrent(token)) return;
    body.replaceChildren(h('div', { class: 'notice bad', role: 'alert' },
      e.status === 404 ? t('parcel.none', { reference }) : e.message),
    h('p', {}, h('a', { href: '#/history' }, t('parcel.searchhistory'))));
    return;
  }
  if (!isCurrent(token)) return;
  const reports = parcel.reports || [];
  const items = reports.map((report, i) => ({ report, row: parcel.rows[i] }));
  const model = reports.length ? reports[0].model || {} : {};
  const photos = byPhoto(reports);
  // each stone carries its row's number in the table below, not its place in its own photo: a parcel of one
  // stone per photo showed "1" on every photo (an outside try could not match row 8 to its photo)
  const row = new Map(reports.map((r, i) => [r.report_id, i + 1]));
  body.replaceChildren(
    h('div', { class: 'actions no-print' },
      h('a', { class: 'button', href: `${API}parcels/${enc(reference)}.csv`, download: '' }, t('parcel.csv')),
      h('a', { class: 'button', href: `${API}parcels/${enc(reference)}.pdf?lang=${lang()}`, download: '' }, t('parcel.pdf')),
      h('button', { type: 'button', class: 'secondary', onclick: () => window.print() }, t('parcel.print')),
      h('a', { class: 'button secondary', href: `#/history?reference=${enc(reference)}` }, t('parcel.inhistory'))),
    h('p', { class: 'print-only parcel-doc-head' }, t('parcel.dochead', {
      reference, date: utc(new Date().toISOString()), model: `${model.name || '?'} ${model.version || ''}`.trim(),
    })),
    countsLine(parcel.counts || {}, parcel.stones, parcel.photos),
    h('section', { class: 'parcel-photos', 'aria-label': t('parcel.photos') },
      photos.map((group) => stonesFigure(group, {
        numberOf: (r) => row.get(r.report_id),
        caption: tn('parcel.figure', group.length, { file: group[0].file || t('stones.photo'),
          first: row.get(group[0].report_id), last: row.get(group[group.length - 1].report_id) }),
      }))),
    heading(2, t('parcel.stones')),
    stonesTable(items, { caption: t('parcel.caption', { reference }) }),
    h('section', { class: 'parcel-hashes' }, heading(2, t('parcel.hashes')),
      h('ul', { class: 'mono', dir: 'ltr' }, photos.map((g) => h('li', {}, `${g[0].file || 'photo'}: ${(g[0].image || {}).sha256}`)))),
    reports.length ? h('p', { class: 'disclaimer' }, h('strong', {}, t('disclaimer.title')),
      lang() === 'en' ? reports[0].disclaimer : t('disclaimer')) : '');  // replaceChildren would write a null
}
