/* The #/ (Identify) view: choose, photograph, drop or paste photos of a parcel, check them here, upload them
 * two at a time with a progress bar each, and show each stone's report card with a parcel summary.
 *
 * The list of photos lives in this module, not in the view's DOM, so it survives a trip to History and
 * back: results already shown are placed again, and uploads still running keep going. Files the service
 * would refuse for certain (empty, over its size limit) are refused here and never leave the PC; anything
 * else is sent and the service decides, and its own message is shown for a refusal. One request per photo
 * means one answer per photo: a failed upload can be retried without sending the others again.
 *
 * A tray photo answers with one report per stone: the results show the photo with its stones numbered and
 * one compact row per stone (js/stones.js); each stone's full card opens on demand, so a parcel's results
 * stay a screen or two tall. A photo already stored under the same reference answers with its stored
 * reports and a notice, shown here as such.
 */

import { API, config, errorCode, errorMessage, uploadOne } from './api.js';
import { announce, enc, h, heading } from './dom.js';
import { bytes, conclusionOf, conclusionText } from './format.js';
import { lang, t, tn } from './i18n.js';
import { parcelHref } from './parcel.js';
import { reportCard } from './results.js';
import { rowOf, stoneNumber, stonesFigure, stonesTable } from './stones.js';

const PARALLEL_UPLOADS = 2;
const ACCEPT = 'image/*,.jpg,.jpeg,.png,.webp,.tif,.tiff,.heic,.heif';
const BROWSER_SHOWS = /^image\/(jpeg|png|webp|gif|bmp|avif|svg\+xml)$/;

const state = {
  reference: '',
  coin: '', // the diameter (mm) of a coin laid beside the stones as their scale; '' when none
  ruler: false, // a millimetre ruler lies beside the stones as their scale
  queue: [], // {key, file, status, progress, message, report, reports, notice, preview, el, card}
  running: false,
  batch: 0, // photos in the latest batch sent: one photo of one stone opens its card at once
};

/** What can be said of a file before it is sent: `refuse` (it never leaves the PC) or `note` (sent anyway). */
function precheck(file) {
  if (file.size === 0) return { refuse: t('check.empty') };
  const max = config.max_bytes;
  if (max && file.size > max) {
    return {
      refuse: t('check.toolarge', { size: bytes(file.size), max: bytes(max) }),
    };
  }
  const looksImage = (file.type || '').startsWith('image/') || /\.(jpe?g|png|webp|tiff?|heic|heif)$/i.test(file.name);
  if (!looksImage) {
    return { note: t('check.notphoto', { type: file.type || t('check.unknowntype') }) };
  }
  return {};
}

/** Add chosen, dropped or pasted files to the list (the same file twice only once), pre-checked. */
export function addFiles(fileList) {
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
    announce(refused ? tn('identify.added.refused', added.length, { refused }) : tn('identify.added', added.length));
  }
}

const STATUS_TEXT = new Proxy({}, { get: (_, k) => t(`status.${String(k)}`) });

function queueItemEl(item) {
  const typeBadge = () => h('div', { class: 'thumb', 'aria-hidden': 'true' },
    (item.file.name.split('.').pop() || '').toUpperCase().slice(0, 5));
  let thumb = typeBadge();
  if (item.preview) {
    thumb = h('img', { class: 'thumb', src: item.preview, alt: '' });
    thumb.addEventListener('error', () => { item.preview = null; thumb.replaceWith(typeBadge()); }, { once: true });
  }
  const doneCls = item.report && conclusionOf(item.report).decision !== 'identified' ? 'note' : 'done';
  const statusCls = { refused: 'error', failed: 'error', done: doneCls }[item.status]
    || (item.message ? 'note' : '');
  const status = h('div', { class: `status ${statusCls}`, 'data-status': item.status },
    STATUS_TEXT[item.status], item.message ? `: ${item.message}` : '');
  if (item.status === 'refused' || item.status === 'failed') status.setAttribute('role', 'alert');
  const prog = (item.status === 'uploading' || item.status === 'analysing')
    ? h('progress', {
      max: '100', value: item.status === 'analysing' ? null : String(Math.round(item.progress * 100)),
      'aria-label': t('identify.progress', { file: item.file.name }),
    })
    : null;
  const busy = item.status === 'uploading' || item.status === 'analysing';
  const actions = h('div', { class: 'item-actions' },
    item.report ? h('a', { href: `#/report/${enc(item.report.report_id)}` }, t('identify.open')) : null,
    busy ? null : h('button', {
      type: 'button', class: 'link', 'aria-label': t('identify.remove', { file: item.file.name }),
      onclick: () => removeItem(item),
    }, t('identify.removeword')));
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
  btn.textContent = state.running ? t('identify.running') : n ? tn('identify.button', n) : t('identify.button');
}

async function identifyQueued() {
  if (state.running) return;
  const todo = state.queue.filter((i) => i.status === 'ready' || i.status === 'failed');
  if (!todo.length) return;
  state.running = true;
  state.batch = todo.length;
  updateSubmit();
  const reference = state.reference.trim();
  const scale = { coin: state.coin.trim(), ruler: state.ruler };
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const item = todo[next++];
      await identifyOne(item, reference, scale);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, todo.length) }, worker));
  state.running = false;
  updateSubmit();
  const done = todo.filter((i) => i.status === 'done').length;
  const bad = todo.length - done;
  announce(bad ? t('identify.finished.bad', { done, bad }) : t('identify.finished', { done }));
}

async function identifyOne(item, reference, scale) {
  item.status = 'uploading';
  item.progress = 0;
  item.message = '';
  updateItem(item);
  let lastPaint = 0;
  const { status, body } = await uploadOne(item.file, reference, scale, (frac) => {
    item.progress = frac;
    if (frac >= 1) item.status = 'analysing';
    const now = Date.now();
    if (frac >= 1 || now - lastPaint > 100) { lastPaint = now; updateItem(item); }
  });
  const entries = body && Array.isArray(body.reports) ? body.reports.filter((r) => r && r.report_id) : [];
  if (status >= 200 && status < 300 && entries.length) {
    item.status = 'done';
    item.reports = entries;
    item.report = entries[0];
    const notice = (body.notices || []).find((n) => n.code === 'duplicate');
    item.notice = notice ? tn('identify.duplicate', entries.length, { reference }) : null;
    item.message = entries.length > 1 ? tn('identify.found', entries.length) : conclusionText(conclusionOf(entries[0]));
    if (item.notice) item.message = `${item.message}. ${item.notice}`;
    if (item.card) item.card.remove();
    item.card = null;
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

/** One stone's result: a one-line summary that opens its full report card (built when first opened). */
function stoneDetails(item, i, open) {
  const details = h('details', { class: 'stone-result', 'data-report-id': item.reports[i].report_id });
  const summary = h('summary', {});
  const line = () => {
    const r = item.reports[i];
    const n = stoneNumber(r);
    const [index, count] = n.split('/');
    summary.replaceChildren(h('bdi', { class: 'stone-name' }, n ? t('identify.stone', { index, count }) : (r.file || item.file.name)),
      ' — ', h('span', { class: 'stone-answer' }, conclusionText(conclusionOf(r))));
  };
  line();
  details.append(summary);
  const fill = () => {
    if (details.querySelector('article.report')) return;
    const r = item.reports[i];
    details.append(reportCard(r, {
      lvl: 3,
      title: stoneNumber(r) ? `${r.file || item.file.name} — stone ${stoneNumber(r)}` : null,
      onUpdate: (updated) => {
        item.reports[i] = updated;
        item.report = item.reports[0];
        if (item.reports.length === 1) item.message = conclusionText(conclusionOf(updated));
        line();
        updateItem(item);
        renderSummary();
      },
    }));
  };
  details.addEventListener('toggle', () => { if (details.open) fill(); });
  if (open) { details.open = true; fill(); }
  return details;
}

function resultBlock(item) {
  const reports = item.reports;
  const one = reports.length === 1;
  return h('section', { class: 'result', 'data-file': item.file.name, 'data-stones': String(reports.length) },
    item.notice ? h('div', { class: 'notice warn', 'data-notice': 'duplicate', role: 'status' }, item.notice) : null,
    one ? null : stonesFigure(reports),
    reports.map((_, i) => stoneDetails(item, i, one && state.batch === 1)));
}

function placeCard(item) {
  if (!item.card) item.card = resultBlock(item);
  const results = document.getElementById('results-list');
  if (!results) return;
  const after = state.queue.slice(state.queue.indexOf(item) + 1).find((i) => i.card && i.card.isConnected);
  results.insertBefore(item.card, after ? after.card : null);
  document.getElementById('results').hidden = false;
}

function renderSummary() {
  const box = document.getElementById('summary');
  if (!box) return;
  const done = state.queue.filter((i) => i.reports && i.reports.length);
  document.getElementById('results').hidden = done.length === 0;
  const items = done.flatMap((i) => i.reports.map((report) => ({ report, row: rowOf(report) })));
  const refs = [...new Set(items.map((x) => x.report.reference).filter(Boolean))];
  // replaceChildren writes a null as the text "null": only the parts there are
  box.replaceChildren(...[
    refs.length ? h('p', { class: 'parcel-links' }, t('identify.parcel'), refs.map((ref, k) => [k ? ', ' : '',
      h('a', { href: parcelHref(ref) }, ref)])) : null,
    items.length < 2 ? null : stonesTable(items, { caption: t('identify.summary') })].filter(Boolean));
}

export function viewIdentify(root) {
  document.title = `${t('nav.identify')} — gemid`;
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
    t('identify.choose'));
  const cameraBtn = h('button', {
    type: 'button', id: 'camera-btn', hidden: !coarse, onclick: () => camera.click(),
  }, t('identify.camera'));  // desk PCs: `capture` only opens the same file picker, so no second button there
  const drop = h('div', { class: 'dropzone', id: 'dropzone' },
    coarse ? h('p', {}, h('strong', {}, t('identify.drop.phone')), t('identify.drop.phone.more'))
      : h('p', {}, h('strong', {}, t('identify.drop.desk')), t('identify.drop.desk.more')),
    h('div', { class: 'actions' }, coarse ? [cameraBtn, chooseBtn] : [chooseBtn, cameraBtn]),
    h('p', { class: 'hint' }, t('identify.hint')
      + (config.max_bytes ? t('identify.hint.size', { size: bytes(config.max_bytes) }) : t('identify.hint.end'))),
    h('p', { class: 'hint card-hint' }, t('identify.card'),
      h('a', { href: `${API}scale-card.pdf?lang=${lang()}`, download: '', id: 'scale-card-link' }, t('card.link'))),
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
  // a coin or a ruler is the scale, not both (the service refuses both): each one given disables the other
  const coin = h('input', {
    type: 'number', id: 'coin-mm', name: 'coin_mm', inputmode: 'decimal', min: '10', max: '40', step: '0.01',
    value: state.coin, 'aria-describedby': 'coin-hint', disabled: state.ruler,
    oninput: (e) => { state.coin = e.target.value; ruler.disabled = state.coin.trim() !== ''; },
  });
  const ruler = h('input', {
    type: 'checkbox', id: 'ruler', name: 'ruler', checked: state.ruler, 'aria-describedby': 'ruler-hint',
    disabled: state.coin.trim() !== '',
    onchange: (e) => { state.ruler = e.target.checked; coin.disabled = state.ruler; },
  });
  const form = h('form', { id: 'capture', class: 'panel', 'aria-labelledby': 'capture-title', novalidate: true },
    heading(2, t('identify.photos'), { id: 'capture-title', class: 'sr-only' }),
    h('div', { class: 'field' },
      h('label', { for: 'reference' }, t('identify.reference')),
      h('p', { class: 'hint', id: 'reference-hint' }, t('identify.reference.hint')),
      ref),
    h('div', { class: 'field' },
      h('label', { for: 'coin-mm' }, t('identify.coin')),
      h('p', { class: 'hint', id: 'coin-hint' }, t('identify.coin.hint')),
      coin),
    h('div', { class: 'field check' },
      h('label', { for: 'ruler', class: 'check-label' }, ruler, ' ', t('identify.ruler')),
      h('p', { class: 'hint', id: 'ruler-hint' }, t('identify.ruler.hint'))),
    drop,
    h('ul', { class: 'queue', id: 'queue', 'aria-label': t('identify.queue'), hidden: true }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'identify-btn', disabled: true }, t('identify.button')),
      h('button', {
        type: 'button', class: 'secondary', id: 'clear-btn',
        onclick: () => {
          if (state.running) return;
          state.queue.forEach((i) => i.preview && URL.revokeObjectURL(i.preview));
          state.queue = [];
          document.getElementById('results-list').replaceChildren();
          renderQueue();
          renderSummary();
          announce(t('identify.cleared'));
        },
      }, t('identify.clear'))));
  form.addEventListener('submit', (e) => { e.preventDefault(); identifyQueued(); });

  const results = h('section', { id: 'results', 'aria-labelledby': 'results-title', hidden: true },
    heading(2, t('identify.results'), { id: 'results-title' }),
    h('div', { id: 'summary' }),
    h('div', { id: 'results-list' }));

  root.append(
    heading(1, t('identify.title'), { tabindex: '-1' }),
    h('p', { class: 'lead' }, t('identify.lead')),
    form, results);
  renderQueue();
  for (const item of state.queue) if (item.card) placeCard(item);
  renderSummary();
}
