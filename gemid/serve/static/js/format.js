/* How the page words and formats the service's answers: labels, percentages, sizes, UTC dates, test
 * names and the species decision in plain words.
 *
 * The capture list, the report card, the history table and the printable report all show the same
 * figures; one module for the wording keeps them saying the same thing (a percentage rounded one way in
 * the card and another way on paper would make a technician doubt both). Words the translated views show
 * come from js/messages.js (js/i18n.js `t`).
 */

import { t } from './i18n.js';

/** A model label as words (star_ruby → star ruby). */
export function nice(label) {
  return String(label || '').replace(/_/g, ' ');
}

/** A probability as a percentage, to the precision a technician can use. */
export function pct(p) {
  const v = Number(p) * 100;
  if (!Number.isFinite(v)) return '—';
  if (v >= 99.5) return '>99%'; // a photo is never certain: the report's own text says ">99%" too
  if (v >= 10) return `${Math.round(v)}%`;
  if (v >= 0.1) return `${v.toFixed(1)}%`;
  return v > 0 ? '<0.1%' : '0%';
}

// gemid.report.READING_PLACES: a reading as the instrument gives it ("RI 1.770", "SG 4.00"), not shortened
const READING_PLACES = { ri: 3, ri_high: 3, birefringence: 3, sg: 2, weight_ct: 2, ri_limit: 2 };

/** A reading's value in its instrument's places (gemid.report.reading_value). */
export function readingValue(key, value) {
  const places = READING_PLACES[key];
  return places !== undefined && typeof value === 'number' ? value.toFixed(places) : String(value);
}

/** A size in mm or a weight in carats to two places ("8.16"), as the service's rows write them; "" when absent. */
export function twoPlaces(v) {
  return v === null || v === undefined ? '' : Number(v).toFixed(2);
}

export function bytes(n) {
  if (!Number.isFinite(n)) return '';
  // binary units, as the limits are set and the service's messages say them (gemid/messages.py size_text): a
  // 20 MiB limit is "20 MiB" here too, not "21.0 MB"
  for (const [unit, scale] of [['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (n >= scale) return n % scale === 0 ? `${n / scale} ${unit}` : `${(n / scale).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}

export function utc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || '');
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
}

const TEST_NAMES = {
  refractive_index: 'Refractive index',
  birefringence: 'Birefringence',
  specific_gravity: 'Specific gravity',
  optic_character: 'Optic character',
  optic_sign: 'Optic sign',
  pleochroism: 'Pleochroism',
  uv_fluorescence: 'UV fluorescence',
  uv_lw: 'UV fluorescence (long wave)',
  uv_fluorescence_sw: 'UV fluorescence (short wave)',
  uv_sw: 'UV fluorescence (short wave)',
  spectroscope: 'Spectroscope',
  magnification: 'Magnification',
};

export function testName(t) {
  if (TEST_NAMES[t]) return TEST_NAMES[t];
  const words = nice(t);
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const DECISION_WORDS = {
  identified: (best) => `Identified: ${best}`,
  uncertain: (best) => `Uncertain — most likely ${best}`,
  rejected: () => 'Not a gemstone, or the photo is too poor to judge',
};
const DECISIONS = ['identified', 'uncertain', 'refer', 'rejected'];
/** The decision in a word or two, in the page's language (a badge, a table cell); undefined for an unknown one. */
export const DECISION_SHORT = new Proxy({}, {
  get: (_, d) => (DECISIONS.includes(d) ? t(`decision.${d}`) : undefined),
});

export function decisionText(species) {
  const top = (species && species.top) || [];
  const best = top.length ? nice(top[0].label) : 'unknown';
  const f = DECISION_WORDS[species && species.decision];
  return f ? f(best) : String((species && species.decision) || 'No decision');
}

/** A list of names in words: "A", "A or B", "A, B or C". */
export function orList(names) {
  const n = (names || []).map(nice);
  return n.length <= 1 ? n.join('') : `${n.slice(0, -1).join(', ')}${t('words.or')}${n[n.length - 1]}`;
}

/** The report's conclusion (photo and readings). A report stored before conclusions existed gets the one
 * the service's History gives it: the photo's decision with the best of the combined ranking, if any. */
export function conclusionOf(report) {
  if (report && report.conclusion) return report.conclusion;
  const sp = (report && report.species) || {};
  const rr = report && report.tests && report.tests.reranking;
  const best = ((rr && rr.combined) || sp.top || [])[0];
  const rejected = sp.decision === 'rejected' || !best;
  return {
    decision: rejected ? 'rejected' : sp.decision, label: rejected ? null : best.label,
    probability: rejected ? null : best.probability, basis: rr ? 'photo+readings' : 'photo',
    reason: sp.reason || '', fits: [], cannot_exclude: [], stored_before: true,
  };
}

/** The conclusion in one line: "Identified: Ruby (99%)", "Refer to a laboratory: the readings fit CZ". */
export function conclusionText(c) {
  const answer = c && c.label ? `${nice(c.label)}${c.probability != null ? ` (${pct(c.probability)})` : ''}` : '';
  switch (c && c.decision) {
    case 'identified': return t('conclusion.identified', { answer });
    case 'uncertain': return t('conclusion.uncertain', { answer });
    case 'refer': return (c.fits || []).length
      ? t('conclusion.refer.fits', { fits: orList(c.fits) }) : t('conclusion.refer');
    case 'rejected': return t('conclusion.rejected');
    default: return String((c && c.decision) || 'No decision');
  }
}

/** The conclusion's answer for a table cell: "Ruby 99%", or for a referral "readings fit Cubic zirconia". */
export function answerCell(decision, label, probability) {
  if (!label) return '—';
  if (decision === 'refer') return t('answer.fits', { label: nice(label) });
  return `${nice(label)}${probability != null && decision !== 'rejected' ? ` ${pct(probability)}` : ''}`;
}
