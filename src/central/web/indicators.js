// The indicators page (loaded from /assets/: the pages hold no inline script).
const { api, header, esc, t, num, pct } = window.seguard;
header('/indicators');
api('/api/v1/indicators').then(i => {
  const per = (done, total) => ({ in_time: num(done), total: num(total) });
  const cards = [
    [t('ind.overdue'), pct(i.inspection_overdue.rate), t('ind.overdue_sub', { overdue: num(i.inspection_overdue.overdue), total: num(i.inspection_overdue.with_date) })],
    [t('ind.insurance'), pct(i.elevator_insurance.rate), t('ind.insurance_sub', { insured: num(i.elevator_insurance.insured), total: num(i.elevator_insurance.elevators) })],
    [t('ind.labelling'), pct(i.cylinder_labelling.rate), t('ind.labelling_sub', { labelled: num(i.cylinder_labelling.labelled), total: num(i.cylinder_labelling.seen) })],
    [t('ind.response', { min: num(i.response_rate.within_s / 60) }), pct(i.response_rate.rate), t('ind.dispatches_sub', per(i.response_rate.in_time, i.response_rate.dispatches))],
    [t('ind.arrival', { min: num(i.arrival_rate.within_s / 60) }), pct(i.arrival_rate.rate), t('ind.dispatches_sub', per(i.arrival_rate.in_time, i.arrival_rate.dispatches))],
    [t('ind.alarms'), num(i.alarms.last_24h), t('ind.alarms_sub', { per_hour: num(i.alarms.per_hour, 2), floods: num(i.alarms.floods_last_24h) })],
  ];
  document.getElementById('cards').innerHTML = cards.map(([title, v, s]) => `<div class="card"><div>${esc(title)}</div><div class="value">${esc(v)}</div><div class="sub">${esc(s)}</div></div>`).join('');
  document.body.dataset.ready = 'true';
}).catch(e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); document.body.dataset.ready = 'error'; });
