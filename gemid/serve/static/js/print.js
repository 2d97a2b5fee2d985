/* The #/report/<id>/print view: the report as a document to print or save as PDF and hand over with a
 * parcel, with the report id, image and model checksums, a QR code and short link to verify it, the
 * disclaimer and room for the technician's signature.
 *
 * Paper cannot be re-ranked or expanded, so this view lays the report out flat (the conclusion with both
 * rankings, the readings, every section at h2) instead of reusing the interactive card; it shares the
 * card's sections so both say the same thing, the tests done and still to do included. It warns when the verification link points at this computer, which
 * a QR code read elsewhere could never open.
 */

import { api, qrUrl, reportPath, verificationUrl } from './api.js';
import { enc, h, heading } from './dom.js';
import { speciesSection } from './conclusion.js';
import { bytes, nice, utc } from './format.js';
import {
  claritySection, colourSection, photoFigure, sizeSection, testsSection, warningsBlock,
} from './report-sections.js';
import { isCurrent } from './route.js';

export async function viewPrint(root, route, token) {
  const rev = route.params.get('rev');
  document.title = `Printable report ${route.id} — gemid`;
  const holder = h('div', {}, h('p', {}, 'Loading report…'));
  root.append(holder);
  let r;
  try {
    r = await api(reportPath(route.id, rev));
  } catch (e) {
    if (!isCurrent(token)) return;
    holder.replaceChildren(heading(1, 'Printable report', { tabindex: '-1' }),
      h('div', { class: 'notice bad', role: 'alert' }, e.status === 404 ? `No report with id ${route.id}.` : e.message));
    return;
  }
  if (!isCurrent(token)) return;
  const url = await verificationUrl(r.report_id);
  if (!isCurrent(token)) return;
  const local = /^(127\.|localhost$|\[::1\]$)/.test(new URL(url).hostname);
  const rr = r.tests && r.tests.reranking;
  const m = r.model || {};
  const img = r.image || {};
  const doc = h('article', { class: 'doc', 'aria-labelledby': 'doc-title', lang: 'en', dir: 'ltr' },  // English
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
      r.stone && r.stone.count > 1 ? [h('dt', {}, 'Stone'), h('dd', { class: 'stone-number' },
        `${r.stone.index} of ${r.stone.count} in this photo${r.stone.shape ? `, ${nice(r.stone.shape.label)}` : ''}`)] : null,
      h('dt', {}, 'Image'), h('dd', {}, `${img.width}×${img.height} ${img.format || ''}, ${bytes(img.bytes)}`),
      h('dt', {}, 'Image SHA-256'), h('dd', { class: 'image-sha' }, img.sha256 || '—'),
      h('dt', {}, 'Model'), h('dd', { class: 'model' }, `${m.name || '?'} ${m.version || ''} (${m.variant || 'fp32'})`),
      h('dt', {}, 'Model SHA-256'), h('dd', {}, m.sha256 || '—')),
    h('div', { class: 'doc-grid' },
      photoFigure(r),
      h('div', {}, speciesSection(r, 2), warningsBlock(r))),
    rr && rr.flag ? h('section', { class: 'doc-readings' }, heading(2, 'Readings check'),
      h('div', { class: `notice ${rr.fits_none ? 'bad' : 'warn'}` },
        rr.fits_none ? h('strong', {}, 'Readings fit no candidate. ') : null, rr.flag)) : null,
    h('div', { class: 'report-sections' }, colourSection(r, 2), claritySection(r, 2)),
    sizeSection(r, 2),
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
