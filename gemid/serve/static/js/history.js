/* The #/history view: search stored reports by reference, species, decision and date, a page at a time,
 * and download what the search found as CSV (/v1/reports.csv, the same filters). Each row shows the
 * report's conclusion (photo and readings), as the service lists it; its reference opens the parcel.
 *
 * The search lives in the hash (#/history?reference=…&page=2), not in the view's memory, so back and
 * forward, reloading and sharing a search all work; submitting the form only changes the hash, and the
 * router draws the page from it.
 */

import { API, api, config } from './api.js';
import { enc, h, heading } from './dom.js';
import { DECISION_SHORT, answerCell, conclusionOf, utc } from './format.js';
import { t } from './i18n.js';
import { parcelHref } from './parcel.js';
import { isCurrent, rerender } from './route.js';

const HISTORY_PAGE = 20;

/** The items of a list answer, whichever shape it has (a bare array, or items/reports/results with a total). */
function listItems(body) {
  if (Array.isArray(body)) return { items: body, total: null };
  const items = body.items || body.reports || body.results || [];
  const total = Number.isFinite(body.total) ? body.total : null;
  return { items, total };
}

export async function viewHistory(root, route, token) {
  document.title = `${t('history.title')} — gemid`;
  const p = route.params;
  const page = Math.max(1, parseInt(p.get('page') || '1', 10) || 1);
  const filters = ['reference', 'species', 'decision', 'since', 'until'];
  const field = (name, label, input) => h('div', { class: 'field' }, h('label', { for: `h-${name}` }, label), input);
  const text = (name, extra) => h('input', {
    type: name === 'since' || name === 'until' ? 'date' : 'search', id: `h-${name}`, name, value: p.get(name) || '', ...extra,
  });
  const labels = config.labels || [];
  const csvQuery = new URLSearchParams();
  for (const f of filters) if (p.get(f)) csvQuery.set(f, p.get(f));
  const form = h('form', { class: 'panel', role: 'search', 'aria-label': t('history.search') },
    h('div', { class: 'grid-fields history-filters' },
      field('reference', t('history.reference'), text('reference')),
      field('species', t('history.species'), [text('species', labels.length ? { list: 'species-labels' } : {}),
        labels.length ? h('datalist', { id: 'species-labels' }, labels.map((l) => h('option', { value: l }))) : null]),
      field('decision', t('history.decision'), h('select', { id: 'h-decision', name: 'decision' },
        [['', t('history.any')], ...['identified', 'uncertain', 'refer', 'rejected'].map((d) => [d, DECISION_SHORT[d]])]
          .map(([v, t]) => h('option', { value: v, selected: (p.get('decision') || '') === v }, t)))),
      field('since', t('history.since'), text('since')),
      field('until', t('history.until'), text('until'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('history.submit')),
      h('a', { class: 'button secondary', href: '#/history' }, t('history.reset')),
      h('a', { class: 'button secondary', id: 'history-csv', download: '',
        href: `${API}reports.csv${csvQuery.toString() ? `?${csvQuery}` : ''}` }, t('history.csv'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of filters) {
      const v = form.elements[f].value.trim();
      if (v) q.set(f, v);
    }
    const target = `#/history${q.toString() ? `?${q}` : ''}`;
    if (window.location.hash === target) rerender(); else window.location.hash = target;
  });
  const out = h('div', { 'aria-live': 'polite' }, h('p', {}, t('history.loading')));
  root.append(heading(1, t('history.title'), { tabindex: '-1' }), form, out);

  const q = new URLSearchParams({ limit: String(HISTORY_PAGE), offset: String((page - 1) * HISTORY_PAGE) });
  for (const f of filters) if (p.get(f)) q.set(f, p.get(f));
  let body;
  try {
    body = await api(`reports?${q}`);
  } catch (e) {
    if (!isCurrent(token)) return;
    out.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, e.message));
    return;
  }
  if (!isCurrent(token)) return;
  const { items, total } = listItems(body || {});
  if (!items.length) {
    out.replaceChildren(h('p', { class: 'lead' }, page > 1 ? t('history.nomore') : t('history.none')));
    return;
  }
  const rows = items.map((r) => {
    // a list item carries its conclusion (decision, species, probability); a full report is read the same way
    let decision = r.decision;
    let label = typeof r.species === 'string' ? r.species : null;
    let probability = r.probability;
    if (r.species && typeof r.species === 'object') ({ decision, label, probability } = conclusionOf(r));
    const rev = r.revision || 1;
    return h('tr', { 'data-report-id': r.report_id, 'data-decision': decision || '' },
      h('td', { 'data-label': 'Date' }, h('bdi', {}, utc(r.created_at))),
      h('td', { 'data-label': 'Reference' }, r.reference ? h('a', { href: parcelHref(r.reference), class: 'parcel-link' }, r.reference) : '—'),
      h('td', { class: 'opt', 'data-label': 'File' }, r.file || '—'),
      h('td', { 'data-label': 'Conclusion' }, h('bdi', {}, answerCell(decision, label, probability))),
      h('td', { 'data-label': 'Decision' }, h('span', { class: `badge ${decision}` }, DECISION_SHORT[decision] || decision || '—')),
      h('td', { class: 'opt num', 'data-label': 'Revision' }, String(rev)),
      h('td', { class: 'open' }, h('a', { href: `#/report/${enc(r.report_id)}` }, t('history.open'),
        h('span', { class: 'sr-only' }, t('history.open.sr', { id: r.report_id })))));
  });
  const from = (page - 1) * HISTORY_PAGE + 1;
  const to = from + items.length - 1;
  const link = (pg) => {
    const qq = new URLSearchParams(p);
    qq.set('page', String(pg));
    return `#/history?${qq}`;
  };
  const hasNext = total !== null ? to < total : items.length === HISTORY_PAGE;
  out.replaceChildren(
    h('div', { class: 'table-wrap panel' }, h('table', { class: 'history' },
      h('caption', { class: 'sr-only' }, t('history.caption')),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, t('history.col.date')), h('th', { scope: 'col' }, t('history.col.reference')),
        h('th', { scope: 'col', class: 'opt' }, t('history.col.file')), h('th', { scope: 'col' }, t('history.col.conclusion')),
        h('th', { scope: 'col' }, t('history.col.decision')), h('th', { scope: 'col', class: 'opt num' }, t('history.col.rev')),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('history.open'))))),
      h('tbody', {}, rows))),
    h('nav', { class: 'pager', 'aria-label': t('history.pages') },
      page > 1 ? h('a', { class: 'button secondary', href: link(page - 1) }, t('history.previous')) : null,
      h('span', {}, total !== null ? t('history.showing.total', { from, to, total }) : t('history.showing', { from, to })),
      hasNext ? h('a', { class: 'button secondary', href: link(page + 1) }, t('history.next')) : null));
}
