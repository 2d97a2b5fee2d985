/* gemid technician page: capture, results, readings, history, printable report.
 *
 * Plain browser JavaScript, no build step and no external assets, because lab PCs and airport desks may be
 * offline. Every piece of data from the API is written with textContent / attributes (never innerHTML), so a
 * file name or reference cannot inject markup. Routes live in the hash (#/report/<id>) so a report link can
 * be bookmarked or shared; the server's short link /r/<id> redirects there.
 */
'use strict';

(() => {
  const API = 'v1/';
  const PARALLEL_UPLOADS = 2;
  const HISTORY_PAGE = 20;
  const ACCEPT = 'image/*,.jpg,.jpeg,.png,.webp,.tif,.tiff,.heic,.heif';
  const BROWSER_SHOWS = /^image\/(jpeg|png|webp|gif|bmp|avif|svg\+xml)$/;
  const SVGNS = 'http://www.w3.org/2000/svg';

  const state = {
    config: { max_bytes: null, public_url: null },
    reference: '',
    queue: [], // {key, file, status, progress, message, report, preview, el, card}
    running: false,
    firstRender: true,
    token: 0,
  };
  let uidCounter = 0;

  // --- small DOM helpers --------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    add(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
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

  function add(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function heading(level, text, attrs) {
    return h(`h${Math.min(6, Math.max(1, level))}`, attrs || {}, text);
  }

  const uid = (prefix) => `${prefix}-${++uidCounter}`;
  const enc = encodeURIComponent;

  function announce(text) {
    const live = document.getElementById('announce');
    live.textContent = '';
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  // --- formatting ---------------------------------------------------------------------------------

  function nice(label) {
    return String(label || '').replace(/_/g, ' ');
  }

  function pct(p) {
    const v = Number(p) * 100;
    if (!Number.isFinite(v)) return '—';
    if (v >= 10) return `${Math.round(v)}%`;
    if (v >= 0.1) return `${v.toFixed(1)}%`;
    return v > 0 ? '<0.1%' : '0%';
  }

  function bytes(n) {
    if (!Number.isFinite(n)) return '';
    // decimal units, as the service's own messages use
    if (n < 1000) return `${n} B`;
    if (n < 1e6) return `${Math.round(n / 1e3)} KB`;
    return `${(n / 1e6).toFixed(1)} MB`;
  }

  function utc(iso) {
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
    spectroscope: 'Spectroscope',
    magnification: 'Magnification',
  };

  function testName(t) {
    if (TEST_NAMES[t]) return TEST_NAMES[t];
    const words = nice(t);
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  const DECISION_WORDS = {
    identified: (best) => `Identified: ${best}`,
    uncertain: (best) => `Uncertain — most likely ${best}`,
    rejected: () => 'Not a gemstone, or the photo is too poor to judge',
  };
  const DECISION_SHORT = { identified: 'Identified', uncertain: 'Uncertain', rejected: 'Not a gemstone' };

  function decisionText(species) {
    const top = (species && species.top) || [];
    const best = top.length ? nice(top[0].label) : 'unknown';
    const f = DECISION_WORDS[species && species.decision];
    return f ? f(best) : String((species && species.decision) || 'No decision');
  }

  // --- API ----------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /** The message a technician should read, straight from the API's error body when there is one. */
  function errorMessage(body, status) {
    if (body && body.error && body.error.message) return body.error.message;
    if (body && Array.isArray(body.reports)) {
      const bad = body.reports.find((r) => r && r.error);
      if (bad) return bad.error.message;
    }
    if (body && body.detail) {
      if (typeof body.detail === 'string') return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => {
          const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== 'body').join('.') : '';
          return where ? `${where}: ${d.msg}` : d.msg;
        }).join('; ');
      }
    }
    if (status === 0) return 'Could not reach the gemid service. Check that it is running and the network, then try again.';
    if (status === 413) return 'The file is too large for the service.';
    return `The service answered HTTP ${status}.`;
  }

  function errorCode(body) {
    if (body && body.error && body.error.code) return body.error.code;
    if (body && Array.isArray(body.reports)) {
      const bad = body.reports.find((r) => r && r.error);
      if (bad) return bad.error.code;
    }
    return null;
  }

  async function api(path, { method = 'GET', json } = {}) {
    const opts = { method, headers: { Accept: 'application/json' } };
    if (json !== undefined) {
      opts.body = JSON.stringify(json);
      opts.headers['Content-Type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch(API + path, opts);
    } catch (e) {
      throw new ApiError(errorMessage(null, 0), 0, null);
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) throw new ApiError(errorMessage(body, res.status), res.status, body);
    return body;
  }

  /** One photo per request, so each file gets its own progress bar and its own answer. */
  function uploadOne(file, reference, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${API}identify`);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', (e) => {
        if (e.lengthComputable) onProgress(e.loaded / Math.max(1, e.total));
      });
      xhr.upload.addEventListener('load', () => onProgress(1));
      xhr.addEventListener('load', () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        resolve({ status: xhr.status, body });
      });
      xhr.addEventListener('error', () => resolve({ status: 0, body: null }));
      xhr.addEventListener('abort', () => resolve({ status: 0, body: null }));
      const form = new FormData();
      form.append('images', file, file.name || 'photo');
      if (reference) form.append('reference', reference);
      xhr.send(form);
    });
  }

  function reportPath(id, revision) {
    return `reports/${enc(id)}${revision ? `?revision=${enc(revision)}` : ''}`;
  }

  function imageUrl(report) {
    return `${API}reports/${enc(report.report_id)}/preview.jpg?size=1024`;
  }

  function qrUrl(id) {
    return `${API}reports/${enc(id)}/qr.svg`;
  }

  function shortUrl(id) {
    const base = state.config.public_url || new URL('.', window.location.href).href;
    return new URL(`r/${enc(id)}`, base.endsWith('/') ? base : `${base}/`).href;
  }

  async function loadConfig() {
    try {
      const res = await fetch('ui-config.json', { headers: { Accept: 'application/json' } });
      const cfg = res.ok ? await res.json() : null;
      if (cfg && typeof cfg === 'object') Object.assign(state.config, cfg);
    } catch (e) {
      /* limits unknown: the server still checks every file */
    }
  }

  // --- the report: photo, species, colour, clarity, tests, readings -------------------------------

  function photoFigure(report) {
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
      notes.push(h('span', {}, h('span', { class: 'legend-swatch outline', 'aria-hidden': 'true' }),
        `Stone outline found by gemid (${pct(stone.area_fraction)} of the frame).`));
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

  function bars(cands, label, previous) {
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

  /** After readings, the combined answer is what the technician acts on: say it next to the photo's. */
  function withReadingsLine(report) {
    const rr = report.tests && report.tests.reranking;
    if (!rr) return null;
    if (rr.fits_none) {
      return h('p', { class: 'decision rejected with-readings' }, 'With your readings: fits no candidate — refer to a full laboratory');
    }
    const best = (rr.combined || [])[0];
    if (!best) return null;
    return h('p', { class: 'decision readings with-readings' },
      `With your readings: most likely ${nice(best.label)} (${pct(best.probability)})`);
  }

  function speciesSection(report, lvl) {
    const sp = report.species || {};
    const top = (sp.top || []).slice(0, 5);
    const rr = report.tests && report.tests.reranking;
    return h('section', { class: 'species', 'aria-label': 'Species' },
      heading(lvl, 'Species'),
      h('p', { class: `decision ${sp.decision || ''}`, 'data-decision': sp.decision || '' },
        rr ? 'From the photo: ' : '', decisionText(sp)),
      sp.reason ? h('p', { class: 'reason' }, sp.reason) : null,
      withReadingsLine(report),
      top.length ? bars(top, 'Top 5 candidates from the photo') : h('p', {}, 'No candidates.'));
  }

  function warningsBlock(report) {
    const ws = (report.quality && report.quality.warnings) || [];
    if (!ws.length) return null;
    return h('div', { class: 'notice warn', 'data-warnings': ws.length },
      h('strong', {}, 'Photo quality'),
      h('ul', {}, ws.map((w) => h('li', { 'data-code': w.code }, w.message))));
  }

  function colourSection(report, lvl) {
    const c = report.colour;
    const sec = h('section', { class: 'colour' }, heading(lvl, 'Colour'));
    if (!c) return add(sec, [h('p', { class: 'lead' }, 'Colour was not graded for this photo.')]);
    const sw = h('div', { class: 'swatch', role: 'img', 'aria-label': `Body colour swatch ${c.hex}` });
    if (/^#[0-9a-fA-F]{3,8}$/.test(c.hex || '')) sw.style.background = c.hex;
    const facts = h('dl', { class: 'facts' },
      h('dt', {}, 'Hue'), h('dd', {}, `${c.hue} (${Math.round(c.hue_angle)}°)`),
      h('dt', {}, 'Tone'), h('dd', {}, `${c.tone.value} — ${c.tone.name}`),
      h('dt', {}, 'Saturation'), h('dd', {}, `${c.saturation.value} — ${c.saturation.name}`),
      c.d_to_z ? [h('dt', {}, 'D–Z band'), h('dd', {}, `${c.d_to_z.band} (${c.d_to_z.letters})`)] : null,
      h('dt', {}, 'Confidence'), h('dd', {}, pct(c.confidence)));
    add(sec, [h('div', { class: 'swatch-row' }, sw, h('div', {}, h('p', {}, c.description), facts))]);
    if (c.d_to_z && c.d_to_z.caveat) sec.append(h('p', { class: 'hint' }, c.d_to_z.caveat));
    if (c.white_balance === 'none') {
      sec.append(h('p', { class: 'hint' },
        'No neutral background or grey card was found, so the lighting may shift this colour.'));
    }
    return sec;
  }

  function claritySection(report, lvl) {
    const c = report.clarity;
    const sec = h('section', { class: 'clarity' }, heading(lvl, 'Clarity'));
    if (!c) return add(sec, [h('p', { class: 'lead' }, 'Clarity was not graded for this photo.')]);
    sec.append(h('p', {}, h('span', { class: 'grade' }, c.grade),
      c.eye_clean ? 'Eye clean.' : 'Inclusions visible to the eye.'));
    if (c.type_meaning || c.clarity_type) {
      sec.append(h('p', {}, c.clarity_type ? h('strong', {}, `Clarity type ${c.clarity_type}. `) : null,
        c.type_meaning || ''));
    }
    const inc = c.inclusions || [];
    sec.append(h('dl', { class: 'facts' },
      h('dt', {}, 'Inclusions marked'), h('dd', {}, String(inc.length)),
      h('dt', {}, 'Severity'), h('dd', {}, pct(c.severity)),
      h('dt', {}, 'Confidence'), h('dd', {}, pct(c.confidence))));
    return sec;
  }

  function testsSection(report, lvl) {
    const t = report.tests;
    const sec = h('section', { class: 'tests-section' }, heading(lvl, 'Confirmatory tests'));
    if (!t) return add(sec, [h('p', { class: 'lead' }, 'No test guidance for this photo.')]);
    if (t.colour_decides) sec.append(h('div', { class: 'notice warn' }, t.colour_decides));
    const rec = t.recommended || [];
    if (!rec.length) {
      sec.append(h('p', { class: 'lead' }, 'No test needed to separate the candidates, or none applies.'));
      return sec;
    }
    sec.append(h('p', {}, 'Do these next, in this order:'));
    sec.append(h('ol', { class: 'tests' }, rec.map((r) => h('li', { 'data-test': r.test },
      h('div', { class: 'test-title' }, h('strong', {}, testName(r.test)), r.instrument ? ` — ${r.instrument}` : ''),
      h('div', { class: 'test-body' }, h('p', { class: 'why' }, r.why),
      (r.expected || []).length ? h('table', { class: 'expected' },
        h('caption', { class: 'sr-only' }, `Expected ${testName(r.test).toLowerCase()} per candidate`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Candidate'), h('th', { scope: 'col' }, 'Expected'))),
        h('tbody', {}, r.expected.map((e) => h('tr', {}, h('td', {}, nice(e.label)), h('td', {}, e.expected))))) : null)))));
    return sec;
  }

  const READING_FIELDS = [
    { name: 'ri', label: 'RI (single or low)', kind: 'num', min: 1.3, max: 3.0, hint: 'Refractometer, e.g. 1.762' },
    { name: 'ri_high', label: 'RI high', kind: 'num', min: 1.3, max: 3.0, hint: 'Doubly refractive stones' },
    { name: 'ri_otl', label: 'RI over the limit', kind: 'bool', hint: 'No shadow edge below the refractometer limit (~1.81)' },
    { name: 'birefringence', label: 'Birefringence', kind: 'num', min: 0, max: 0.3, hint: 'e.g. 0.008' },
    { name: 'sg', label: 'Specific gravity (SG)', kind: 'num', min: 0.5, max: 8.0, hint: 'Hydrostatic, e.g. 3.99' },
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
  ];

  function readingsText(r) {
    if (!r) return '';
    const parts = [];
    for (const f of READING_FIELDS) {
      if (r[f.name] === null || r[f.name] === undefined || r[f.name] === false) continue;
      parts.push(f.kind === 'bool' ? f.label : `${f.label.replace(/ \(.*\)$/, '')}: ${r[f.name]}`);
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
          h('p', { class: 'label', 'aria-hidden': 'true' }, 'Refractometer limit'),
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
          if (!Number.isFinite(v) || v < f.min || v > f.max) {
            err.textContent = `Enter a number between ${f.min} and ${f.max}.`;
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
      if (!Object.keys(payload).length) {
        errBox.textContent = 'Enter at least one reading.';
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

  function rerankView(rr, lvl) {
    const photo = (rr.photo_only || []).slice(0, 5);
    const combined = (rr.combined || []).slice(0, 5);
    const wrap = h('div', { class: 'rerank', 'data-fits-none': rr.fits_none ? 'true' : 'false' },
      heading(lvl, 'Ranking with your readings', { tabindex: '-1', class: 'rerank-heading' }),
      h('p', {}, h('strong', {}, 'Readings: '), readingsText(rr.readings) || 'none'));
    if (rr.fits_none) {
      wrap.append(h('div', { class: 'notice bad fits-none', role: 'alert' }, h('strong', {}, 'Readings fit no candidate. '),
        rr.flag || 'This may be a simulant, a synthetic, a treated stone or a species the model does not know: refer it to a full laboratory.'));
    } else if (rr.flag) {
      wrap.append(h('div', { class: 'notice warn' }, rr.flag));
    }
    if (photo.length && combined.length) {
      const moved = photo[0].label !== combined[0].label;
      wrap.append(h('p', { class: 'rerank-summary' }, moved
        ? `The readings change the top candidate from ${nice(photo[0].label)} to ${nice(combined[0].label)}.`
        : `The readings keep ${nice(combined[0].label)} on top (${pct(photo[0].probability)} → ${pct(combined[0].probability)}).`));
    }
    wrap.append(h('div', { class: 'compare' },
      h('div', { class: 'photo-only' }, heading(lvl + 1, 'Photo only'), bars(photo, 'Photo-only ranking')),
      h('div', { class: 'combined' }, heading(lvl + 1, 'Photo + readings'),
        bars(combined, 'Ranking with readings', rr.photo_only || []))));
    return wrap;
  }

  function readingsSection(report, lvl, onNewReport) {
    const rr = report.tests && report.tests.reranking;
    const sec = h('section', { class: 'readings' }, heading(lvl, rr ? 'Readings' : 'Enter your readings'));
    if (rr) {
      sec.append(rerankView(rr, lvl + 1));
      sec.append(h('details', {}, h('summary', {}, 'Enter corrected or further readings'),
        readingsForm(report, onNewReport, lvl + 1, rr.readings)));
    } else {
      sec.append(readingsForm(report, onNewReport, lvl + 1, null));
    }
    return sec;
  }

  /** A full report card. `onUpdate(newReport)` is told about a new revision after readings. */
  function reportCard(report, { lvl = 2, title = null, links = true, onUpdate = null } = {}) {
    const card = h('article', { class: 'report', 'data-report-id': report.report_id });
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
        h('div', {}, speciesSection(r, lvl + 1), warningsBlock(r))));
      card.append(h('div', { class: 'report-sections' }, colourSection(r, lvl + 1), claritySection(r, lvl + 1)));
      card.append(testsSection(r, lvl + 1));
      card.append(readingsSection(r, lvl + 1, (updated) => {
        fill(updated, true);
        const top = updated.tests && updated.tests.reranking && updated.tests.reranking.combined;
        announce(top && top.length
          ? `Re-ranked with your readings: ${nice(top[0].label)} ${pct(top[0].probability)}.`
          : 'Readings saved as a new revision.');
        if (onUpdate) onUpdate(updated);
      }));
      if (focusRerank) {
        const hd = card.querySelector('.rerank-heading');
        if (hd) hd.focus();
      }
    };
    fill(report, false);
    return card;
  }

  // --- views --------------------------------------------------------------------------------------

  function precheck(file) {
    if (file.size === 0) return { refuse: 'This file is empty (0 bytes). Take or choose the photo again.' };
    const max = state.config.max_bytes;
    if (max && file.size > max) {
      return {
        refuse: `This file is ${bytes(file.size)}; the service accepts at most ${bytes(max)}. `
          + 'Save a smaller JPEG (most phones have a "reduce size" option) and try again.',
      };
    }
    const looksImage = (file.type || '').startsWith('image/') || /\.(jpe?g|png|webp|tiff?|heic|heif)$/i.test(file.name);
    if (!looksImage) {
      return { note: `This does not look like a photo (${file.type || 'unknown type'}); the service will check it.` };
    }
    return {};
  }

  function addFiles(fileList) {
    const added = [];
    for (const file of Array.from(fileList || [])) {
      const key = `${file.name}|${file.size}|${file.lastModified}`;
      if (state.queue.some((it) => it.key === key && it.status !== 'refused')) continue;
      const check = precheck(file);
      const item = {
        key, file, status: check.refuse ? 'refused' : 'ready', progress: 0,
        message: check.refuse || check.note || '', report: null, el: null, card: null,
        preview: !check.refuse && BROWSER_SHOWS.test(file.type) ? URL.createObjectURL(file) : null,
      };
      state.queue.push(item);
      added.push(item);
    }
    if (added.length) {
      renderQueue();
      const refused = added.filter((i) => i.status === 'refused').length;
      announce(`${added.length} file${added.length > 1 ? 's' : ''} added${refused ? `, ${refused} refused` : ''}.`);
    }
  }

  const STATUS_TEXT = {
    ready: 'Ready to identify',
    uploading: 'Uploading…',
    analysing: 'Analysing…',
    done: 'Done',
    refused: 'Refused',
    failed: 'Failed — you can try again',
  };

  function queueItemEl(item) {
    const typeBadge = () => h('div', { class: 'thumb', 'aria-hidden': 'true' },
      (item.file.name.split('.').pop() || '').toUpperCase().slice(0, 5));
    let thumb = typeBadge();
    if (item.preview) {
      thumb = h('img', { class: 'thumb', src: item.preview, alt: '' });
      thumb.addEventListener('error', () => { item.preview = null; thumb.replaceWith(typeBadge()); }, { once: true });
    }
    const doneCls = item.report && item.report.species && item.report.species.decision !== 'identified' ? 'note' : 'done';
    const statusCls = { refused: 'error', failed: 'error', done: doneCls }[item.status]
      || (item.message ? 'note' : '');
    const status = h('div', { class: `status ${statusCls}`, 'data-status': item.status },
      STATUS_TEXT[item.status], item.message ? `: ${item.message}` : '');
    if (item.status === 'refused' || item.status === 'failed') status.setAttribute('role', 'alert');
    const prog = (item.status === 'uploading' || item.status === 'analysing')
      ? h('progress', {
        max: '100', value: item.status === 'analysing' ? null : String(Math.round(item.progress * 100)),
        'aria-label': `Upload progress for ${item.file.name}`,
      })
      : null;
    const busy = item.status === 'uploading' || item.status === 'analysing';
    const actions = h('div', { class: 'item-actions' },
      item.report ? h('a', { href: `#/report/${enc(item.report.report_id)}` }, 'Open') : null,
      busy ? null : h('button', {
        type: 'button', class: 'link', 'aria-label': `Remove ${item.file.name} from the list`,
        onclick: () => removeItem(item),
      }, 'Remove'));
    const li = h('li', { 'data-file': item.file.name },
      thumb,
      h('div', {},
        h('div', { class: 'name' }, item.file.name || 'photo'),
        h('div', { class: 'meta' }, [bytes(item.file.size), item.file.type].filter(Boolean).join(' · ')),
        prog, status),
      actions);
    return li;
  }

  function updateItem(item) {
    const fresh = queueItemEl(item);
    if (item.el && item.el.isConnected) item.el.replaceWith(fresh);
    item.el = fresh;
    updateSubmit();
  }

  function removeItem(item) {
    if (item.preview) URL.revokeObjectURL(item.preview);
    state.queue = state.queue.filter((i) => i !== item);
    if (item.card) item.card.remove();
    renderQueue();
    renderSummary();
    announce(`${item.file.name} removed.`);
  }

  function renderQueue() {
    const ul = document.getElementById('queue');
    if (!ul) return;
    ul.replaceChildren(...state.queue.map((it) => { it.el = queueItemEl(it); return it.el; }));
    ul.hidden = state.queue.length === 0;
    updateSubmit();
  }

  function updateSubmit() {
    const btn = document.getElementById('identify-btn');
    if (!btn) return;
    const n = state.queue.filter((i) => i.status === 'ready' || i.status === 'failed').length;
    btn.disabled = state.running || n === 0;
    btn.textContent = state.running ? 'Identifying…' : `Identify ${n || ''} photo${n === 1 ? '' : 's'}`.replace('  ', ' ');
  }

  async function identifyQueued() {
    if (state.running) return;
    const todo = state.queue.filter((i) => i.status === 'ready' || i.status === 'failed');
    if (!todo.length) return;
    state.running = true;
    updateSubmit();
    const reference = state.reference.trim();
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const item = todo[next++];
        await identifyOne(item, reference);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, todo.length) }, worker));
    state.running = false;
    updateSubmit();
    const done = todo.filter((i) => i.status === 'done').length;
    const bad = todo.length - done;
    announce(`Finished: ${done} identified${bad ? `, ${bad} could not be used` : ''}.`);
  }

  async function identifyOne(item, reference) {
    item.status = 'uploading';
    item.progress = 0;
    item.message = '';
    updateItem(item);
    let lastPaint = 0;
    const { status, body } = await uploadOne(item.file, reference, (frac) => {
      item.progress = frac;
      if (frac >= 1) item.status = 'analysing';
      const now = Date.now();
      if (frac >= 1 || now - lastPaint > 100) { lastPaint = now; updateItem(item); }
    });
    const entry = body && Array.isArray(body.reports) ? body.reports[0] : null;
    if (status >= 200 && status < 300 && entry && entry.report_id) {
      item.status = 'done';
      item.report = entry;
      item.message = decisionText(entry.species);
      placeCard(item);
      renderSummary();
    } else {
      const retryable = status === 0 || status >= 500 || status === 429;
      item.status = retryable ? 'failed' : 'refused';
      item.message = errorMessage(body, status);
      item.code = errorCode(body);
    }
    updateItem(item);
  }

  function placeCard(item) {
    if (!item.card) {
      item.card = reportCard(item.report, {
        lvl: 3,
        onUpdate: (updated) => { item.report = updated; renderSummary(); },
      });
    }
    const results = document.getElementById('results-list');
    if (!results) return;
    const after = state.queue.slice(state.queue.indexOf(item) + 1).find((i) => i.card && i.card.isConnected);
    results.insertBefore(item.card, after ? after.card : null);
    document.getElementById('results').hidden = false;
  }

  function renderSummary() {
    const box = document.getElementById('summary');
    if (!box) return;
    const done = state.queue.filter((i) => i.report);
    document.getElementById('results').hidden = done.length === 0;
    if (done.length < 2) { box.replaceChildren(); return; }
    box.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'summary' },
      h('caption', { class: 'sr-only' }, 'Parcel summary'),
      h('thead', {}, h('tr', {}, ['Photo', 'Decision', 'Most likely', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, done.map((i) => {
        const r = i.report;
        const rr = r.tests && r.tests.reranking;
        const top = ((rr && rr.combined) || r.species.top || [])[0];
        return h('tr', {},
          h('td', {}, r.file || i.file.name),
          h('td', {}, h('span', { class: `badge ${r.species.decision}` }, DECISION_SHORT[r.species.decision] || r.species.decision)),
          h('td', {}, top ? `${nice(top.label)} ${pct(top.probability)}${rr ? ' (with readings)' : ''}` : '—'),
          h('td', {}, h('a', { href: `#/report/${enc(r.report_id)}` }, 'Open', h('span', { class: 'sr-only' }, ` report for ${r.file || i.file.name}`))));
      })))));
  }

  function viewIdentify(root) {
    document.title = 'Identify — gemid';
    const pick = h('input', {
      type: 'file', id: 'file-pick', accept: ACCEPT, multiple: true, hidden: true,
      onchange: (e) => { addFiles(e.target.files); e.target.value = ''; },
    });
    const camera = h('input', {
      type: 'file', id: 'file-camera', accept: 'image/*', capture: 'environment', hidden: true,
      onchange: (e) => { addFiles(e.target.files); e.target.value = ''; },
    });
    // On a phone the camera comes first; on a desk PC, the file picker and drag-and-drop.
    const coarse = window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
    const chooseBtn = h('button', { type: 'button', id: 'choose-btn', class: coarse ? 'secondary' : '', onclick: () => pick.click() },
      'Choose photos');
    const cameraBtn = h('button', {
      type: 'button', id: 'camera-btn', hidden: !coarse, onclick: () => camera.click(),
    }, 'Take a photo');  // desk PCs: `capture` only opens the same file picker, so no second button there
    const drop = h('div', { class: 'dropzone', id: 'dropzone' },
      coarse ? h('p', {}, h('strong', {}, 'Photograph each stone'), ' or choose saved photos.')
        : h('p', {}, h('strong', {}, 'Drag photos of the stones here'), ' or use a button.'),
      h('div', { class: 'actions' }, coarse ? [cameraBtn, chooseBtn] : [chooseBtn, cameraBtn]),
      h('p', { class: 'hint' }, 'One stone per photo, on a plain light background, in focus. JPEG, PNG, WebP, TIFF or HEIC'
        + (state.config.max_bytes ? `, up to ${bytes(state.config.max_bytes)} each.` : '.')),
      pick, camera);
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('dragging'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('dragging');
      addFiles(e.dataTransfer && e.dataTransfer.files);
    });

    const ref = h('input', {
      type: 'text', id: 'reference', name: 'reference', autocomplete: 'off', maxlength: '200',
      value: state.reference, 'aria-describedby': 'reference-hint',
      oninput: (e) => { state.reference = e.target.value; },
    });
    const form = h('form', { id: 'capture', class: 'panel', 'aria-labelledby': 'capture-title', novalidate: true },
      heading(2, 'Photos', { id: 'capture-title', class: 'sr-only' }),
      h('div', { class: 'field' },
        h('label', { for: 'reference' }, 'Parcel or reference number'),
        h('p', { class: 'hint', id: 'reference-hint' }, 'Optional. Stored with every photo of this batch and searchable in History.'),
        ref),
      drop,
      h('ul', { class: 'queue', id: 'queue', 'aria-label': 'Photos to identify', hidden: true }),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', id: 'identify-btn', disabled: true }, 'Identify photos'),
        h('button', {
          type: 'button', class: 'secondary', id: 'clear-btn',
          onclick: () => {
            if (state.running) return;
            state.queue.forEach((i) => i.preview && URL.revokeObjectURL(i.preview));
            state.queue = [];
            document.getElementById('results-list').replaceChildren();
            renderQueue();
            renderSummary();
            announce('List cleared. Stored reports stay in History.');
          },
        }, 'Clear list')));
    form.addEventListener('submit', (e) => { e.preventDefault(); identifyQueued(); });

    const results = h('section', { id: 'results', 'aria-labelledby': 'results-title', hidden: true },
      heading(2, 'Results', { id: 'results-title' }),
      h('div', { id: 'summary' }),
      h('div', { id: 'results-list' }));

    root.append(
      heading(1, 'Identify stones', { tabindex: '-1' }),
      h('p', { class: 'lead' }, 'Photograph or upload the stones, read the preliminary answer, then enter your '
        + 'refractometer, polariscope or balance readings to re-rank the candidates.'),
      form, results);
    renderQueue();
    for (const item of state.queue) if (item.card) placeCard(item);
    renderSummary();
  }

  async function viewReport(root, route, token) {
    const rev = route.params.get('rev');
    document.title = `Report ${route.id} — gemid`;
    const h1 = h('h1', { tabindex: '-1' }, 'Report ', h('span', { class: 'h1-id mono' }, route.id));
    const body = h('div', {}, h('p', {}, 'Loading report…'));
    root.append(h1, body);
    let report;
    try {
      report = await api(reportPath(route.id, rev));
    } catch (e) {
      if (token !== state.token) return;
      body.replaceChildren(h('div', { class: 'notice bad', role: 'alert' },
        e.status === 404 ? `No report with id ${route.id}${rev ? ` (revision ${rev})` : ''}. Check the id printed on the report.` : e.message),
      h('p', {}, h('a', { href: '#/history' }, 'Search the history')));
      return;
    }
    if (token !== state.token) return;
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

  function listItems(body) {
    if (Array.isArray(body)) return { items: body, total: null };
    const items = body.items || body.reports || body.results || [];
    const total = Number.isFinite(body.total) ? body.total : null;
    return { items, total };
  }

  async function viewHistory(root, route, token) {
    document.title = 'History — gemid';
    const p = route.params;
    const page = Math.max(1, parseInt(p.get('page') || '1', 10) || 1);
    const filters = ['reference', 'species', 'decision', 'since', 'until'];
    const field = (name, label, input) => h('div', { class: 'field' }, h('label', { for: `h-${name}` }, label), input);
    const text = (name, extra) => h('input', {
      type: name === 'since' || name === 'until' ? 'date' : 'search', id: `h-${name}`, name, value: p.get(name) || '', ...extra,
    });
    const labels = state.config.labels || [];
    const form = h('form', { class: 'panel', role: 'search', 'aria-label': 'Search reports' },
      h('div', { class: 'grid-fields history-filters' },
        field('reference', 'Reference', text('reference')),
        field('species', 'Species', [text('species', labels.length ? { list: 'species-labels' } : {}),
          labels.length ? h('datalist', { id: 'species-labels' }, labels.map((l) => h('option', { value: l }))) : null]),
        field('decision', 'Decision', h('select', { id: 'h-decision', name: 'decision' },
          [['', 'Any'], ['identified', 'Identified'], ['uncertain', 'Uncertain'], ['rejected', 'Not a gemstone']]
            .map(([v, t]) => h('option', { value: v, selected: (p.get('decision') || '') === v }, t)))),
        field('since', 'From date', text('since')),
        field('until', 'To date (inclusive)', text('until'))),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Search'),
        h('a', { class: 'button secondary', href: '#/history' }, 'Reset')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const f of filters) {
        const v = form.elements[f].value.trim();
        if (v) q.set(f, v);
      }
      const target = `#/history${q.toString() ? `?${q}` : ''}`;
      if (window.location.hash === target) render(); else window.location.hash = target;
    });
    const out = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
    root.append(heading(1, 'History', { tabindex: '-1' }), form, out);

    const q = new URLSearchParams({ limit: String(HISTORY_PAGE), offset: String((page - 1) * HISTORY_PAGE) });
    for (const f of filters) if (p.get(f)) q.set(f, p.get(f));
    let body;
    try {
      body = await api(`reports?${q}`);
    } catch (e) {
      if (token !== state.token) return;
      out.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, e.message));
      return;
    }
    if (token !== state.token) return;
    const { items, total } = listItems(body || {});
    if (!items.length) {
      out.replaceChildren(h('p', { class: 'lead' }, page > 1 ? 'No more reports.' : 'No reports match.'));
      return;
    }
    const rows = items.map((r) => {
      const top = typeof r.species === 'string'
        ? (r.species ? { label: r.species, probability: r.probability } : null)
        : (((r.species || {}).top || [])[0] || null);
      const decision = r.decision || (r.species && r.species.decision);
      const rev = r.revision || 1;
      return h('tr', { 'data-report-id': r.report_id },
        h('td', { 'data-label': 'Date' }, utc(r.created_at)),
        h('td', { 'data-label': 'Reference' }, r.reference || '—'),
        h('td', { class: 'opt', 'data-label': 'File' }, r.file || '—'),
        h('td', { 'data-label': 'Species' }, top ? `${nice(top.label)}${top.probability !== undefined && top.probability !== null ? ` ${pct(top.probability)}` : ''}` : '—'),
        h('td', { 'data-label': 'Decision' }, h('span', { class: `badge ${decision}` }, DECISION_SHORT[decision] || decision || '—')),
        h('td', { class: 'opt num', 'data-label': 'Revision' }, String(rev)),
        h('td', { class: 'open' }, h('a', { href: `#/report/${enc(r.report_id)}` }, 'Open', h('span', { class: 'sr-only' }, ` report ${r.report_id}`))));
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
        h('caption', { class: 'sr-only' }, 'Past reports, newest first'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Date'), h('th', { scope: 'col' }, 'Reference'),
          h('th', { scope: 'col', class: 'opt' }, 'File'), h('th', { scope: 'col' }, 'Species'),
          h('th', { scope: 'col' }, 'Decision'), h('th', { scope: 'col', class: 'opt num' }, 'Rev.'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Open')))),
        h('tbody', {}, rows))),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        page > 1 ? h('a', { class: 'button secondary', href: link(page - 1) }, 'Previous') : null,
        h('span', {}, `Showing ${from}–${to}${total !== null ? ` of ${total}` : ''}`),
        hasNext ? h('a', { class: 'button secondary', href: link(page + 1) }, 'Next') : null));
  }

  async function viewPrint(root, route, token) {
    const rev = route.params.get('rev');
    document.title = `Printable report ${route.id} — gemid`;
    const holder = h('div', {}, h('p', {}, 'Loading report…'));
    root.append(holder);
    let r;
    try {
      r = await api(reportPath(route.id, rev));
    } catch (e) {
      if (token !== state.token) return;
      holder.replaceChildren(heading(1, 'Printable report', { tabindex: '-1' }),
        h('div', { class: 'notice bad', role: 'alert' }, e.status === 404 ? `No report with id ${route.id}.` : e.message));
      return;
    }
    if (token !== state.token) return;
    const url = shortUrl(r.report_id);
    const local = /^(127\.|localhost$|\[::1\]$)/.test(new URL(url).hostname);
    const sp = r.species || {};
    const rr = r.tests && r.tests.reranking;
    const m = r.model || {};
    const img = r.image || {};
    const top = (sp.top || []).slice(0, 5);
    const doc = h('article', { class: 'doc', 'aria-labelledby': 'doc-title' },
      h('header', { class: 'doc-head' },
        h('div', {},
          heading(1, 'Preliminary gemstone identification report', { id: 'doc-title', tabindex: '-1' }),
          h('p', {}, 'gemid — from a photograph, before confirmatory tests')),
        h('div', { class: 'qr' },
          h('img', { src: qrUrl(r.report_id), alt: `QR code that opens this report: ${url}`, width: '136', height: '136', class: 'qr-code' }),
          h('p', {}, 'Verify at ', h('br'), h('span', { class: 'mono short-url' }, url)))),
      h('dl', { class: 'facts doc-meta' },
        h('dt', {}, 'Report ID'), h('dd', { class: 'report-id' }, r.report_id),
        h('dt', {}, 'Revision'), h('dd', {}, `${r.revision || 1}${rr ? ' (photo + readings)' : ' (photo only)'}`),
        h('dt', {}, 'Date'), h('dd', {}, utc(r.created_at)),
        h('dt', {}, 'Reference'), h('dd', {}, r.reference || '—'),
        h('dt', {}, 'File'), h('dd', {}, r.file || '—'),
        h('dt', {}, 'Image'), h('dd', {}, `${img.width}×${img.height} ${img.format || ''}, ${bytes(img.bytes)}`),
        h('dt', {}, 'Image SHA-256'), h('dd', { class: 'image-sha' }, img.sha256 || '—'),
        h('dt', {}, 'Model'), h('dd', { class: 'model' }, `${m.name || '?'} ${m.version || ''} (${m.variant || 'fp32'})`),
        h('dt', {}, 'Model SHA-256'), h('dd', {}, m.sha256 || '—')),
      h('div', { class: 'doc-grid' },
        photoFigure(r),
        h('div', {},
          heading(2, 'Species'),
          h('p', { class: `decision ${sp.decision || ''}` }, rr ? 'From the photo: ' : '', decisionText(sp)),
          withReadingsLine(r),
          sp.reason ? h('p', {}, sp.reason) : null,
          top.length ? bars(top, 'Top 5 candidates from the photo') : null,
          warningsBlock(r))),
      rr ? h('section', {}, heading(2, 'Readings and combined ranking'),
        h('p', {}, readingsText(rr.readings)),
        rr.fits_none ? h('div', { class: 'notice bad' }, h('strong', {}, 'Readings fit no candidate. '), rr.flag || '') : null,
        h('div', { class: 'compare' },
          h('div', {}, heading(3, 'Photo only'), bars((rr.photo_only || []).slice(0, 5), 'Photo-only ranking')),
          h('div', {}, heading(3, 'Photo + readings'), bars((rr.combined || []).slice(0, 5), 'Ranking with readings', rr.photo_only)))) : null,
      h('div', { class: 'report-sections' }, colourSection(r, 2), claritySection(r, 2)),
      testsSection(r, 2),
      h('p', { class: 'disclaimer' }, h('strong', {}, 'Disclaimer. '), r.disclaimer),
      h('div', { class: 'signatures' }, h('div', {}, 'Technician (name, signature)'), h('div', {}, 'Date and stamp')));
    holder.replaceChildren(
      h('div', { class: 'actions no-print' },
        h('button', { type: 'button', onclick: () => window.print() }, 'Print'),
        h('a', { class: 'button secondary', href: `#/report/${enc(r.report_id)}` }, 'Back to report'),
        h('span', { class: 'hint' }, 'For a PDF copy, choose “Save as PDF” as the printer.')),
      local ? h('p', { class: 'notice warn no-print' }, `The verification link points at this computer (${new URL(url).host}), `
        + 'so it will not open elsewhere. Ask the administrator to set GEMID_PUBLIC_URL to the address other devices use.') : null,
      doc);
  }

  function viewNotFound(root) {
    document.title = 'Not found — gemid';
    root.append(heading(1, 'Page not found', { tabindex: '-1' }),
      h('p', {}, h('a', { href: '#/' }, 'Go to Identify')));
  }

  // --- router -------------------------------------------------------------------------------------

  function parseRoute() {
    const raw = window.location.hash.replace(/^#/, '') || '/';
    if (!raw.startsWith('/')) return null;
    const [path, qs] = raw.split('?');
    const params = new URLSearchParams(qs || '');
    let parts;
    try {
      parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      return { name: 'notfound', params };
    }
    if (!parts.length) return { name: 'identify', params };
    if (parts[0] === 'history' && parts.length === 1) return { name: 'history', params };
    if (parts[0] === 'report' && parts[1] && parts.length <= 3) {
      if (parts.length === 2) return { name: 'report', id: parts[1], params };
      if (parts[2] === 'print') return { name: 'print', id: parts[1], params };
    }
    return { name: 'notfound', params };
  }

  function render() {
    const route = parseRoute();
    if (!route) return;
    const token = ++state.token;
    const root = document.getElementById('view');
    root.replaceChildren();
    const navName = route.name === 'history' ? 'history' : route.name === 'identify' ? 'identify' : null;
    document.querySelectorAll('[data-nav]').forEach((a) => {
      if (a.dataset.nav === navName) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    document.body.dataset.view = route.name;
    const views = { identify: viewIdentify, history: viewHistory, report: viewReport, print: viewPrint, notfound: viewNotFound };
    const first = state.firstRender;
    state.firstRender = false;
    Promise.resolve(views[route.name](root, route, token)).then(() => {
      if (token !== state.token || first) return;
      const h1 = root.querySelector('h1');
      if (h1) h1.focus();
    }).catch((e) => {
      root.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, `Something went wrong on this page: ${e.message}`));
    });
    if (!first) window.scrollTo(0, 0);
  }

  async function start() {
    const skip = document.querySelector('[data-skip]');
    if (skip) {
      skip.addEventListener('click', (e) => {
        e.preventDefault();
        document.getElementById('main').focus();
      });
    }
    document.addEventListener('paste', (e) => {
      if (parseRoute() && parseRoute().name !== 'identify') return;
      const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((f) => f.type.startsWith('image/'));
      if (files.length) addFiles(files);
    });
    window.addEventListener('hashchange', render);
    await loadConfig();
    render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
