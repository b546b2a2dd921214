// Inspection hazards (loaded from /assets/: the pages hold no inline script). One page, three
// views by role: a regulator sees every open item, overdue first, and verifies corrections; a
// using unit sees its ledger and records cause, responsibility and corrective action; an
// agency sees its reports' items and verifies them, and uploads a batch of reports as CSV.
const { api, header, esc, val, time, t, label, lang } = window.seguard;
header('/hazards');
let me = null;
function item(h) {
  const mayCorrect = me.role === 'equipment_unit' && h.status === 'open';
  const mayVerify = (me.role === 'regulator' || me.role === 'inspection_agency') && h.status === 'corrected';
  const ledgers = [esc(t('hz.ledger_using', { unit: '\u0000' })).replace('\u0000', val(h.using_unit))];
  if (h.manufacturer) ledgers.push(esc(t('hz.ledger_maker', { unit: '\u0001' })).replace('\u0001', val(h.manufacturer)));
  const correction = h.cause ? `<dl class="correction">
      <dt>${esc(t('hz.cause'))}</dt><dd>${val(h.cause)}</dd>
      <dt>${esc(t('hz.responsibility'))}</dt><dd>${val(h.responsibility)}</dd>
      <dt>${esc(t('hz.corrective_action'))}</dt><dd>${val(h.corrective_action)}</dd>
      <dt>${esc(t('hz.corrected'))}</dt><dd>${val(h.corrected_by)} · ${esc(time(h.corrected))}</dd></dl>` : '';
  const review = h.review_note ? `<p class="review">${esc(t(h.status === 'verified' ? 'hz.verified_note' : 'hz.sent_back'))} ${val(h.review_note)} <small>(${val(h.verified_by)})</small></p>` : '';
  const form = mayCorrect ? `<form class="correct">
      <label>${esc(t('hz.cause'))}<textarea name="cause" rows="2"></textarea></label>
      <label>${esc(t('hz.responsibility'))}<textarea name="responsibility" rows="2"></textarea></label>
      <label>${esc(t('hz.corrective_action'))}<textarea name="corrective_action" rows="2"></textarea></label>
      <button type="submit">${esc(t('hz.submit_correction'))}</button></form>` : '';
  const verify = mayVerify ? `<form class="verify">
      <label>${esc(t('hz.note'))}<input name="note" size="30"></label>
      <button type="submit" value="accept" class="accept">${esc(t('hz.accept'))}</button>
      <button type="submit" value="send_back" class="send-back">${esc(t('hz.send_back'))}</button></form>` : '';
  return `<article class="hazard status-${esc(h.status)}${h.overdue ? ' overdue' : ''}" data-hazard="${esc(h.id)}" data-status="${esc(h.status)}">
    <h3>${h.overdue ? `<b class="overdue-badge">${esc(t('hz.overdue'))}</b> ` : ''}<span class="sev sev-${esc(h.severity)}">${esc(label('hzsev', h.severity))}</span> ${val(h.description)}</h3>
    <p>${val(h.equipment_name)} · ${val(h.address)} · ${esc(t('hz.deadline', { date: h.deadline }))} · <span class="status">${esc(label('hzstatus', h.status))}</span></p>
    <p><small>${esc(t('hz.basis'))} ${val(h.legal_basis)} · ${esc(t('hz.report', { no: '\u0002' })).replace('\u0002', val(h.report_no))} · ${val(h.agency)}</small></p>
    <p><small>${ledgers.join(' · ')}</small></p>
    ${correction}${review}${form}${verify}<p class="error" role="alert"></p></article>`;
}
async function load() {
  const q = new URLSearchParams(new FormData(document.getElementById('filters'))).toString();
  try {
    me = me || await api('/api/v1/whoami');
    const items = await api('/api/v1/hazards?' + q);
    document.getElementById('items').innerHTML = items.map(item).join('') || `<p>${esc(t('hz.none'))}</p>`;
    document.getElementById('upload-section').hidden = me.role !== 'inspection_agency';
    if (me.role === 'inspection_agency' || me.role === 'regulator') {
      const reports = await api('/api/v1/inspections');
      document.getElementById('reports-section').hidden = false;
      document.getElementById('reports').innerHTML = reports.map(r => `<tr><td>${val(r.report_no)}<br><small>${val(r.agency)}</small></td><td>${val(r.gateway)}/${val(r.equipment)}<br><small>${val(r.using_unit)}</small></td><td>${esc(label('conclusion', r.conclusion))}</td><td>${esc(r.inspected_on)}</td><td>${esc(t('hz.open_of', { open: r.open_hazards, total: r.hazards }))}</td></tr>`).join('');
    }
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
document.getElementById('filters').addEventListener('submit', e => { e.preventDefault(); document.body.dataset.ready = 'false'; load(); });
document.getElementById('items').addEventListener('submit', async e => {
  e.preventDefault();
  const article = e.target.closest('article');
  const id = article.dataset.hazard;
  const data = Object.fromEntries(new FormData(e.target));
  try {
    if (e.target.classList.contains('correct')) {
      await api(`/api/v1/hazards/${id}/correction`, { method: 'POST', body: data });
    } else {
      const accepted = e.submitter && e.submitter.value === 'accept';
      await api(`/api/v1/hazards/${id}/verify`, { method: 'POST', body: { accepted, note: data.note || '' } });
    }
    document.body.dataset.ready = 'false';
    await load();
  } catch (err) { article.querySelector('.error').textContent = t('error.prefix', { message: err.message }); }
});
// A batch of reports (CSV): stored whole, or refused whole with every problem at its line,
// shown in the page's language.
document.getElementById('upload').addEventListener('submit', async e => {
  e.preventDefault();
  const result = document.getElementById('upload-result');
  const list = document.getElementById('upload-problems');
  result.textContent = ''; list.innerHTML = '';
  const file = document.getElementById('upload-file').files[0];
  if (!file) return;
  try {
    const response = await fetch('/api/v1/inspections/batch', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'text/csv' }, body: await file.text() });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      result.textContent = t('hz.upload_done', { created: body.created, duplicates: body.duplicates });
      document.body.dataset.ready = 'false';
      await load();
    } else if (body.problems) {
      result.textContent = t('hz.upload_refused', { n: body.problems.length });
      list.innerHTML = body.problems.map(p => `<li data-line="${esc(p.line)}">${esc(t('hz.upload_line', { line: p.line }))} ${esc(lang === 'zh-CN' ? p.zh : p.en)}</li>`).join('');
    } else {
      result.textContent = t('error.prefix', { message: body.error || response.statusText });
    }
  } catch (err) { result.textContent = t('error.prefix', { message: err.message }); }
  document.body.dataset.uploaded = 'true';
});
load();
