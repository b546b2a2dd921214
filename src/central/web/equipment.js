// The equipment page (loaded from /assets/: the pages hold no inline script), reached from the
// search box, the map's popup and the alarm list: registry and nameplate, its position on a
// small map, the latest values central received, alarm and dispatch history, inspection and
// insurance, and a cylinder's or filling station's fills. Every table exports as CSV.
const { api, header, esc, val, time, t, label, alarmName, num, exportable, ready, basemap } = window.seguard;
header('');
const [gateway, id] = location.pathname.split('/').slice(2).map(decodeURIComponent);
const tel = p => `tel:${String(p).replace(/[^0-9+]/g, '')}`;
const phone = p => p ? ` <a class="tel" href="${esc(tel(p))}">${val(p)}</a>` : '';
const given = v => v !== undefined && v !== null && v !== '';
const dl = rows => rows.filter(([, v]) => v).map(([k, v]) => `<dt>${esc(t(k))}</dt><dd>${v}</dd>`).join('');
const amount = (v, unit) => given(v) ? `${esc(num(v, Number.isInteger(v) ? 0 : 2))} ${esc(unit)}` : '';
const body = (tableId, rows, colspan) => {
  document.querySelector(`#${tableId} tbody`).innerHTML = rows.join('') || `<tr><td colspan="${colspan}">${esc(t('equipment.none'))}</td></tr>`;
};

// The small map: the equipment's position in the basemap's system, on the plain base without
// a tile server.
async function place(at) {
  const where = document.getElementById('where');
  if (!at || !window.L || window.SEGUARD_NO_LEAFLET) { where.hidden = true; document.getElementById('no-position').hidden = false; return; }
  const config = await api('/api/v1/map/config').catch(() => ({}));
  const map = L.map(where, { zoomControl: false, attributionControl: !!config.tile_url }).setView(at, 16);
  if (!basemap(map, config).length) where.classList.add('offline-base');
  L.circleMarker(at, { radius: 9, color: '#fff', weight: 3, fillColor: '#1d3557', fillOpacity: 1 }).addTo(map);
  where.dataset.at = at.join(',');
}

function show(d) {
  const e = d.equipment, r = e.record || {}, m = r.maintenance_unit;
  document.getElementById('name').innerHTML = `${val(e.name)} <span class="badge state-${esc(e.state)}" id="state" data-state="${esc(e.state)}">${esc(label('mapstate', e.state))}</span>`;
  const overdue = e.state === 'overdue' || (given(e.next_inspection) && e.next_inspection < new Date().toISOString().slice(0, 10));
  document.getElementById('registry').innerHTML = dl([
    ['field.kind', esc(label('kind', e.kind))],
    ['field.registration_code', val(e.registration_code)],
    ['field.use_certificate', given(r.use_certificate) && val(r.use_certificate)],
    ['field.rescue_code', given(r.rescue_code) && val(r.rescue_code)],
    ['field.using_unit', val(e.using_unit) + phone(r.using_unit_phone)],
    ['field.maintenance_unit', m && (val(m.name) + phone(m.phone))],
    ['field.building_phone', given(r.building_phone) && phone(r.building_phone)],
    ['field.address', val(e.address)],
    ['field.next_inspection', given(e.next_inspection) ? val(e.next_inspection) + (overdue ? ` <b class="overdue">${esc(t('equipment.overdue'))}</b>` : '') : esc(t('dash'))],
    ['field.insured', e.insured == null ? esc(t('dash')) : esc(t(e.insured ? 'yes' : 'no'))],
    ['field.gateway', `${val(e.gateway)} (${esc(label('gateway', e.gateway_state))})`],
    ['field.open_alarms', esc(num(e.open_alarms))],
  ]);
  const n = r.nameplate || {};
  const plate = dl([
    ['plate.rated_speed', amount(n.rated_speed_m_s, 'm/s')],
    ['plate.rated_load', amount(n.rated_load_kg, 'kg')],
    ['plate.floors', amount(n.floors, '')],
    ['plate.working_pressure', amount(n.working_pressure_mpa, 'MPa')],
    ['plate.set_pressure', amount(n.set_pressure_mpa, 'MPa')],
    ['plate.design_pressure', amount(n.design_pressure_mpa, 'MPa')],
    ['plate.safe_residual', amount(n.safe_residual_mpa, 'MPa')],
    ['plate.medium', given(n.medium) && val(n.medium)],
    ['plate.volume', amount(n.volume_l, 'L')],
  ]);
  document.getElementById('nameplate').innerHTML = plate || `<dd>${esc(t('equipment.none'))}</dd>`;
  const ruleName = rule => alarmName(rule) ? esc(alarmName(rule)) : val(rule);
  body('readings', d.readings.map(x => `<tr><td>${ruleName(x.rule)}</td><td>${esc(num(x.value, 2))}</td><td>${given(x.limit) ? esc(num(x.limit, 2)) : esc(t('dash'))}</td><td>${esc(time(x.time))}</td></tr>`), 4);
  body('alarms', d.alarms.map(a => `<tr class="sev-${esc(a.severity)}"><td>${esc(time(a.raised))}</td><td>${a.trapped ? `<b class="trapped">${esc(t('alarms.trapped'))}</b> ` : ''}${alarmName(a.rule) ? `<b>${esc(alarmName(a.rule))}</b> ` : ''}${val(a.message)}</td>` +
    `<td>${esc(label('severity', a.severity))}</td><td>${esc(label('alarmstate', a.state))}</td><td>${a.cleared ? esc(time(a.cleared)) : esc(t('dash'))}</td></tr>`), 5);
  const at = s => s ? esc(time(s)) : esc(t('dash'));
  body('dispatches', d.dispatches.map(x => `<tr><td><a href="/rescue/${esc(x.id)}">${val(x.order_no)}</a></td><td>${at(x.time)}</td><td>${val(x.unit.name)}</td>` +
    `<td>${esc(label('status', x.status))}</td><td>${at(x.responded_at)}</td><td>${at(x.on_site_at)}</td><td>${at(x.closed_at)}</td></tr>`), 7);
  if (e.kind === 'gas_cylinder' || e.kind === 'filling_station' || d.fills.length) {
    document.getElementById('fills-section').hidden = false;
    body('fills', d.fills.map(f => `<tr class="${f.accepted ? '' : 'refused'}"><td>${esc(time(f.time))}</td><td>${val(f.cylinder_code)}</td><td>${val(f.station)}</td>` +
      `<td>${given(f.medium) ? val(f.medium) : esc(t('dash'))}</td><td>${amount(f.mass_kg, 'kg') || esc(t('dash'))}</td>` +
      `<td>${f.accepted ? esc(t('equipment.filled')) : esc(t('equipment.refused', { why: (f.rejections || []).map(x => label('fillrej', x)).join('、') }))}</td></tr>`), 6);
  }
  return place(e.display);
}

for (const name of ['readings', 'alarms', 'dispatches', 'fills']) exportable(document.getElementById(name), `${id}-${name}`);
ready.then(() => api(`/api/v1/equipment/${encodeURIComponent(gateway)}/${encodeURIComponent(id)}`))
  .then(show)
  .then(() => { document.body.dataset.ready = 'true'; })
  .catch(e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); document.body.dataset.ready = 'error'; });
