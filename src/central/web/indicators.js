// The indicators page (loaded from /assets/: the pages hold no inline script).
const { api, header, esc } = window.seguard;
header('/indicators');
const pct = r => r == null ? '–' : (100 * r).toFixed(1) + ' %';
api('/api/v1/indicators').then(i => {
  const cards = [
    ['Inspection overdue', pct(i.inspection_overdue.rate), `${i.inspection_overdue.overdue} of ${i.inspection_overdue.with_date} with a due date`],
    ['Elevator insurance coverage', pct(i.elevator_insurance.rate), `${i.elevator_insurance.insured} of ${i.elevator_insurance.elevators} elevators insured`],
    ['Cylinder labelling rate', pct(i.cylinder_labelling.rate), `${i.cylinder_labelling.labelled} of ${i.cylinder_labelling.seen} cylinders seen`],
    [`Response within ${i.response_rate.within_s / 60} min`, pct(i.response_rate.rate), `${i.response_rate.in_time} of ${i.response_rate.dispatches} dispatches`],
    [`Arrival within ${i.arrival_rate.within_s / 60} min`, pct(i.arrival_rate.rate), `${i.arrival_rate.in_time} of ${i.arrival_rate.dispatches} dispatches`],
    ['Alarms, last 24 h', i.alarms.last_24h, `${i.alarms.per_hour.toFixed(2)} per hour · ${i.alarms.floods_last_24h} floods (>10 in 10 min)`],
  ];
  document.getElementById('cards').innerHTML = cards.map(([t, v, s]) => `<div class="card"><div>${esc(t)}</div><div class="value">${esc(v)}</div><div class="sub">${esc(s)}</div></div>`).join('');
  document.body.dataset.ready = 'true';
}).catch(e => { document.getElementById('error').textContent = e.message; document.body.dataset.ready = 'error'; });
