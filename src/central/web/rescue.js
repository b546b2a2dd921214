// The rescue page (loaded from /assets/: the pages hold no inline script).
const { esc, time } = window.seguard;
const id = location.pathname.split('/').pop();
const link = new URLSearchParams(location.search).get('t');
const ORDER = ['occurred', 'responded', 'on_site', 'completed'];
const LABEL = { occurred: 'Waiting for response', responded: 'Responded', on_site: 'On site', completed: 'Completed', false_alarm: 'False alarm' };
async function call(path, options) {
  options = options || {};
  // With the dispatch's link token, or else signed in as a rescue team (the session cookie).
  const headers = { 'Content-Type': 'application/json' };
  const url = path + (link ? '?t=' + encodeURIComponent(link) : '');
  const response = await fetch(url, Object.assign({}, options, { headers, credentials: 'same-origin' }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function show(d) {
  document.getElementById('title').textContent = `Dispatch ${d.order_no}`;
  const s = document.getElementById('status'); s.textContent = LABEL[d.status]; s.dataset.status = d.status;
  const m = d.maintenance_unit || {};
  const rows = [['Fault', `${d.fault_name} (${d.fault_type})`], ['Time', time(d.time)], ['Elevator', d.elevator.name],
    ['Registration code', d.elevator.registration_code], ['Rescue code', d.elevator.rescue_code], ['Address', d.address],
    ['Using unit', d.using_unit], ['Maintenance unit', `${m.name || ''} ${m.phone || ''}`], ['Called unit', `${d.unit.name} ${d.unit.phone}`],
    ['Next deadline', d.next_check ? time(d.next_check) : '–']];
  document.getElementById('fields').innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('');
  const access = d.access || {};
  for (const b of document.querySelectorAll('.steps button')) {
    const step = b.dataset.step;
    b.disabled = !access.can_act || (step !== 'false_alarm' && ORDER.indexOf(step) <= ORDER.indexOf(d.status));
  }
  const readOnly = document.getElementById('read-only');
  readOnly.textContent = access.can_act ? '' : `Read only: ${access.reason}`;
  document.getElementById('steps').innerHTML = (d.steps || []).map(x => `<li>${time(x.at)} <b>${esc(x.step)}</b> ${esc(x.unit)} · ${esc(x.actor)}${x.note ? ': ' + esc(x.note) : ''}</li>`).join('');
  document.body.dataset.ready = 'true';
}
async function load() {
  try { show(await call(`/api/v1/dispatches/${id}`)); } catch (e) { document.getElementById('error').textContent = e.message; }
}
for (const b of document.querySelectorAll('.steps button')) {
  b.addEventListener('click', async () => {
    try {
      await call(`/api/v1/dispatches/${id}/status`, { method: 'POST', body: JSON.stringify({ status: b.dataset.step, note: document.getElementById('note').value }) });
      document.getElementById('note').value = '';
      await load();
    } catch (e) { document.getElementById('error').textContent = e.message; }
  });
}
load();
