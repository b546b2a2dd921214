// The equipment unit's overview (loaded from /assets/: the pages hold no inline script): with a
// using unit's token, its own equipment with state, its open alarms and overdue inspections
// and its open inspection hazards, overdue first (central scopes every list to the token's unit;
// a regulator sees every unit's).
const { api, header, esc, val, time, t, label, alarmName, num, exportable, ready } = window.seguard;
header('/unit');
const page = e => `/equipment/${encodeURIComponent(e.gateway)}/${encodeURIComponent(e.id)}`;
const fill = (id, rows, colspan) => {
  document.querySelector(`#${id} tbody`).innerHTML = rows.join('') || `<tr><td colspan="${colspan}">${esc(t('equipment.none'))}</td></tr>`;
};
for (const id of ['equipment', 'alarms', 'hazards', 'overdue']) exportable(document.getElementById(id), `unit-${id}`);
ready.then(() => Promise.all([api('/api/v1/equipment'), api('/api/v1/alarms?state=active'), api('/api/v1/hazards')]))
  .then(([equipment, alarms, hazards]) => {
    const today = time(new Date()).slice(0, 10);
    const overdue = equipment.filter(e => e.next_inspection && e.next_inspection < today);
    const count = s => equipment.filter(e => e.state === s).length;
    const cards = [
      ['unit.card_equipment', num(equipment.length)],
      ['unit.card_trapped', num(count('trapped'))],
      ['unit.card_alarm', num(alarms.length)],
      ['unit.card_overdue', num(overdue.length)],
      ['unit.card_hazards', num(hazards.length)],
    ];
    document.getElementById('cards').innerHTML = cards.map(([k, v]) => `<div class="card"><div>${esc(t(k))}</div><div class="value" data-card="${esc(k)}">${esc(v)}</div></div>`).join('');
    // The equipment that needs attention first: trapped, alarm, offline, overdue, normal.
    const order = ['trapped', 'alarm', 'offline', 'overdue', 'normal'];
    equipment.sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state) || a.name.localeCompare(b.name));
    fill('equipment', equipment.map(e => `<tr data-equipment="${esc(e.id)}"><td><a href="${esc(page(e))}">${val(e.name)}</a></td><td>${esc(label('kind', e.kind))}</td>` +
      `<td><span class="badge state-${esc(e.state)}">${esc(label('mapstate', e.state))}</span></td><td>${esc(num(e.open_alarms))}</td>` +
      `<td>${e.next_inspection ? val(e.next_inspection) : esc(t('dash'))}</td><td>${e.insured == null ? esc(t('dash')) : esc(t(e.insured ? 'yes' : 'no'))}</td><td>${val(e.address)}</td></tr>`), 7);
    fill('alarms', alarms.map(a => `<tr class="sev-${esc(a.severity)}"><td>${esc(time(a.raised))}</td><td><a href="${esc(page({ gateway: a.gateway, id: a.equipment }))}">${val(a.equipment)}</a></td>` +
      `<td>${a.trapped ? `<b class="trapped">${esc(t('alarms.trapped'))}</b> ` : ''}${alarmName(a.rule) ? `<b>${esc(alarmName(a.rule))}</b> ` : ''}${val(a.message)}</td>` +
      `<td>${esc(label('severity', a.severity))}</td><td>${esc(label('alarmstate', a.state))}</td></tr>`), 5);
    // The ledger lists open items, overdue first (store/hazards.rs orders them).
    fill('hazards', hazards.map(h => `<tr data-hazard="${esc(h.id)}"${h.overdue ? ' class="sev-critical"' : ''}><td><a href="${esc(page({ gateway: h.gateway, id: h.equipment }))}">${val(h.equipment_name || h.equipment)}</a></td>` +
      `<td>${val(h.description)}</td><td>${esc(label('hzsev', h.severity))}</td><td>${val(h.deadline)}${h.overdue ? ` <b>${esc(t('hz.overdue'))}</b>` : ''}</td><td>${esc(label('hzstatus', h.status))}</td></tr>`), 5);
    fill('overdue', overdue.map(e => `<tr><td><a href="${esc(page(e))}">${val(e.name)}</a></td><td>${val(e.registration_code)}</td><td>${val(e.next_inspection)}</td><td>${val(e.address)}</td></tr>`), 4);
    document.body.dataset.ready = 'true';
  })
  .catch(e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); document.body.dataset.ready = 'error'; });
