/* One stone's result: the report card (photo, conclusion, warnings, colour, clarity, tests, readings) and the
 * #/report/<id> view that shows a stored report with its revisions.
 *
 * The card is the same wherever a result appears (under a parcel's upload, or opened from History or a
 * short link), so a technician learns one layout. It redraws itself in place when readings make a new
 * revision, moves focus to the new conclusion and tells screen readers what it is; its owner hears of the
 * revision through `onUpdate` (the parcel summary, the revision links).
 */

import { API, api, reportPath } from './api.js';
import { confirmSection } from './confirm.js';
import { add, announce, enc, h, heading, uid } from './dom.js';
import { speciesSection } from './conclusion.js';
import { conclusionOf, conclusionText, utc } from './format.js';
import { readingsSection } from './readings.js';
import {
  claritySection, colourSection, photoFigure, sizeSection, testsSection, warningsBlock,
} from './report-sections.js';
import { isCurrent } from './route.js';

/** A full report card. `onUpdate(newReport)` is told about a new revision after readings. */
export function reportCard(report, { lvl = 2, title = null, links = true, onUpdate = null } = {}) {
  // the card is English in either language: laid out left to right inside an Urdu page, so its sentences keep
  // their full stops and "<0.1%" its sign (an outside try saw ".tests" and "0.1%>")
  const card = h('article', { class: 'report', 'data-report-id': report.report_id, lang: 'en', dir: 'ltr' });
  const fill = (r, focusRerank) => {
    card.replaceChildren();
    const titleId = uid('report-title');
    card.setAttribute('aria-labelledby', titleId);
    card.setAttribute('data-revision', String(r.revision || 1));
    const meta = [`Report ${r.report_id}`, `revision ${r.revision || 1}`, utc(r.created_at)];
    if (r.reference) meta.push(`reference ${r.reference}`);
    card.append(h('div', { class: 'report-head' },
      h('div', {},
        heading(lvl, title || r.file || 'Stone', { id: titleId }),
        h('p', { class: 'meta' }, meta.join(' · '))),
      links ? h('div', { class: 'actions no-print' },
        h('a', { class: 'button secondary', href: `#/report/${enc(r.report_id)}` }, 'Open report'),
        h('a', { class: 'button secondary', href: `#/report/${enc(r.report_id)}/print` }, 'Printable report')) : null));
    card.append(h('div', { class: 'report-grid' },
      photoFigure(r),
      h('div', {}, speciesSection(r, lvl + 1, { focusable: true }), warningsBlock(r))));
    card.append(h('div', { class: 'report-sections' }, colourSection(r, lvl + 1), claritySection(r, lvl + 1)));
    const size = sizeSection(r, lvl + 1);
    if (size) card.append(size);
    card.append(testsSection(r, lvl + 1));
    card.append(readingsSection(r, lvl + 1, (updated) => {
      fill(updated, true);
      announce(`With your readings: ${conclusionText(conclusionOf(updated))}.`);
      if (onUpdate) onUpdate(updated);
    }));
    card.append(confirmSection(r, lvl + 1, (updated) => { fill(updated, false); if (onUpdate) onUpdate(updated); }));
    if (focusRerank) {
      const hd = card.querySelector('.conclusion-heading');
      if (hd) hd.focus();
    }
  };
  fill(report, false);
  return card;
}

/** #/report/<id>[?rev=n]: a stored report, its revisions, the printable version and the original photo. */
export async function viewReport(root, route, token) {
  const rev = route.params.get('rev');
  document.title = `Report ${route.id} — gemid`;
  const h1 = h('h1', { tabindex: '-1' }, 'Report ', h('span', { class: 'h1-id mono' }, route.id));
  const body = h('div', {}, h('p', {}, 'Loading report…'));
  root.append(h1, body);
  let report;
  try {
    report = await api(reportPath(route.id, rev));
  } catch (e) {
    if (!isCurrent(token)) return;
    body.replaceChildren(h('div', { class: 'notice bad', role: 'alert' },
      e.status === 404 ? `No report with id ${route.id}${rev ? ` (revision ${rev})` : ''}. Check the id printed on the report.` : e.message),
    h('p', {}, h('a', { href: '#/history' }, 'Search the history')));
    return;
  }
  if (!isCurrent(token)) return;
  const revBox = h('nav', { class: 'revisions', 'aria-label': 'Revisions' });
  const showRevisions = async (current) => {
    try {
      const list = await api(`reports/${enc(route.id)}/revisions`);
      const revs = Array.isArray(list) ? list : (list.revisions || list.items || []);
      revBox.replaceChildren();
      if (revs.length < 2) return;
      add(revBox, [h('span', {}, 'Revisions: '), revs.map((rv, i) => {
        const n = rv.revision || (i + 1);
        const label = `${n}${n === 1 ? ' (photo only)' : ' (with readings)'}`;
        return [i ? ' · ' : '', n === current ? h('strong', { 'aria-current': 'page' }, label)
          : h('a', { href: `#/report/${enc(route.id)}?rev=${n}` }, label)];
      })]);
    } catch (e) { revBox.replaceChildren(); }
  };
  const printLink = h('a', { class: 'button secondary', href: `#/report/${enc(route.id)}/print${rev ? `?rev=${enc(rev)}` : ''}` }, 'Printable report');
  const card = reportCard(report, {
    lvl: 2, links: false,
    onUpdate: (updated) => {
      printLink.setAttribute('href', `#/report/${enc(route.id)}/print`);
      if (rev) window.history.replaceState(null, '', `#/report/${enc(route.id)}`);
      showRevisions(updated.revision);
    },
  });
  body.replaceChildren(
    h('div', { class: 'actions no-print' }, printLink,
      h('a', { class: 'button secondary', href: `${API}reports/${enc(route.id)}/image`, target: '_blank', rel: 'noopener' },
        'Original photo'),
      h('a', { class: 'button secondary', href: '#/history' }, 'History')),
    revBox, card);
  showRevisions(report.revision || 1);
}
