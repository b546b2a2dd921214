// A cylinder's whole life by its code (loaded from /assets/: the pages hold no inline script).
// Opened from the URL a QR code carries (`/c/{code}`), made for a phone: the register entry,
// then every fill with its checks, every refusal, inspection, station and owner change,
// newest first.
const { api, header, esc, val, time, t, label, num } = window.seguard;
header('/c');
const code = decodeURIComponent(location.pathname.split('/').pop());
document.getElementById('code').textContent = code;
function entries(c) {
  const r = c.register;
  if (!r) return `<dt>${esc(t('cyl.register'))}</dt><dd>${esc(t('cyl.unregistered'))}</dd>`;
  // A row made from fills: no filling unit declared the cylinder; only its medium is known.
  if (r.origin === 'fills') return `<dt>${esc(t('cyl.register'))}</dt><dd data-origin="fills">${esc(t('cyl.from_fills'))}</dd><dt>${esc(t('cyl.medium'))}</dt><dd>${val(r.medium)}</dd>`;
  const rows = [['cyl.owner', val(r.owner)], ['cyl.medium', val(r.medium)], ['cyl.type', val(r.cylinder_type)],
    ['cyl.made', esc(r.made || t('dash'))], ['cyl.last_inspection', esc(r.last_inspection || t('dash'))],
    ['cyl.next_inspection', esc(r.next_inspection || t('dash'))], ['cyl.insured', esc(r.insured == null ? t('dash') : t(r.insured ? 'yes' : 'no'))]];
  return rows.map(([k, v]) => `<dt>${esc(t(k))}</dt><dd>${v}</dd>`).join('');
}
// Fills, register events and station changes in one list, newest first.
function timeline(c) {
  const items = [];
  const fills = c.fills.slice().sort((a, b) => a.time < b.time ? -1 : 1);
  let station = null;
  for (const f of fills) {
    if (station !== null && f.station !== station) items.push({ at: f.time, kind: 'station', html: esc(t('cyl.station_changed', { from: '\u0000', to: '\u0001' })).replace('\u0000', val(station)).replace('\u0001', val(f.station)) });
    station = f.station;
    const checks = [f.mass_kg != null ? t('cyl.mass', { kg: num(f.mass_kg, 1) }) : null, f.pressure_mpa != null ? t('cyl.pressure', { mpa: num(f.pressure_mpa, 2) }) : null,
      f.residual_pressure_mpa != null ? t('cyl.residual', { mpa: num(f.residual_pressure_mpa, 2) }) : null].filter(Boolean).map(esc).join(' · ');
    const why = f.rejections && f.rejections.length ? ' ' + f.rejections.map(r => `<b class="refusal">${esc(label('refusal', r))}</b>`).join(' ') : '';
    items.push({ at: f.time, kind: f.accepted ? 'fill' : 'refused',
      html: `${esc(t(f.accepted ? 'cyl.filled' : 'cyl.refused'))}${why}<br><small>${val(f.station)}${f.operator ? ' · ' + val(f.operator) : ''}${checks ? ' · ' + checks : ''}</small>` });
  }
  for (const e of c.events) items.push({ at: e.at, kind: e.kind, html: `${esc(t('cyl.event.' + e.kind))} ${e.detail ? val(e.detail) : ''}` });
  items.sort((a, b) => (a.at < b.at) - (a.at > b.at));
  return items.map(i => `<li class="ev-${esc(i.kind)}" data-kind="${esc(i.kind)}"><time>${esc(time(i.at))}</time><div>${i.html}</div></li>`).join('') || `<li>${esc(t('cyl.none'))}</li>`;
}
window.seguard.ready.then(async () => {
  try {
    const c = await api('/api/v1/cylinders/' + encodeURIComponent(code));
    const r = c.register;
    const today = new Date().toISOString().slice(0, 10);
    const state = (!r || r.origin === 'fills') ? 'unregistered' : r.scrapped ? 'scrapped' : (r.next_inspection && r.next_inspection < today) ? 'expired' : 'valid';
    document.getElementById('state').innerHTML = `<b class="cyl-state cyl-${state}" data-state="${state}">${esc(t('cyl.state.' + state))}</b>`;
    document.getElementById('register').innerHTML = entries(c);
    document.getElementById('timeline').innerHTML = timeline(c);
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
});
