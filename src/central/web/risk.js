// The risk ranking (loaded from /assets/: the pages hold no inline script): where to inspect
// first, each score with the factors that make it, and the weights in force.
const { api, header, esc, val, t, label, num } = window.seguard;
header('/risk');
// One factor as a person reads it: what was found, and the points it adds.
function reason(f) {
  const value = f.factor === 'kind' ? label('kind', f.value) : f.value;
  return `<li data-factor="${esc(f.factor)}">${esc(t('risk.factor.' + f.factor, { value }))} <b>+${esc(num(f.points, 1))}</b></li>`;
}
const row = r => `
      <tr data-equipment="${esc(r.id)}">
        <td>${esc(r.rank)}</td><td class="score">${esc(num(r.score, 1))}</td>
        <td>${val(r.name)}<br><small>${esc(label('kind', r.kind))} · ${val(r.gateway)}/${val(r.id)}</small><br><small>${val(r.address)}</small></td>
        <td>${val(r.using_unit)}<br><small>${r.maintenance_unit ? val(r.maintenance_unit) : esc(t('dash'))}</small></td>
        <td><ul class="reasons">${r.factors.map(reason).join('')}</ul></td>
      </tr>`;
function weights(s) {
  const rows = Object.entries(s.weight).map(([k, w]) => [t('risk.weight.' + k), num(w, 1)]);
  rows.push([t('risk.weight.window', { days: s.window }), ''], [t('risk.weight.recurrence', { days: s.recurrence }), ''],
    [t('risk.weight.due_soon', { days: s.due_soon }), ''], [t('risk.weight.age_from', { years: s.age_from_years }), ''],
    [t('risk.weight.alarm_cap', { n: s.alarm_cap }), '']);
  for (const [k, w] of Object.entries(s.kind)) rows.push([t('risk.weight.kind', { kind: label('kind', k) }), num(w, 1)]);
  for (const [g, w] of Object.entries(s.grade)) rows.push([t('risk.weight.grade', { grade: g }), num(w, 1)]);
  return rows.map(([what, w]) => `<tr><td>${esc(what)}</td><td>${esc(w)}</td></tr>`).join('');
}
// The page shows the top of the ranking; `more` appends the next rows of the same selection,
// as many as the page's own `?limit=` asks (the server's page size otherwise).
const pageSize = new URLSearchParams(location.search).get('limit');
let shown = 0;
let query = '';
async function load(more) {
  if (!more) {
    query = new URLSearchParams(new FormData(document.getElementById('filters'))).toString();
    shown = 0;
  }
  document.getElementById('csv').href = '/api/v1/risk?format=csv&' + query;
  try {
    const r = await api(`/api/v1/risk?offset=${shown}${pageSize ? '&limit=' + encodeURIComponent(pageSize) : ''}&${query}`);
    const rows = document.getElementById('rows');
    if (more) rows.insertAdjacentHTML('beforeend', r.equipment.map(row).join(''));
    else rows.innerHTML = r.equipment.map(row).join('') || `<tr><td colspan="5">${esc(t('risk.none'))}</td></tr>`;
    shown += r.equipment.length;
    document.getElementById('shown').textContent = r.total ? t('risk.shown', { shown: num(shown), total: num(r.total) }) : '';
    document.getElementById('more').hidden = shown >= r.total;
    document.getElementById('weights').innerHTML = weights(r.settings);
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
document.getElementById('filters').addEventListener('submit', e => { e.preventDefault(); document.body.dataset.ready = 'false'; load(false); });
document.getElementById('more').addEventListener('click', () => { document.body.dataset.ready = 'false'; load(true); });
load(false);
