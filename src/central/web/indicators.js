// The indicators page (loaded from /assets/: the pages hold no inline script): the current
// figures as cards, their weekly trends as small charts (uPlot, from npm, embedded like
// Leaflet), and breakdowns by area, using unit and maintenance unit. Every table exports as CSV
// (UTF-8 with BOM) and every chart as PNG.
const { api, header, esc, val, t, num, pct, time, download, exportable, ready } = window.seguard;
header('/indicators');
const error = e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); document.body.dataset.ready = 'error'; };

function cards(i) {
  const per = (done, total) => ({ in_time: num(done), total: num(total) });
  const list = [
    [t('ind.overdue'), pct(i.inspection_overdue.rate), t('ind.overdue_sub', { overdue: num(i.inspection_overdue.overdue), total: num(i.inspection_overdue.with_date) })],
    [t('ind.insurance'), pct(i.elevator_insurance.rate), t('ind.insurance_sub', { insured: num(i.elevator_insurance.insured), total: num(i.elevator_insurance.elevators) })],
    [t('ind.labelling'), pct(i.cylinder_labelling.rate), i.cylinder_labelling.seen ? t('ind.labelling_sub', { labelled: num(i.cylinder_labelling.labelled), total: num(i.cylinder_labelling.seen) }) : t('ind.labelling_none')],
    [t('ind.response', { min: num(i.response_rate.within_s / 60) }), pct(i.response_rate.rate), t('ind.dispatches_sub', per(i.response_rate.in_time, i.response_rate.dispatches))],
    [t('ind.arrival', { min: num(i.arrival_rate.within_s / 60) }), pct(i.arrival_rate.rate), t('ind.dispatches_sub', per(i.arrival_rate.in_time, i.arrival_rate.dispatches))],
    [t('ind.alarms'), num(i.alarms.last_24h), t('ind.alarms_sub', { per_hour: num(i.alarms.per_hour, 2), floods: num(i.alarms.floods_last_24h) })],
  ];
  document.getElementById('cards').innerHTML = list.map(([title, v, s]) => `<div class="card"><div>${esc(title)}</div><div class="value">${esc(v)}</div><div class="sub">${esc(s)}</div></div>`).join('');
}

// The weekly series: [key, catalogue key, is a rate].
const SERIES = [
  ['alarms', 'trend.alarms', false], ['trapped', 'trend.trapped', false],
  ['response_rate', 'trend.response_rate', true], ['arrival_rate', 'trend.arrival_rate', true],
  ['overdue_rate', 'trend.overdue_rate', true], ['insurance_rate', 'trend.insurance_rate', true],
  ['labelling_rate', 'trend.labelling_rate', true],
];
const value = (x, rate) => rate ? (x && x.rate != null ? x.rate : null) : x;
const shown = (x, rate) => rate ? pct(x && x.rate) : num(x);
// A week's start as a date in central's zone.
const day = s => time(s).slice(0, 10);

// One small chart; its canvas exports as PNG on a white ground with its title.
function chart(box, title, labels, values, rate) {
  const width = Math.min(360, box.clientWidth || 360);
  const u = new uPlot({
    width, height: 150, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: false }, y: rate ? { range: [0, 1] } : { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [
      { values: (u, ticks) => ticks.map(i => labels[i] ? labels[i].slice(5) : ''), size: 30, font: '11px sans-serif' },
      { values: (u, ticks) => ticks.map(v => rate ? pct(v) : num(v)), size: 62, font: '11px sans-serif' },
    ],
    series: [{}, { stroke: '#1d3557', width: 2, fill: '#1d355722', points: { size: 5 } }],
  }, [labels.map((_, i) => i), values], box);
  const canvas = u.ctx.canvas;
  canvas.setAttribute('role', 'img');
  const last = values[values.length - 1];
  canvas.setAttribute('aria-label', t('trend.chart_label', { title, value: last == null ? t('dash') : (rate ? pct(last) : num(last)) }));
  return () => {
    const out = document.createElement('canvas');
    out.width = canvas.width; out.height = canvas.height + 28;
    const c = out.getContext('2d');
    c.fillStyle = '#fff'; c.fillRect(0, 0, out.width, out.height);
    c.fillStyle = '#1d2733'; c.font = '14px sans-serif'; c.fillText(title, 8, 19);
    c.drawImage(canvas, 0, 28);
    return new Promise(resolve => out.toBlob(resolve, 'image/png'));
  };
}

function trends(tr) {
  const labels = tr.weeks.map(day);
  const charts = document.getElementById('charts');
  charts.innerHTML = '';
  for (const [key, name, rate] of SERIES) {
    const fig = document.createElement('figure');
    fig.className = 'chart'; fig.dataset.series = key;
    fig.innerHTML = `<figcaption>${esc(t(name))}</figcaption><div class="plot"></div>` +
      `<button type="button" class="export" data-png="${esc(key)}">${esc(t('export.png'))}</button>`;
    charts.appendChild(fig);
    const png = chart(fig.querySelector('.plot'), t(name), labels, tr.series[key].map(x => value(x, rate)), rate);
    fig.querySelector('button').addEventListener('click', async () => download(`${key}.png`, await png()));
  }
  // The same figures as a table, week by week.
  const weekly = document.getElementById('weekly');
  weekly.tHead.innerHTML = `<tr><th>${esc(t('trend.week'))}</th>${SERIES.map(([, name]) => `<th>${esc(t(name))}</th>`).join('')}</tr>`;
  weekly.tBodies[0].innerHTML = labels.map((w, i) => `<tr><td>${esc(w)}</td>${SERIES.map(([key, , rate]) => `<td>${esc(shown(tr.series[key][i], rate))}</td>`).join('')}</tr>`).join('');
  // Breakdowns, one table each; the tabs show one at a time.
  const cols = [['equipment', 'trend.col_equipment'], ['alarms', 'trend.alarms'], ['trapped', 'trend.trapped'],
    ['response_rate', 'trend.response_rate'], ['arrival_rate', 'trend.arrival_rate'], ['overdue', 'trend.overdue_rate'], ['insured', 'trend.insurance_rate']];
  const box = document.getElementById('breakdowns');
  box.innerHTML = '';
  for (const by of ['area', 'using_unit', 'maintenance_unit']) {
    const wrap = document.createElement('div');
    wrap.className = 'scroll'; wrap.dataset.by = by; wrap.setAttribute('role', 'tabpanel');
    const rows = tr.breakdowns[by] || [];
    wrap.innerHTML = `<table id="by-${by}"><thead><tr><th>${esc(t('trend.by_' + by))}</th>${cols.map(([, k]) => `<th>${esc(t(k))}</th>`).join('')}</tr></thead><tbody>` +
      (rows.map(r => `<tr><td>${r.group ? val(r.group) : esc(t('trend.no_group'))}</td>${cols.map(([k]) => `<td>${esc(typeof r[k] === 'object' ? pct(r[k].rate) : num(r[k]))}</td>`).join('')}</tr>`).join('') ||
        `<tr><td colspan="${cols.length + 1}">${esc(t('equipment.none'))}</td></tr>`) + '</tbody></table>';
    box.appendChild(wrap);
    exportable(wrap.querySelector('table'), `breakdown-${by}`);
  }
  const tabs = [...document.querySelectorAll('#tabs button')];
  const select = by => {
    for (const b of tabs) b.setAttribute('aria-selected', String(b.dataset.by === by));
    for (const p of box.children) p.hidden = p.dataset.by !== by;
  };
  for (const b of tabs) b.addEventListener('click', () => select(b.dataset.by));
  select('area');
}

exportable(document.getElementById('weekly'), 'weekly');
// Central's zone as minutes east of UTC now, so the weeks start on its Monday.
const offset = () => Math.round((Date.parse(time(new Date()).replace(' ', 'T') + 'Z') - Date.now()) / 60000);
ready.then(() => Promise.all([api('/api/v1/indicators'), api(`/api/v1/indicators/trends?weeks=12&offset_min=${offset()}`)]))
  .then(([i, tr]) => {
    cards(i);
    if (window.uPlot) trends(tr); else document.getElementById('trend-note').textContent = t('trend.no_charts');
    document.body.dataset.ready = 'true';
  })
  .catch(error);
