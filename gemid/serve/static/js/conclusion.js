/* A report's answer as the card and the printable report show it: the conclusion from all the evidence
 * (photo and readings) first, then the rankings that led to it, each under its own heading.
 *
 * The conclusion is what a technician acts on, and what History, the parcel summary and the paper show:
 * identified, uncertain, refer (send it to a laboratory: the readings fit no candidate, or fit a look-alike
 * the model does not know) or rejected, with its reason, what the readings fit, and the look-alikes the
 * evidence cannot exclude. The photo's own result stays visible below it as "From the photo", so the two
 * can be told apart; the photo's bars never stand under the "With your readings" heading.
 */

import { h, heading } from './dom.js';
import { conclusionOf, conclusionText, decisionText, nice, orList } from './format.js';
import { readingsText } from './readings.js';
import { bars } from './report-sections.js';

const BASIS_WORDS = { photo: 'From the photo alone', 'photo+readings': 'From the photo and your readings' };

/** The conclusion: decision badge with the answer, its basis and reason, what the readings fit and what the
 * evidence cannot exclude. */
export function conclusionBlock(report) {
  const c = conclusionOf(report);
  const fits = c.fits || [];
  const cannot = c.cannot_exclude || [];
  return h('div', { class: `conclusion ${c.decision || ''}`, 'data-decision': c.decision || '' },
    h('p', { class: `decision ${c.decision || ''}`, 'data-decision': c.decision || '' },
      c.decision === 'refer' ? 'Refer to a laboratory' : conclusionText(c)),
    h('p', { class: 'basis' }, BASIS_WORDS[c.basis] || '',
      c.stored_before ? ' (stored before gemid drew conclusions: the photo’s decision is shown)' : ''),
    c.reason ? h('p', { class: 'reason conclusion-reason' }, c.reason) : null,
    c.decision === 'refer' && fits.length
      ? h('p', { class: 'fits' }, h('strong', {}, 'The readings fit: '), fits.map(nice).join(', ')) : null,
    cannot.length ? h('p', { class: 'cannot-exclude' }, h('strong', {}, 'Cannot exclude: '), cannot.map(nice).join(', '),
      c.basis === 'photo+readings'
        ? '. These fit the readings so far: the reason says which a further test can exclude; only a laboratory can '
          + 'tell the rest apart. gemid never calls a stone natural.'
        : '. A photo cannot tell these from the answer: standard tests or a laboratory can. gemid never calls a '
          + 'stone natural.') : null);
}

/** Why the combined ranking is not the answer when the conclusion refers the stone: the bars rank only the
 * species the photo model knows (an outside try read "Kyanite 59 %" under a referral naming red spinel). */
function caveat(rr, c) {
  if (!rr.fits_none && c.decision !== 'refer') return null;
  const fits = c.fits || [];
  const why = rr.fits_none ? 'the readings fit none of the photo’s candidates' : 'the conclusion refers this stone';
  return h('p', { class: 'hint ranking-caveat' }, `Not an answer: ${why}`
    + `${fits.length ? ` (the readings fit ${orList(fits)})` : ''}. These bars rank only the species the photo `
    + 'model knows, photo and readings combined; “new” marks one the photo ranked below its top ten.');
}

/** Under "With your readings": the combined ranking, each candidate with where the photo had it. */
function withReadings(report, lvl) {
  const rr = report.tests && report.tests.reranking;
  if (!rr) return null;
  const c = conclusionOf(report);
  return h('div', { class: 'ranking with-readings' },
    heading(lvl, 'With your readings'),
    h('p', { class: 'readings-line' }, h('strong', {}, 'Readings: '), readingsText(rr.readings) || 'none'),
    caveat(rr, c),
    bars((rr.combined || []).slice(0, 5), 'Ranking with your readings', rr.photo_only || []));
}

/** Under "From the photo": the photo-only decision, its reason and its top 5 candidates. */
function fromPhoto(report, lvl) {
  const sp = report.species || {};
  const top = (sp.top || []).slice(0, 5);
  const c = conclusionOf(report);
  return h('div', { class: 'ranking from-photo' },
    heading(lvl, 'From the photo'),
    h('p', { class: `decision photo ${sp.decision || ''}`, 'data-decision': sp.decision || '' }, decisionText(sp)),
    sp.reason && sp.reason !== c.reason ? h('p', { class: 'reason' }, sp.reason) : null,
    top.length ? bars(top, 'Top 5 candidates from the photo') : h('p', {}, 'No candidates.'));
}

/** The species section of the card and of the printable report. `focusable` makes its heading the place
 * focus moves to after readings, where the new answer is. */
export function speciesSection(report, lvl, { focusable = false } = {}) {
  return h('section', { class: 'species', 'aria-label': 'Species' },
    heading(lvl, 'Conclusion', focusable ? { tabindex: '-1', class: 'conclusion-heading' } : {}),
    conclusionBlock(report),
    withReadings(report, lvl + 1),
    fromPhoto(report, lvl + 1));
}
