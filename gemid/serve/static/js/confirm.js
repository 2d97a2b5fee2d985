/* The confirmed result: what confirmatory tests or a laboratory settled the stone to be. Once recorded it
 * shows on the report (species, method, lab report number, when); before, a small form records it as a new
 * revision (POST reports/<id>/confirmation). The service checks the label against the model and the
 * property table and says what is wrong; this form only offers the report's candidates as suggestions.
 */

import { api } from './api.js';
import { enc, h, heading, uid } from './dom.js';
import { nice, utc } from './format.js';
import { session } from './session.js';

function field(id, label, input, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), hint ? h('p', { class: 'hint' }, hint) : null, input);
}

function confirmForm(report, onNewReport) {
  const id = uid('confirm');
  const listId = `${id}-labels`;
  const labels = [...new Set((report.species && report.species.top || []).map((c) => c.label))];
  const label = h('input', { type: 'text', id: `${id}-label`, name: 'label', list: listId, autocomplete: 'off', required: true });
  const other = h('input', { type: 'text', id: `${id}-other`, name: 'other_name', autocomplete: 'off' });
  const method = h('input', { type: 'text', id: `${id}-method`, name: 'method', autocomplete: 'off', required: true });
  const lab = h('input', { type: 'text', id: `${id}-lab`, name: 'lab_reference', autocomplete: 'off' });
  const errBox = h('div', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Record confirmed result');
  const form = h('form', { class: 'confirm-form', novalidate: true, 'aria-label': 'Record the confirmed result' },
    h('datalist', { id: listId }, labels.map((l) => h('option', { value: l }))),
    h('div', { class: 'grid-fields' },
      field(label.id, 'Confirmed species', label, 'A species label, or "other" with its name'),
      field(other.id, 'Name (for "other")', other, null),
      field(method.id, 'Method', method, 'e.g. standard gemmological tests, Raman'),
      field(lab.id, 'Laboratory report number', lab, 'Optional')),
    errBox, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    errBox.textContent = '';
    if (!label.value.trim() || !method.value.trim()) {
      errBox.textContent = 'Enter the confirmed species and the method.';
      (label.value.trim() ? method : label).focus();
      return;
    }
    const payload = { label: label.value.trim(), method: method.value.trim() };
    if (other.value.trim()) payload.other_name = other.value.trim();
    if (lab.value.trim()) payload.lab_reference = lab.value.trim();
    submit.disabled = true;
    try {
      onNewReport(await api(`reports/${enc(report.report_id)}/confirmation`, { method: 'POST', json: payload }));
    } catch (e) {
      errBox.textContent = e.message;
      submit.disabled = false;
    }
  });
  return form;
}

const CONFIRMERS = ['supervisor', 'admin'];  // gemid/serve/access.py: SUPERVISE

function confirmedLine(c) {
  const what = c.label === 'other' ? `Other: ${c.other_name || ''}` : nice(c.label);
  return h('p', { class: 'confirmed' }, h('strong', {}, what), ` — ${c.method}`,
    c.lab_reference ? ` (laboratory report ${c.lab_reference})` : '',
    c.confirmed_at ? `, recorded ${utc(c.confirmed_at)}` : '');
}

/** The confirmation when recorded (with a folded form to correct it), else the form; read-only for a role
 * that may not record one. */
export function confirmSection(report, lvl, onNewReport) {
  const c = report.confirmation;
  const sec = h('section', { class: 'confirmation no-print' }, heading(lvl, 'Confirmed result'));
  // only a supervisor or an administrator may record one: a technician is not shown a form the service
  // refuses on submit (an outside try was); without accounts the service decides
  const role = session.user && session.user.role;
  const mayConfirm = !role || CONFIRMERS.includes(role);
  if (!mayConfirm) {
    if (c) sec.classList.remove('no-print');
    sec.append(c ? confirmedLine(c) : h('p', { class: 'hint' },
      'Not recorded yet. A supervisor or an administrator records what confirmatory tests or a laboratory settle.'));
    return sec;
  }
  if (c) {
    sec.classList.remove('no-print');
    sec.append(confirmedLine(c));
    sec.append(h('details', { class: 'no-print' }, h('summary', {}, 'Correct the confirmed result'), confirmForm(report, onNewReport)));
  } else {
    sec.append(h('p', { class: 'hint' }, 'When confirmatory tests or a laboratory settle what the stone is, record it here: '
      + 'it measures gemid in the field and can train the next model.'), confirmForm(report, onNewReport));
  }
  return sec;
}
