// Maintenance-unit scorecards (loaded from /assets/: the pages hold no inline script): the
// comparison of units for a month (`/scorecards`) and its printable monthly report
// (`/scorecards/report?month=`), from the same data.
const { api, header, esc, val, time, t, num, pct } = window.seguard;
const view = document.body.dataset.view;
if (view === 'compare') header('/scorecards');
const params = new URLSearchParams(location.search);
const seconds = s => s == null ? t('dash') : t('elapsed.ms', { m: Math.floor(s / 60), s: String(Math.round(s % 60)).padStart(2, '0') });
const MEASURES = [
  ['elevators', c => num(c.elevators)],
  ['insurance_rate', c => `${pct(c.insurance_rate)} <small>(${esc(num(c.insured))}/${esc(num(c.elevators))})</small>`],
  ['trapped_per_100', c => `${num(c.trapped_per_100, 1)} <small>(${esc(num(c.trapped))})</small>`],
  ['dispatches', c => num(c.dispatches)],
  ['response_rate', c => `${pct(c.response_rate)} <small>(${esc(num(c.responded_in_time))}/${esc(num(c.responses_counted))})</small>`],
  ['arrival_rate', c => `${pct(c.arrival_rate)} <small>(${esc(num(c.arrived_in_time))}/${esc(num(c.arrivals_counted))})</small>`],
  ['response_median', c => seconds(c.response_median_s)],
  ['response_p90', c => seconds(c.response_p90_s)],
  ['arrival_median', c => seconds(c.arrival_median_s)],
  ['arrival_p90', c => seconds(c.arrival_p90_s)],
  ['second_level', c => num(c.second_level)],
  ['recurring_faults', c => num(c.recurring_faults)],
];
function shortfall(s) {
  const rate = s.measure.endsWith('_rate');
  const v = rate ? pct(s.value) : num(s.value, 1), l = rate ? pct(s.limit) : num(s.limit, 1);
  return `<li>${esc(t('score.short', { grade: s.grade, measure: t('score.m.' + s.measure), value: v, limit: l }))}</li>`;
}
// Units side by side: one column per unit, one row per measure.
function table(cards) {
  if (!cards.length) return `<p>${esc(t('score.none'))}</p>`;
  const head = `<tr><th>${esc(t('score.unit'))}</th>${cards.map(c => `<th data-unit="${esc(c.unit)}">${val(c.unit)}</th>`).join('')}</tr>`;
  const grade = `<tr class="grade"><th>${esc(t('score.grade'))}</th>${cards.map(c => `<td><b class="grade-${esc(c.grade)}" data-grade="${esc(c.grade)}">${esc(c.grade)}</b></td>`).join('')}</tr>`;
  const rows = MEASURES.map(([k, f]) => `<tr data-measure="${k}"><th>${esc(t('score.m.' + k))}</th>${cards.map(c => `<td>${f(c)}</td>`).join('')}</tr>`).join('');
  const why = `<tr><th>${esc(t('score.shortfalls'))}</th>${cards.map(c => `<td><ul class="reasons">${c.shortfalls.map(shortfall).join('')}</ul></td>`).join('')}</tr>`;
  return `<table class="scorecards"><thead>${head}</thead><tbody>${grade}${rows}${why}</tbody></table>`;
}
function thresholds(s) {
  const keys = ['min_response_rate', 'min_arrival_rate', 'max_trapped_per_100', 'max_second_level_rate', 'min_insurance_rate'];
  const head = `<tr><th></th>${['A', 'B', 'C'].map(g => `<th>${g}</th>`).join('')}</tr>`;
  return head + keys.map(k => `<tr><th>${esc(t('score.t.' + k))}</th>${s.grades.map(g => `<td>${esc(k.includes('trapped') ? num(g[k], 1) : pct(g[k]))}</td>`).join('')}</tr>`).join('')
    + `<tr><td colspan="4">${esc(t('score.t.rest', { days: s.recurrence }))}</td></tr>`;
}
async function load() {
  const month = view === 'report' ? params.get('month') || '' : document.getElementById('month').value;
  const q = month ? 'month=' + encodeURIComponent(month) : '';
  document.getElementById('csv').href = '/api/v1/scorecards?format=csv&' + q;
  try {
    const r = await api('/api/v1/scorecards?' + q);
    if (view === 'compare') {
      document.getElementById('month').value = r.period.label;
      document.getElementById('report').href = '/scorecards/report?month=' + encodeURIComponent(r.period.label);
    } else {
      document.getElementById('report-title').textContent = t('score.report_title', { month: r.period.label });
      document.title = t('score.report_title', { month: r.period.label });
      document.getElementById('report-period').textContent = t('score.period', { from: time(r.from), to: time(r.to) });
      document.getElementById('generated').textContent = t('score.generated', { time: time(r.generated) });
    }
    document.getElementById('cards').innerHTML = table(r.units);
    document.getElementById('thresholds').innerHTML = thresholds(r.settings);
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
if (view === 'compare') {
  document.getElementById('month').value = params.get('month') || '';
  document.getElementById('filters').addEventListener('submit', e => { e.preventDefault(); document.body.dataset.ready = 'false'; load(); });
} else {
  document.getElementById('print').addEventListener('click', () => window.print());
}
window.seguard.ready.then(load);
