/* The #/field view: how gemid did on the stones whose species was later confirmed, how a candidate model in
 * shadow would have done, and whether the photos coming in drift away from the training photos — the same
 * figures as `gemid field-report` and `gemid drift`, from GET /v1/field.
 *
 * Charts are plain SVG built with dom.js's `s` (no chart library: the page works offline). Every chart has a
 * table or a sentence beside it saying the same in words, so nothing is told by colour alone.
 */

import { api } from './api.js';
import { h, heading, s } from './dom.js';
import { isCurrent, rerender } from './route.js';

const STATS = ['brightness', 'warmth', 'tint', 'stone_px', 'sharpness', 'confidence', 'camera'];
const STAT_NAMES = {
  brightness: 'Brightness', warmth: 'Colour cast (warm)', tint: 'Colour cast (tint)', stone_px: 'Stone size (px)',
  sharpness: 'Sharpness', confidence: 'Model confidence', camera: 'Camera',
};

const pc = (rate) => (rate && rate.accuracy !== null ? `${(100 * rate.accuracy).toFixed(1)} %` : 'n/a');
const ci = (rate) => (rate && rate.ci95 ? `${Math.round(100 * rate.ci95[0])}–${Math.round(100 * rate.ci95[1])} %` : '');

/** Horizontal bars with 95 % interval whiskers: one group per row, one bar per series. */
function barChart(rows, series, label) {
  const barH = 10;
  const groupH = series.length * (barH + 2) + 8;
  const left = 140;
  const width = 460;
  const height = rows.length * groupH + 20;
  const x = (v) => left + v * (width - left - 24);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label });
  [0, 0.5, 1].forEach((t) => svg.append(
    s('line', { x1: x(t), x2: x(t), y1: 0, y2: height - 16, class: 'grid' }),
    s('text', { x: x(t), y: height - 4, 'text-anchor': 'middle', class: 'tick' }, `${t * 100} %`)));
  rows.forEach((row, i) => {
    const y0 = i * groupH + 4;
    svg.append(s('text', { x: left - 6, y: y0 + groupH / 2, 'text-anchor': 'end', class: 'tick' }, row.label));
    series.forEach((sr, j) => {
      const rate = sr.rate(row);
      if (!rate || rate.accuracy === null) return;
      const y = y0 + j * (barH + 2);
      svg.append(s('rect', { x: left, y, width: x(rate.accuracy) - left, height: barH, class: `bar ${sr.cls}` },
        s('title', {}, `${row.label}, ${sr.name}: ${pc(rate)} (${ci(rate)})`)));
      if (rate.ci95) {
        svg.append(s('line', { x1: x(rate.ci95[0]), x2: x(rate.ci95[1]), y1: y + barH / 2, y2: y + barH / 2, class: 'whisker' }));
      }
    });
  });
  return h('figure', { class: 'chart-figure' }, svg,
    h('figcaption', {}, series.map((sr) => h('span', { class: `key ${sr.cls}` }, sr.name)), ' — bars: accuracy; lines: 95 % interval'));
}

/** One statistic's PSI week by week, with the line it must pass to count as moved. */
function psiChart(name, weeks, psiMoved) {
  const width = 260;
  const height = 90;
  const values = weeks.map((w) => w.stats[name].psi);
  const top = Math.max(psiMoved * 2, ...values.filter((v) => v !== null));
  const x = (i) => 20 + (i * (width - 30)) / Math.max(1, weeks.length - 1);
  const y = (v) => height - 16 - (Math.min(v, top) / top) * (height - 26);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart spark', role: 'img',
    'aria-label': `${STAT_NAMES[name]}: PSI by week` });
  svg.append(s('line', { x1: 20, x2: width - 10, y1: y(psiMoved), y2: y(psiMoved), class: 'limit' }));
  const pts = values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
  if (pts.length > 1) svg.append(s('polyline', { points: pts.join(' '), class: 'psi' }));
  weeks.forEach((w, i) => {
    const st = w.stats[name];
    if (st.psi === null) return;
    svg.append(s('circle', { cx: x(i), cy: y(st.psi), r: st.moved ? 4 : 2.5, class: st.moved ? 'moved' : 'ok' },
      s('title', {}, `${w.week}: PSI ${st.psi}${st.moved ? ' — moved' : ''} (${st.n} photos)`)));
  });
  svg.append(s('text', { x: 20, y: height - 3, class: 'tick' }, weeks.length ? weeks[0].week : ''),
    s('text', { x: width - 10, y: height - 3, 'text-anchor': 'end', class: 'tick' }, weeks.length ? weeks[weeks.length - 1].week : ''));
  const moved = weeks.some((w) => w.stats[name].moved);
  return h('figure', { class: `chart-figure drift-stat${moved ? ' is-moved' : ''}`, 'data-stat': name },
    h('figcaption', {}, h('strong', {}, STAT_NAMES[name]), moved ? h('span', { class: 'badge refer' }, 'moved') : null), svg);
}

function accuracySection(acc) {
  const out = [heading(2, 'Field accuracy')];
  if (!acc.confirmed) return [...out, h('p', { class: 'lead' }, 'No confirmed reports in this period yet.')];
  out.push(h('p', { class: 'lead', 'data-overall': '' },
    `${acc.confirmed} confirmed reports: photo-only top-1 ${pc(acc.photo)} (${ci(acc.photo)}), conclusion ${pc(acc.conclusion)} (${ci(acc.conclusion)}).`));
  const rows = [{ label: 'All species', photo: acc.photo, conclusion: acc.conclusion }, ...acc.species];
  out.push(barChart(rows, [
    { name: 'photo only', cls: 'photo', rate: (r) => r.photo },
    { name: 'conclusion', cls: 'conclusion', rate: (r) => r.conclusion }], 'Accuracy per confirmed species'));
  out.push(h('div', { class: 'table-wrap' }, h('table', { class: 'field-species' },
    h('caption', { class: 'sr-only' }, 'Accuracy per confirmed species'),
    h('thead', {}, h('tr', {}, ['Species', 'Confirmed', 'Photo only', 'Conclusion'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, acc.species.map((sp) => h('tr', {}, h('td', {}, sp.label), h('td', { class: 'num' }, String(sp.n)),
      h('td', {}, `${pc(sp.photo)} (${ci(sp.photo)})`), h('td', {}, `${pc(sp.conclusion)} (${ci(sp.conclusion)})`)))))));
  return out;
}

function shadowSection(sh) {
  if (!sh) return [];
  const out = [heading(2, 'Candidate model in shadow')];
  out.push(h('p', { 'data-shadow': '' }, `On the ${sh.confirmed} confirmed photos it answered: served ${pc(sh.served)} (${ci(sh.served)}), `
    + `shadow ${pc(sh.shadow)} (${ci(sh.shadow)}); only the shadow right ${sh.only_shadow_right}, only the served right ${sh.only_served_right}.`));
  if (sh.confirmed) {
    out.push(barChart([{ label: 'Confirmed', served: sh.served, shadow: sh.shadow }], [
      { name: 'served', cls: 'photo', rate: (r) => r.served },
      { name: 'shadow', cls: 'shadow', rate: (r) => r.shadow }], 'Served versus shadow accuracy'));
  }
  for (const b of sh.agreement) {
    out.push(h('p', {}, `${b.bundle}: agrees with the served top-1 on ${pc(b.agreement)} of ${b.answered} photos.`));
  }
  return out;
}

function driftSection(drift) {
  const out = [heading(2, 'Drift of the photos against the training photos')];
  const ref = drift.reference || {};
  out.push(h('p', { class: 'hint' }, `Population stability index (PSI) per week against ${ref.photos} photos of ${ref.source}; `
    + `moved: PSI ≥ ${drift.psi_moved} and above sampling noise, in a week of at least ${drift.min_photos} photos. The dashed line is ${drift.psi_moved}.`));
  const moved = drift.weeks.flatMap((w) => w.moved.map((name) => ({ w, name })));
  out.push(moved.length
    ? h('ul', { class: 'drift-moved', 'data-moved': '' }, moved.map(({ w, name }) => {
      const st = w.stats[name];
      return h('li', {}, h('strong', {}, `${STAT_NAMES[name]} moved`), ` in ${w.week} (PSI ${st.psi}): ${st.direction}`,
        st.median !== undefined && st.median !== null ? `, median ${st.median} vs ${st.ref_median} in training` : '');
    }))
    : h('p', { class: 'notice ok', 'data-moved': '' }, 'Nothing moved: the photos look like the training photos.'));
  out.push(h('div', { class: 'drift-grid' }, STATS.map((name) => psiChart(name, drift.weeks, drift.psi_moved))));
  return out;
}

export async function viewField(root, route, token) {
  document.title = 'Field accuracy — gemid';
  const p = route.params;
  const date = (name, label) => h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label),
    h('input', { type: 'date', id: `f-${name}`, name, value: p.get(name) || '' }));
  const form = h('form', { class: 'panel', 'aria-label': 'Period' },
    h('div', { class: 'grid-fields' }, date('since', 'Photographed from'), date('until', 'To (inclusive)')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of ['since', 'until']) if (form.elements[f].value) q.set(f, form.elements[f].value);
    const target = `#/field${q.toString() ? `?${q}` : ''}`;
    if (window.location.hash === target) rerender(); else window.location.hash = target;
  });
  const out = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
  root.append(heading(1, 'Field accuracy and drift', { tabindex: '-1' }), form, out);
  const q = new URLSearchParams();
  for (const f of ['since', 'until']) if (p.get(f)) q.set(f, p.get(f));
  let body;
  try {
    body = await api(`field${q.toString() ? `?${q}` : ''}`);
  } catch (e) {
    if (!isCurrent(token)) return;
    out.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, e.message));
    return;
  }
  if (!isCurrent(token)) return;
  const sections = [h('section', { class: 'panel', 'data-section': 'accuracy' }, accuracySection(body.accuracy))];
  if (body.accuracy.shadow) sections.push(h('section', { class: 'panel', 'data-section': 'shadow' }, shadowSection(body.accuracy.shadow)));
  sections.push(h('section', { class: 'panel', 'data-section': 'drift' }, driftSection(body.drift)));
  out.replaceChildren(...sections);
}
