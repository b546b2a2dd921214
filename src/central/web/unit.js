// The equipment unit's overview (loaded from /assets/: the pages hold no inline script): with a
// using unit's token, its counts, its own equipment with state (worst first, a page at a time),
// its open alarms, its open inspection hazards (overdue first) and its overdue inspections
// (central scopes every list to the token's unit; a regulator sees every unit's). `?limit=`
// sets the rows per page of the two equipment tables.
const { api, apiPage, header, esc, val, time, t, label, alarmName, num, exportable, ready } = window.seguard;
header('/unit');
const page = e => `/equipment/${encodeURIComponent(e.gateway)}/${encodeURIComponent(e.id)}`;
const none = colspan => `<tr><td colspan="${colspan}">${esc(t('equipment.none'))}</td></tr>`;
const fill = (id, rows, colspan) => {
  document.querySelector(`#${id} tbody`).innerHTML = rows.join('') || none(colspan);
};
const showError = e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); };
for (const id of ['equipment', 'alarms', 'hazards', 'overdue']) exportable(document.getElementById(id), `unit-${id}`);
const limit = new URLSearchParams(location.search).get('limit');
const query = params => '?' + new URLSearchParams({ ...params, ...(limit ? { limit } : {}) }).toString();
// The equipment that needs attention first: central orders it trapped, alarm, offline,
// overdue, normal, then by name.
const equipmentRow = e => `<tr data-equipment="${esc(e.id)}"><td><a href="${esc(page(e))}">${val(e.name)}</a></td><td>${esc(label('kind', e.kind))}</td>` +
  `<td><span class="badge state-${esc(e.state)}">${esc(label('mapstate', e.state))}</span></td><td>${esc(num(e.open_alarms))}</td>` +
  `<td>${e.next_inspection ? val(e.next_inspection) : esc(t('dash'))}</td><td>${e.insured == null ? esc(t('dash')) : esc(t(e.insured ? 'yes' : 'no'))}</td><td>${val(e.address)}</td></tr>`;
const overdueRow = e => `<tr data-equipment="${esc(e.id)}"><td><a href="${esc(page(e))}">${val(e.name)}</a></td><td>${val(e.registration_code)}</td><td>${val(e.next_inspection)}</td><td>${val(e.address)}</td></tr>`;
// A table of equipment read a page at a time: the first page from `path`, the next ones
// appended by its "more" button (`#{id}-more`), which shows while another page follows.
async function paged(id, path, row, colspan) {
  const more = document.getElementById(`${id}-more`);
  let next = path;
  const load = async first => {
    const p = await apiPage(next);
    if (first) fill(id, p.items.map(row), colspan);
    else document.querySelector(`#${id} tbody`).insertAdjacentHTML('beforeend', p.items.map(row).join(''));
    next = p.next;
    more.hidden = !next;
  };
  more.addEventListener('click', () => load(false).then(() => { document.getElementById('error').textContent = ''; }, showError));
  await load(true);
}
ready.then(() => Promise.all([
  api('/api/v1/equipment/counts'), api('/api/v1/alarms?state=active'), api('/api/v1/hazards'),
  paged('equipment', '/api/v1/equipment' + query({}), equipmentRow, 7),
  paged('overdue', '/api/v1/equipment' + query({ inspection: 'overdue' }), overdueRow, 4),
]))
  .then(([counts, alarms, hazards]) => {
    const cards = [
      ['unit.card_equipment', num(counts.equipment)],
      ['unit.card_trapped', num(counts.states.trapped)],
      ['unit.card_alarm', num(counts.open_alarms)],
      ['unit.card_overdue', num(counts.inspection_overdue)],
      ['unit.card_hazards', num(hazards.length)],
    ];
    document.getElementById('cards').innerHTML = cards.map(([k, v]) => `<div class="card"><div>${esc(t(k))}</div><div class="value" data-card="${esc(k)}">${esc(v)}</div></div>`).join('');
    fill('alarms', alarms.map(a => `<tr class="sev-${esc(a.severity)}"><td>${esc(time(a.raised))}</td><td><a href="${esc(page({ gateway: a.gateway, id: a.equipment }))}">${val(a.equipment)}</a></td>` +
      `<td>${a.trapped ? `<b class="trapped">${esc(t('alarms.trapped'))}</b> ` : ''}${alarmName(a.rule) ? `<b>${esc(alarmName(a.rule))}</b> ` : ''}${val(a.message)}</td>` +
      `<td>${esc(label('severity', a.severity))}</td><td>${esc(label('alarmstate', a.state))}</td></tr>`), 5);
    // The ledger lists open items, overdue first (store/hazards.rs orders them).
    fill('hazards', hazards.map(h => `<tr data-hazard="${esc(h.id)}"${h.overdue ? ' class="sev-critical"' : ''}><td><a href="${esc(page({ gateway: h.gateway, id: h.equipment }))}">${val(h.equipment_name || h.equipment)}</a></td>` +
      `<td>${val(h.description)}</td><td>${esc(label('hzsev', h.severity))}</td><td>${val(h.deadline)}${h.overdue ? ` <b>${esc(t('hz.overdue'))}</b>` : ''}</td><td>${esc(label('hzstatus', h.status))}</td></tr>`), 5);
    document.body.dataset.ready = 'true';
  })
  .catch(e => { showError(e); document.body.dataset.ready = 'error'; });
