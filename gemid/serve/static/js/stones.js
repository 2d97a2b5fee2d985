/* Many stones: a tray photo with every stone's outline drawn and numbered, and the compact table of stones
 * (one row per stone) that the Identify results, the #/parcel/<reference> view and its print all use.
 *
 * A tray photo gives one report per stone, all of the same photo (`stone` {index, count, bbox, outline}). A
 * six-stone result shown as six full report cards was ~12,500 px tall on a desk screen, so a parcel is read
 * as this table, and a stone's full card is opened on demand (js/capture.js) or on its own page.
 */

import { imageUrl } from './api.js';
import { enc, h, s } from './dom.js';
import { DECISION_SHORT, answerCell, conclusionOf, nice, pct, readingValue, twoPlaces } from './format.js';
import { lang, t, tn } from './i18n.js';

/** "2/6" for a stone of a tray photo, "" for a photo of one stone. */
export function stoneNumber(report) {
  const st = report && report.stone;
  return st && st.count > 1 ? `${st.index}/${st.count}` : '';
}

/** The photo with every stone of `reports` (reports of that one photo) outlined and numbered: by its place in
 * the photo, or by `numberOf(report)` (the parcel numbers them as the rows of its table). */
export function stonesFigure(reports, { caption = null, numberOf = null } = {}) {
  const first = reports[0];
  const img = first.image || {};
  const W = img.width || 1;
  const H = img.height || 1;
  const frame = h('div', { class: 'photo-frame' });
  const picture = h('img', {
    src: imageUrl(first), width: W, height: H, decoding: 'async',
    alt: t('stones.figure.alt', { file: first.file || '', n: reports.length }),
  });
  picture.addEventListener('error', () => {
    const ph = h('div', { class: 'placeholder' }, t('stones.figure.nophoto'));
    ph.style.aspectRatio = `${W} / ${H}`;
    picture.replaceWith(ph);
  }, { once: true });
  frame.append(picture);
  const svg = s('svg', {
    class: 'overlay stones', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false',
  });
  const size = Math.max(14, Math.round(Math.max(W, H) / 28));
  for (const r of reports) {
    const st = r.stone;
    if (!st) continue;
    const [x, y, w, hh] = st.bbox;
    const pts = (st.outline || []).map((p) => `${p[0]},${p[1]}`).join(' ');
    const g = s('g', { 'data-stone': String(st.index), 'data-report-id': r.report_id });
    if (pts) g.append(s('polygon', { class: 'outline-shadow', points: pts }), s('polygon', { class: 'outline', points: pts }));
    else g.append(s('rect', { class: 'outline', x, y, width: w, height: hh }));
    const rad = size * 0.75;
    const cx = x + w / 2;
    // a stone smaller than its number (a whole scale card in the frame) gets the number above it, not over it
    const small = Math.max(w, hh) < 2.5 * rad;
    const cy = !small ? y + hh / 2 : y - rad - 2 >= rad ? y - rad - 2 : y + hh + rad + 2;
    g.append(s('circle', { class: 'number-disc', cx, cy, r: rad }),
      s('text', { class: 'number', x: cx, y: cy, 'font-size': size, 'text-anchor': 'middle', 'dominant-baseline': 'central' },
        String(numberOf ? numberOf(r) : st.index)));
    svg.append(g);
  }
  frame.append(svg);
  return h('figure', { class: 'photo tray', 'data-stones': String(reports.length) }, frame,
    h('figcaption', {}, caption || tn('stones.figure', reports.length, { file: first.file || t('stones.photo') })));
}

/** Reports grouped by photo, in order: the stones of one photo together (they share its sha256 and time). */
export function byPhoto(reports) {
  const groups = [];
  for (const r of reports) {
    const last = groups[groups.length - 1];
    const key = `${(r.image || {}).sha256}|${r.stone ? r.stone.count : 1}`;
    if (last && last.key === key && r.stone && r.stone.index > last.reports[last.reports.length - 1].stone.index) {
      last.reports.push(r);
    } else {
      groups.push({ key, reports: [r] });
    }
  }
  return groups.map((g) => g.reports);
}

function colourCell(hex, words) {
  const sw = /^#[0-9a-fA-F]{3,8}$/.test(hex || '') ? h('span', { class: 'mini-swatch', 'aria-hidden': 'true' }) : null;
  if (sw) sw.style.background = hex;
  return [sw, words || '—'];
}

// gemid.report.READING_WORDS: the readings in a desk's shorthand, as the service's rows write them
const READING_WORDS = {
  ri: 'RI', ri_high: 'RI high', ri_otl: 'RI over the limit', birefringence: 'DR', sg: 'SG', optic: 'optic',
  optic_sign: 'sign', pleochroism: 'pleochroism', uv_lw: 'UV LW', uv_sw: 'UV SW', ri_spot: 'spot RI', weight_ct: 'ct', ri_limit: 'RI limit',
};

/** A report's row as the service words it (gemid.report.table_row), for a report without a stored row. */
export function rowOf(report) {
  const c = conclusionOf(report);
  const col = report.colour;
  const cla = report.clarity;
  const tests = report.tests;
  const notGraded = (g) => (g.status === 'not_applicable' ? 'does not apply' : 'cannot judge from this photo');
  const rr = tests && tests.reranking;
  const top = (report.species && report.species.top) || [];
  const tops = Object.fromEntries([0, 1, 2].filter((k) => top[k])
    .flatMap((k) => [[`top${k + 1}`, top[k].label], [`p${k + 1}`, String(top[k].probability)]]));
  return {
    ...tops,
    report_id: report.report_id, file: report.file || '', stone: report.stone ? `${report.stone.index} of ${report.stone.count}` : '',
    decision: c.decision, answer: c.label || '', probability: c.probability != null ? String(c.probability) : '', basis: c.basis,
    shape: report.stone && report.stone.shape ? nice(report.stone.shape.label) : '',
    colour: !col ? '' : col.status !== 'graded' || !col.tone ? notGraded(col) : `${col.hue}, tone ${col.tone.value}, saturation ${col.saturation.value}`,
    colour_hex: (col && col.hex) || '',
    clarity: !cla ? '' : cla.status !== 'graded' || !cla.grade ? notGraded(cla) : cla.grade,
    next_test: !tests ? '' : tests.colour_decides || ((tests.recommended || [])[0] ? nice(tests.recommended[0].test) : ''),
    readings: rr ? Object.entries(rr.readings || {}).filter(([, v]) => v !== null && v !== false)
      .map(([k, v]) => (v === true ? READING_WORDS[k] || k : `${READING_WORDS[k] || k} ${readingValue(k, v)}`)).join('; ') : '',
    ...sizeFields(report.stone),
  };
}

/** gemid.report.size_fields: the stone's size (on the scale card) and weight columns. */
function sizeFields(stone) {
  const size = (stone && stone.size) || null;
  const w = (stone && stone.weight) || null;
  return {
    size_status: size ? size.status : '',
    length_mm: twoPlaces(size && size.length_mm),
    width_mm: twoPlaces(size && size.width_mm),
    size_uncertainty_mm: twoPlaces(size && size.uncertainty_mm),
    weight_ct: twoPlaces(w && w.carats),
    weight_low_ct: twoPlaces(w && w.low),
    weight_high_ct: twoPlaces(w && w.high),
    weight_basis: w ? w.basis : '',
  };
}

/** The size and weight under the shape ("8.16 × 6.02 mm · ≈ 1.51 ct"), the interval and range in its title;
 * null without a measured size or a weight. */
function sizeLine(row) {
  const parts = [];
  const title = [];
  if (row.length_mm) {
    parts.push(t('size.brief', { length: row.length_mm, width: row.width_mm }));
    title.push(`± ${row.size_uncertainty_mm} mm (95 %)`);
  }
  if (row.weight_ct) {
    parts.push(t(row.weight_basis === 'scale' ? 'weight.scale' : 'weight.estimate', { ct: row.weight_ct }));
    if (row.weight_low_ct) title.push(`${row.weight_low_ct}–${row.weight_high_ct} ct (estimate)`);
  }
  return parts.length ? h('span', { class: 'size', title: title.join('; ') || null }, parts.join(' · ')) : null;
}

/** A GIA hue name ("slightly bluish green") in the page's language; as written when the catalogue lacks it. */
export function hueName(name) {
  const key = `hue.${name}`;
  const words = t(key);
  return words === key ? name : words;
}

/** A grade's words for a table cell: "cannot judge from this photo" without its reason, a colour without the
 * scale's names ("green, tone 5, saturation 5"); the cell's title keeps the whole text. */
export function brief(text) {
  const words = String(text || '');
  if (words.startsWith('does not apply')) return t('grade.not_applicable');
  if (words.startsWith('cannot judge')) return t('grade.cannot_judge');
  const graded = /^(.*), tone (\d+)[^,]*, saturation (\d+)/.exec(words);
  if (graded) return t('colour.brief', { hue: hueName(graded[1]), tone: graded[2], saturation: graded[3] });
  return words.replace(/\s*\([^)]*\)/g, '');
}

const SHAPES = ['round', 'oval', 'cushion', 'emerald_cut', 'square', 'pear', 'marquise', 'heart', 'trillion', 'cabochon',
  'tumbled_or_rough'];
const TESTS = ['refractive_index', 'birefringence', 'specific_gravity', 'optic_character', 'optic_sign', 'pleochroism',
  'uv_fluorescence', 'uv_fluorescence_sw', 'spectroscope', 'magnification'];

/** A shape or test as the row words it ("emerald cut", "refractive index"), in the page's language. */
function shapeWords(words) {
  const key = SHAPES.find((k) => nice(k) === words);
  return key ? t(`shape.${key}`) : words;
}

function testWords(words) {
  const key = TESTS.find((k) => nice(k) === words);
  return key ? t(`test.${key}`) : words;
}

function topThree(row) {
  return [1, 2, 3].filter((k) => row[`top${k}`])
    .map((k) => `${nice(row[`top${k}`])} ${pct(Number(row[`p${k}`]))}`).join(' · ') || '—';
}

/** The compact table of stones: `items` are {report, row} (row from the service, or rowOf(report)). */
export function stonesTable(items, { caption = t('stones.caption'), open = null } = {}) {
  const head = [...['n', 'where', 'decision', 'conclusion', 'top3', 'shape', 'colour', 'clarity', 'next', 'readings']
    .map((k) => t(`stones.col.${k}`)), ''];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stones' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, head.map((t, i) => h('th', { scope: 'col', class: i === 4 || i === 9 ? 'opt' : null }, t)))),
    h('tbody', {}, items.map(({ report, row }, i) => {
      const decision = row.decision || conclusionOf(report).decision;
      const prob = row.probability === '' || row.probability == null ? null : Number(row.probability);
      // "stone 2/6" from the report itself: the row's words are the CSV's ("2 of 6"), and a language-neutral
      // fraction reads in Urdu too
      const st = report.stone;
      const where = [row.file || report.file || t('stones.photo'),
        st && st.count > 1 ? t('stones.where', { stone: `${st.index}/${st.count}` }) : null].filter(Boolean).join(' · ');
      return h('tr', { 'data-report-id': report.report_id, 'data-decision': decision || '', 'data-stone': row.stone || '' },
        h('td', { class: 'num', 'data-label': t('stones.col.n') }, String(i + 1)),
        h('td', { class: 'where', 'data-label': t('stones.col.where') }, h('bdi', {}, where)),
        h('td', { class: 'decision-cell', 'data-label': t('stones.col.decision') },
          h('span', { class: `badge ${decision}` }, DECISION_SHORT[decision] || decision || '—')),
        h('td', { class: 'answer', 'data-label': t('stones.col.conclusion') }, h('bdi', {}, answerCell(decision, row.answer || null, prob)),
          row.basis === 'photo+readings' ? t('answer.withreadings') : '',
          row.confirmed ? h('span', { class: 'confirmed-line' }, h('bdi', {}, t('answer.confirmed',
            { label: nice(row.confirmed), method: row.confirmed_method || '' }))) : null),
        h('td', { class: 'photo-answer opt', 'data-label': t('stones.col.top3') }, h('bdi', { dir: 'ltr' }, topThree(row))),
        h('td', { class: 'shape', 'data-label': t('stones.col.shape') }, shapeWords(row.shape) || '—', sizeLine(row)),
        h('td', { class: 'colour', 'data-label': t('stones.col.colour'), title: row.colour || null },
          colourCell(row.colour_hex, brief(row.colour))),
        h('td', { class: 'clarity', 'data-label': t('stones.col.clarity'), title: row.clarity || null }, brief(row.clarity) || '—'),
        h('td', { class: 'next-test', 'data-label': t('stones.col.next') }, testWords(row.next_test) || '—'),
        h('td', { class: 'readings opt', 'data-label': t('stones.col.readings') }, h('bdi', { dir: 'ltr' }, row.readings || '—')),
        h('td', { class: 'open no-print' }, open ? open(report)
          : h('a', { href: `#/report/${enc(report.report_id)}` }, t('stones.open'),
            h('span', { class: 'sr-only' }, t('stones.open.sr', { n: i + 1 })))));
    }))));
}

/** "6 stones: 4 identified · 1 uncertain · 1 not a gemstone" as badges. */
export function countsLine(counts, stones, photos) {
  const parts = Object.entries(counts).filter(([, n]) => n > 0)
    .map(([d, n]) => h('span', { class: `badge ${d}`, 'data-decision': d },
      `${n} ${lang() === 'en' ? (DECISION_SHORT[d] || d).toLowerCase() : DECISION_SHORT[d] || d}`));
  return h('p', { class: 'counts' }, tn('stones.counts', stones), photos != null ? tn('stones.inphotos', photos) : '', ': ',
    parts.map((p, i) => [i ? ' ' : '', p]));
}
