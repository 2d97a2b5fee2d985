/* The read-only parts of a report, shared by the report card (capture results and #/report/<id>) and the
 * printable report: the photo with the stone outline and inclusions drawn over it, candidate bars,
 * photo-quality warnings, colour and clarity (or why they could not be graded), and the confirmatory tests:
 * those done, those to do next, and when only a laboratory can settle it. The conclusion is conclusion.js.
 *
 * Each part is a function of the stored report alone, with the heading level passed in, so the same
 * section reads correctly under an h2 on paper and under an h3 inside a parcel's results.
 */

import { imageUrl } from './api.js';
import { add, h, heading, s } from './dom.js';
import { nice, pct, testName, twoPlaces } from './format.js';

/** The decoded preview with the stone outline (or its box) and the marked inclusions drawn to scale over it. */
export function photoFigure(report) {
  const img = report.image || {};
  const W = img.width || 1;
  const H = img.height || 1;
  const frame = h('div', { class: 'photo-frame' });
  const picture = h('img', {
    src: imageUrl(report), width: W, height: H, decoding: 'async',
    alt: `Photo of the stone${report.file ? ` (${report.file})` : ''}`,
  });
  picture.addEventListener('error', () => {
    const ph = h('div', { class: 'placeholder' },
      `The browser cannot display this ${img.format || ''} photo; the stone outline is drawn to scale.`);
    ph.style.aspectRatio = `${W} / ${H}`;
    picture.replaceWith(ph);
  }, { once: true });
  frame.append(picture);

  const svg = s('svg', {
    class: 'overlay', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true',
    focusable: 'false',
  });
  const stone = report.quality && report.quality.stone;
  const notes = [];
  if (stone) {
    const pts = (stone.outline || []).map((p) => `${p[0]},${p[1]}`).join(' ');
    if (pts) {
      svg.append(s('polygon', { class: 'outline-shadow', points: pts }), s('polygon', { class: 'outline', points: pts }));
    } else if (stone.bbox) {
      const [x, y, w, hh] = stone.bbox;
      svg.append(s('rect', { class: 'outline-shadow', x, y, width: w, height: hh }),
        s('rect', { class: 'outline', x, y, width: w, height: hh }));
    }
    const st = report.stone;
    if (st && st.count > 1) {  // a stone of a tray photo: its number, as on the tray's own figure
      const [x, y, w, hh] = st.bbox;
      const size = Math.max(14, Math.round(Math.max(W, H) / 28));
      svg.append(s('circle', { class: 'number-disc', cx: x + w / 2, cy: y + hh / 2, r: size * 0.75 }),
        s('text', { class: 'number', x: x + w / 2, y: y + hh / 2, 'font-size': size, 'text-anchor': 'middle',
          'dominant-baseline': 'central' }, String(st.index)));
    }
    notes.push(h('span', {}, h('span', { class: 'legend-swatch outline', 'aria-hidden': 'true' }),
      st && st.count > 1 ? `Stone ${st.index} of ${st.count} in this photo, outlined by gemid.`
        : `Stone outline found by gemid (${pct(stone.area_fraction)} of the frame).`));
  } else {
    notes.push('No stone outline could be found in this photo.');
  }
  const incl = (report.clarity && report.clarity.inclusions) || [];
  for (const inc of incl) {
    const [x, y, w, hh] = inc.bbox;
    svg.append(s('rect', { class: 'inclusion', x, y, width: w, height: hh }, s('title', {}, inc.kind)));
  }
  if (incl.length) {
    const kinds = [...new Set(incl.map((i) => i.kind))].join(', ');
    notes.push(' ', h('span', {}, h('span', { class: 'legend-swatch inclusion', 'aria-hidden': 'true' }),
      `${incl.length} inclusion${incl.length > 1 ? 's' : ''} marked (${kinds}).`));
  }
  frame.append(svg);
  return h('figure', { class: 'photo' }, frame, h('figcaption', {}, notes));
}

/** Candidates as bars; given the `previous` ranking, each says where it stood there (was #3, new). */
export function bars(cands, label, previous) {
  const ol = h('ol', { class: 'bars', 'aria-label': label });
  const prevRank = new Map((previous || []).map((c, i) => [c.label, i + 1]));
  cands.forEach((c, i) => {
    const fill = h('div', { class: 'fill' });
    fill.style.width = `${Math.max(0, Math.min(1, Number(c.probability) || 0)) * 100}%`;
    let was = null;
    if (previous) {
      const r = prevRank.get(c.label);
      if (r !== i + 1) was = h('span', { class: 'was' }, r ? `was #${r}` : 'new');
    }
    ol.append(h('li', {},
      h('span', { class: 'label' }, nice(c.label), was),
      h('div', { class: 'track', 'aria-hidden': 'true' }, fill),
      h('span', { class: 'pct' }, pct(c.probability))));
  });
  return ol;
}

export function warningsBlock(report) {
  const ws = (report.quality && report.quality.warnings) || [];
  if (!ws.length) return null;
  return h('div', { class: 'notice warn', 'data-warnings': ws.length },
    h('strong', {}, 'Photo quality'),
    h('ul', {}, ws.map((w) => h('li', { 'data-code': w.code }, w.message))));
}

const NOT_GRADED_WORDS = { cannot_judge: 'Cannot judge from this photo', not_applicable: 'Does not apply' };

/** A grade that could not be made says why ("Cannot judge from this photo: …"), or null when it was graded. */
function notGraded(g, what) {
  const status = g.status || 'graded';
  if (status === 'graded') return null;
  const words = NOT_GRADED_WORDS[status] || `Not graded (${status})`;
  return h('p', { class: 'not-graded', 'data-status': status },
    h('strong', {}, words), g.reason ? `: ${g.reason}` : `: the ${what} was not graded.`);
}

const orDash = (v, f) => (v === null || v === undefined ? '—' : f(v));

export function colourSection(report, lvl) {
  const c = report.colour;
  const sec = h('section', { class: 'colour', 'data-status': c ? c.status || 'graded' : 'none' }, heading(lvl, 'Colour'));
  if (!c) return add(sec, [h('p', { class: 'lead' }, 'Colour was not graded for this photo.')]);
  const why = notGraded(c, 'colour');
  if (why) return add(sec, [why]);
  const sw = h('div', { class: 'swatch', role: 'img', 'aria-label': `Body colour swatch ${c.hex || 'unknown'}` });
  if (/^#[0-9a-fA-F]{3,8}$/.test(c.hex || '')) sw.style.background = c.hex;
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'Hue'), h('dd', {}, orDash(c.hue, (hue) => `${hue}${c.hue_angle != null ? ` (${Math.round(c.hue_angle)}°)` : ''}`)),
    h('dt', {}, 'Tone'), h('dd', {}, orDash(c.tone, (t) => `${t.value} — ${t.name}`)),
    h('dt', {}, 'Saturation'), h('dd', {}, orDash(c.saturation, (t) => `${t.value} — ${t.name}`)),
    c.d_to_z ? [h('dt', {}, 'D–Z band'), h('dd', {}, `${c.d_to_z.band} (${c.d_to_z.letters})`)] : null,
    h('dt', {}, 'Confidence'), h('dd', {}, pct(c.confidence)));
  add(sec, [h('div', { class: 'swatch-row' }, sw, h('div', {}, c.description ? h('p', {}, c.description) : null, facts))]);
  if (c.d_to_z && c.d_to_z.caveat) sec.append(h('p', { class: 'hint' }, c.d_to_z.caveat));
  if (c.white_balance === 'none') {
    sec.append(h('p', { class: 'hint' },
      'No neutral background or grey card was found, so the lighting may shift this colour.'));
  }
  return sec;
}

export function claritySection(report, lvl) {
  const c = report.clarity;
  const sec = h('section', { class: 'clarity', 'data-status': c ? c.status || 'graded' : 'none' }, heading(lvl, 'Clarity'));
  if (!c) return add(sec, [h('p', { class: 'lead' }, 'Clarity was not graded for this photo.')]);
  const why = notGraded(c, 'clarity');
  if (why) return add(sec, [why]);
  sec.append(h('p', {}, h('span', { class: 'grade' }, c.grade || '—'),
    c.eye_clean === true ? 'Eye clean.' : c.eye_clean === false ? 'Inclusions visible to the eye.' : ''));
  if (c.type_meaning || c.clarity_type) {
    sec.append(h('p', {}, c.clarity_type ? h('strong', {}, `Clarity type ${c.clarity_type}. `) : null,
      c.type_meaning || ''));
  }
  const inc = c.inclusions || [];
  sec.append(h('dl', { class: 'facts' },
    h('dt', {}, 'Inclusions marked'), h('dd', {}, String(inc.length)),
    h('dt', {}, 'Severity'), h('dd', {}, orDash(c.severity, pct)),
    h('dt', {}, 'Confidence'), h('dd', {}, pct(c.confidence))));
  return sec;
}

function testItem(r) {
  return h('li', { 'data-test': r.test },
    h('div', { class: 'test-title' }, h('strong', {}, testName(r.test)), r.instrument ? ` — ${r.instrument}` : ''),
    h('div', { class: 'test-body' }, h('p', { class: 'why' }, r.why),
      (r.expected || []).length ? h('table', { class: 'expected' },
        h('caption', { class: 'sr-only' }, `Expected ${testName(r.test).toLowerCase()} per candidate`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Candidate'), h('th', { scope: 'col' }, 'Expected'))),
        h('tbody', {}, r.expected.map((e) => h('tr', {}, h('td', {}, nice(e.label)), h('td', {}, e.expected))))) : null));
}

/** The stone's size on the scale card and its weight (the scale reading, or the estimate from the size), with
 * what each rests on; null when the photo holds no scale card and no weight was entered. */
export function sizeSection(report, lvl) {
  const st = report.stone || {};
  const size = st.size;
  const w = st.weight;
  if (!size && !w) return null;
  const sec = h('section', { class: 'size-section', 'data-status': size ? size.status : 'none' }, heading(lvl, 'Size and weight'));
  const facts = h('dl', { class: 'facts' });
  if (size && size.status === 'measured') {
    facts.append(h('dt', {}, 'Length × width'), h('dd', { class: 'size-mm' },
      `${twoPlaces(size.length_mm)} × ${twoPlaces(size.width_mm)} mm (± ${twoPlaces(size.uncertainty_mm)} mm, 95 %)`));
  } else if (size) {
    sec.append(h('p', { class: 'not-graded', 'data-status': size.status },
      h('strong', {}, 'Cannot measure from this photo'), size.reason ? `: ${size.reason}` : '.'));
  }
  if (w) {
    facts.append(h('dt', {}, 'Weight'), h('dd', { class: 'weight', 'data-basis': w.basis },
      w.basis === 'scale' ? `${twoPlaces(w.carats)} ct (scale reading)`
        : `≈ ${twoPlaces(w.carats)} ct, estimated ${twoPlaces(w.low)}–${twoPlaces(w.high)} ct`));
  }
  if (facts.childNodes.length) sec.append(facts);
  const how = [size ? size.method : null, w ? w.method : null].filter(Boolean);
  if (how.length) sec.append(h('p', { class: 'method' }, how.join('. ') + '.'));
  return sec;
}

/** The guidance of this revision: the tests already done, what a laboratory would add when standard tests
 * cannot settle it, and the tests to do next (never one already done). */
export function testsSection(report, lvl) {
  const t = report.tests;
  const sec = h('section', { class: 'tests-section' }, heading(lvl, 'Confirmatory tests'));
  if (!t) return add(sec, [h('p', { class: 'lead' }, 'No test guidance for this photo.')]);
  const done = t.done || [];
  const rec = t.recommended || [];
  if (done.length) {
    sec.append(h('p', { class: 'tests-done' }, h('strong', {}, 'Done: '), `${done.map(testName).join(', ')}.`));
  }
  if (t.colour_decides) sec.append(h('div', { class: 'notice warn' }, t.colour_decides));
  if (t.lab_note) sec.append(h('div', { class: 'notice warn lab-note' }, h('strong', {}, 'Laboratory. '), t.lab_note));
  if (!rec.length) {
    sec.append(h('p', { class: 'lead no-tests' }, done.length
      ? 'No further standard test separates the candidates.'
      : 'No test needed to separate the candidates, or none applies.'));
    return sec;
  }
  sec.append(h('p', { class: 'tests-next' }, done.length ? 'Still to do, in this order:' : 'Do these next, in this order:'));
  sec.append(h('ol', { class: 'tests' }, rec.map(testItem)));
  return sec;
}
