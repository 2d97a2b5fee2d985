/* The technician's instrument readings: the form (RI, birefringence, SG, optic character and sign,
 * pleochroism, UV, and how they were taken: spot reading, weight), its checks, the re-ranking it asks the
 * service for, and what the readings did. The rankings they give stand with the conclusion (conclusion.js).
 *
 * Readings are what turn a photo's guess into a decision, so they get their own module: the fields are
 * listed once (READING_FIELDS) and drive the form, the checks and the one-line summary that the card and
 * the printable report both show. A saved reading makes a new revision; the photo-only result stays as
 * revision 1.
 */

import { api } from './api.js';
import { enc, h, heading, uid } from './dom.js';
import { conclusionOf, nice, pct, readingValue } from './format.js';

const READING_FIELDS = [
  { name: 'ri', label: 'RI (single or low)', kind: 'num', min: 1.3, max: 3.0, hint: 'Refractometer, e.g. 1.762' },
  { name: 'ri_high', label: 'RI high', kind: 'num', min: 1.3, max: 3.0, hint: 'Doubly refractive stones' },
  {
    name: 'ri_otl', label: 'RI over the limit', kind: 'bool', group: 'Refractometer limit',
    hint: 'No shadow edge below the refractometer limit (~1.81)',
  },
  {
    name: 'ri_spot', label: 'RI is a spot reading', kind: 'bool', group: 'Curved surface', context: true,
    hint: 'Spot (distant-vision) reading on a cabochon or an aggregate: less precise',
  },
  { name: 'birefringence', label: 'Birefringence', kind: 'num', min: 0, max: 0.3, hint: 'e.g. 0.008' },
  { name: 'sg', label: 'Specific gravity (SG)', kind: 'num', min: 0.5, max: 8.0, hint: 'Hydrostatic, e.g. 3.99' },
  {
    name: 'weight_ct', label: 'Weight (ct)', kind: 'num', min: 0, above: true, max: 10000, unit: 'ct', context: true,
    hint: 'Carats: a small stone\'s SG is less precise',
  },
  {
    name: 'optic', label: 'Optic character', kind: 'select', hint: 'Polariscope',
    options: [['SR', 'SR — singly refractive'], ['DR', 'DR — doubly refractive'], ['AGG', 'AGG — aggregate'],
      ['ADR', 'ADR — anomalous double refraction']],
  },
  {
    name: 'optic_sign', label: 'Optic sign', kind: 'select', hint: 'Conoscope / refractometer',
    options: [['uniaxial+', 'Uniaxial +'], ['uniaxial-', 'Uniaxial −'], ['biaxial+', 'Biaxial +'],
      ['biaxial-', 'Biaxial −']],
  },
  {
    name: 'pleochroism', label: 'Pleochroism', kind: 'select', hint: 'Dichroscope',
    options: [['none', 'None'], ['weak', 'Weak'], ['moderate', 'Moderate'], ['strong', 'Strong']],
  },
  {
    name: 'uv_lw', label: 'UV fluorescence (long wave)', kind: 'select', hint: 'UV lamp, 365 nm',
    options: [['inert', 'Inert'], ['weak', 'Weak'], ['moderate', 'Moderate'], ['strong', 'Strong']],
  },
  {
    name: 'uv_sw', label: 'UV fluorescence (short wave)', kind: 'select', hint: 'UV lamp, 254 nm',
    options: [['inert', 'Inert'], ['weak', 'Weak'], ['moderate', 'Moderate'], ['strong', 'Strong']],
  },
];

/** The readings in one line (RI: 1.762 · SG: 3.99), for the card and the printable report. */
export function readingsText(r) {
  if (!r) return '';
  const parts = [];
  for (const f of READING_FIELDS) {
    if (r[f.name] === null || r[f.name] === undefined || r[f.name] === false) continue;
    parts.push(f.kind === 'bool' ? f.label
      : `${f.label.replace(/ \(.*\)$/, '')}: ${readingValue(f.name, r[f.name])}${f.unit ? ` ${f.unit}` : ''}`);
  }
  return parts.join(' · ');
}

function readingsForm(report, onNewReport, lvl, previous) {
  const formId = uid('readings');
  const errBox = h('div', { class: 'form-error', role: 'alert' });
  const inputs = {};
  const fields = READING_FIELDS.map((f) => {
    const id = `${formId}-${f.name}`;
    const hintId = `${id}-hint`;
    const errId = `${id}-err`;
    let input;
    const prev = previous && previous[f.name] !== null && previous[f.name] !== undefined ? previous[f.name] : '';
    if (f.kind === 'num') {
      input = h('input', {
        type: 'text', inputmode: 'decimal', id, name: f.name, autocomplete: 'off', value: prev,
        'aria-describedby': `${hintId} ${errId}`,
      });
    } else if (f.kind === 'bool') {
      input = h('input', { type: 'checkbox', id, name: f.name, checked: prev === true, 'aria-describedby': hintId });
      inputs[f.name] = input;
      return h('div', { class: 'field check' },
        h('p', { class: 'label', 'aria-hidden': 'true' }, f.group),
        h('p', { class: 'hint', id: hintId }, f.hint),
        h('label', { for: id, class: 'check-label' }, input, ' ', f.label),
        h('p', { class: 'field-error', id: errId }));
    } else {
      input = h('select', { id, name: f.name, 'aria-describedby': hintId },
        h('option', { value: '' }, 'Not measured'),
        f.options.map(([v, t]) => h('option', { value: v, selected: v === prev }, t)));
    }
    inputs[f.name] = input;
    return h('div', { class: 'field' },
      h('label', { for: id }, f.label),
      h('p', { class: 'hint', id: hintId }, f.hint),
      input,
      h('p', { class: 'field-error', id: errId }));
  });
  const submit = h('button', { type: 'submit' }, 'Re-rank with these readings');
  const form = h('form', { class: 'readings-form', novalidate: true, 'aria-label': 'Enter readings' },
    h('p', { class: 'hint' }, 'Fill in only what you measured. gemid combines the readings with the photo; '
      + 'the photo-only result stays stored as revision 1.'),
    h('div', { class: 'grid-fields' }, fields),
    errBox,
    h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    errBox.textContent = '';
    const payload = {};
    let bad = null;
    for (const f of READING_FIELDS) {
      const input = inputs[f.name];
      const err = document.getElementById(`${formId}-${f.name}-err`);
      err.textContent = '';
      input.removeAttribute('aria-invalid');
      if (f.kind === 'bool') {
        if (input.checked) payload[f.name] = true;
        continue;
      }
      const raw = input.value.trim();
      if (!raw) continue;
      if (f.kind === 'num') {
        const v = Number(raw.replace(',', '.'));
        if (!Number.isFinite(v) || v < f.min || (f.above && v <= f.min) || v > f.max) {
          err.textContent = f.above ? `Enter a number above ${f.min}, at most ${f.max}.`
            : `Enter a number between ${f.min} and ${f.max}.`;
          input.setAttribute('aria-invalid', 'true');
          bad = bad || input;
          continue;
        }
        payload[f.name] = v;
      } else {
        payload[f.name] = raw;
      }
    }
    if (bad) { bad.focus(); return; }
    if (!READING_FIELDS.some((f) => !f.context && payload[f.name] !== undefined)) {
      errBox.textContent = Object.keys(payload).length
        ? 'Enter at least one reading: the weight and the spot switch only say how the readings were taken.'
        : 'Enter at least one reading.';
      inputs.ri.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Re-ranking…';
    try {
      const updated = await api(`reports/${enc(report.report_id)}/readings?replace=true`, { method: 'POST', json: payload });
      onNewReport(updated);
    } catch (e) {
      errBox.textContent = e.message;
      submit.disabled = false;
      submit.textContent = 'Re-rank with these readings';
    }
  });
  return form;
}

/** What the readings were and what they did; the rankings themselves stand with the conclusion above. */
function rerankView(report, rr) {
  const photo = rr.photo_only || [];
  const combined = rr.combined || [];
  const c = conclusionOf(report);
  const wrap = h('div', { class: 'rerank', 'data-fits-none': rr.fits_none ? 'true' : 'false' },
    h('p', { class: 'readings-line' }, h('strong', {}, 'Entered: '), readingsText(rr.readings) || 'none'));
  if (rr.fits_none) {
    wrap.append(h('div', { class: 'notice bad fits-none', role: 'alert' }, h('strong', {}, 'Readings fit no candidate. '),
      rr.flag || 'This may be a simulant, a synthetic, a treated stone or a species the model does not know: refer it to a full laboratory.'));
  } else if (rr.flag) {
    wrap.append(h('div', { class: 'notice warn' }, rr.flag));
  }
  if (photo.length && combined.length && c.decision !== 'refer' && !rr.fits_none) {
    const moved = photo[0].label !== combined[0].label;
    wrap.append(h('p', { class: 'rerank-summary' }, moved
      ? `The readings change the top candidate from ${nice(photo[0].label)} to ${nice(combined[0].label)}.`
      : `The readings keep ${nice(combined[0].label)} on top (${pct(photo[0].probability)} → ${pct(combined[0].probability)}).`));
  }
  return wrap;
}

/** Before any readings, the form; after, the re-ranking with the form folded away for corrections.
 * `onNewReport(report)` receives the new revision the service stored. */
export function readingsSection(report, lvl, onNewReport) {
  const rr = report.tests && report.tests.reranking;
  const sec = h('section', { class: 'readings' }, heading(lvl, rr ? 'Readings' : 'Enter your readings'));
  if (rr) {
    sec.append(rerankView(report, rr));
    sec.append(h('details', {}, h('summary', {}, 'Enter corrected or further readings'),
      readingsForm(report, onNewReport, lvl + 1, rr.readings)));
  } else {
    sec.append(readingsForm(report, onNewReport, lvl + 1, null));
  }
  return sec;
}
