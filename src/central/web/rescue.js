// The rescue page (loaded from /assets/: the pages hold no inline script). Opened on a phone
// from the dispatch's link: how to get there, whom to call, how long the passengers have been
// trapped, and the steps. A step taken without a connection is kept in this browser and sent
// when the connection returns; central refuses a step it already has (409), so a step sent
// twice is recorded once.
const { esc, val, time, t, label, elapsed, langButton, ready, basemap } = window.seguard;
document.getElementById('lang-slot').appendChild(langButton());
const id = location.pathname.split('/').pop();
const ORDER = ['occurred', 'responded', 'on_site', 'completed'];
const CLOSED = ['completed', 'false_alarm'];
const QUEUE_KEY = 'seguard.rescue.queue.' + id;
let current = null;

// A request to central, with the cookie of the dispatch's link (central took `?t=` out of the
// address and set it) or else the session cookie. Throws `offline` when the request never
// reached central, or an Error with the HTTP status.
async function call(path, options) {
  let response;
  try {
    response = await fetch(path, Object.assign({}, options || {}, { headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin' }));
  } catch (e) {
    throw Object.assign(new Error(t('error.offline')), { offline: true });
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
  return body;
}

function queue() { try { return JSON.parse(localStorage.getItem(QUEUE_KEY)) || []; } catch (e) { return []; } }
function setQueue(q) { try { localStorage.setItem(QUEUE_KEY, JSON.stringify(q)); } catch (e) { /* storage disabled */ } showQueue(); }
function showQueue() {
  const q = queue();
  document.getElementById('queued').textContent = q.map(s => t('rescue.queued', { step: label('step', s.status) })).join(' ');
  document.body.dataset.queued = String(q.length);
}

// A small map with the lift's position, in the basemap's system (GCJ-02 for AMap-style tiles),
// drawn once; on the plain base when no tile server is configured.
let placed = false;
async function place(position) {
  if (placed || !window.L || window.SEGUARD_NO_LEAFLET) return;
  placed = true;
  const config = await fetch('/api/v1/map/config').then(r => r.json()).catch(() => ({}));
  const at = config.tile_crs === 'GCJ-02' ? position.gcj02 : position.wgs84;
  const where = document.getElementById('where');
  where.hidden = false;
  const map = L.map(where, { zoomControl: false, attributionControl: !!config.tile_url }).setView(at, 17);
  if (!basemap(map, config).length) where.classList.add('offline-base');
  L.circleMarker(at, { radius: 10, color: '#fff', weight: 3, fillColor: '#d62828', fillOpacity: 1 }).addTo(map);
  where.dataset.at = at.join(',');
}
const tel = p => `tel:${p.replace(/[^0-9+]/g, '')}`;
function show(d) {
  current = d;
  const r = d.rescue || {};
  document.getElementById('title').textContent = t('rescue.title', { order: d.order_no });
  const s = document.getElementById('status'); s.textContent = label('status', d.status); s.dataset.status = d.status;
  // Navigation: AMap takes GCJ-02, Baidu BD-09 (both lat,lon here; AMap's URI wants lon,lat).
  const nav = document.getElementById('nav');
  if (r.position) {
    const [gLat, gLon] = r.position.gcj02, [bLat, bLon] = r.position.bd09;
    const name = encodeURIComponent(d.elevator.name + ' ' + d.address);
    const amap = `https://uri.amap.com/navigation?to=${gLon},${gLat},${name}&mode=car&coordinate=gaode&callnative=1`;
    const baidu = `https://api.map.baidu.com/direction?destination=latlng:${bLat},${bLon}|name:${name}&mode=driving&coord_type=bd09ll&output=html&src=seguard`;
    nav.innerHTML = `<a class="big" id="nav-amap" href="${esc(amap)}">${esc(t('rescue.amap'))}</a>` +
      `<a class="big" id="nav-baidu" href="${esc(baidu)}">${esc(t('rescue.baidu'))}</a>`;
    place(r.position);
  } else nav.textContent = t('rescue.no_position');
  const phones = (r.phones || []);
  document.getElementById('phones').innerHTML = phones.length
    ? phones.map(p => `<a class="big tel" data-role="${esc(p.role)}" href="${esc(tel(p.phone))}">${esc(t('rescue.call_as', { role: t('rescue.call_' + p.role) }))}${val(p.name)} ${val(p.phone)}</a>`).join('')
    : esc(t('rescue.no_phone'));
  const m = d.maintenance_unit || {};
  const rows = [
    // The fault's name by its GB/T 38656 code from the catalogue; central's name otherwise.
    ['field.fault', label('fault', d.fault_type) !== String(d.fault_type) ? esc(`${label('fault', d.fault_type)} (${d.fault_type})`) : val(`${d.fault_name} (${d.fault_type})`)],
    ['field.floor', r.floor ? val(r.floor) : esc(t('dash'))],
    ['field.tier', esc(label('tier', r.tier))],
    ['field.time', esc(time(d.time))],
    ['field.elevator', val(d.elevator.name)],
    ['field.registration_code', val(d.elevator.registration_code)],
    ['field.rescue_code', val(d.elevator.rescue_code)],
    ['field.address', val(d.address)],
    ['field.using_unit', val(d.using_unit)],
    ['field.maintenance_unit', val(`${m.name || ''} ${m.phone || ''}`)],
    ['field.called_unit', val(`${d.unit.name} ${d.unit.phone}`)],
    ['field.next_deadline', d.next_check ? esc(time(d.next_check)) : esc(t('dash'))],
  ];
  document.getElementById('fields').innerHTML = rows.map(([k, v]) => `<dt>${esc(t(k))}</dt><dd>${v}</dd>`).join('');
  const access = d.access || {};
  const pending = queue().map(x => x.status);
  for (const b of document.querySelectorAll('.steps button')) {
    const step = b.dataset.step;
    b.disabled = !access.can_act || pending.includes(step) || (step !== 'false_alarm' && ORDER.indexOf(step) <= ORDER.indexOf(d.status));
  }
  // Why this page only reads, in the page's language (central's reason is in English).
  const why = access.can_act ? '' : CLOSED.includes(d.status) ? 'rescue.read_only_closed'
    : !access.unit ? 'rescue.read_only_regulator' : 'rescue.read_only_escalated';
  const readOnly = document.getElementById('read-only');
  readOnly.textContent = why ? t(why) : ''; readOnly.dataset.reason = why;
  document.getElementById('steps').innerHTML = (d.steps || []).map(x => `<li>${esc(time(x.at))} <b>${esc(label('steplog', x.step))}</b> ${val(t('rescue.step_by', { unit: x.unit, actor: x.actor }))}${x.note ? ': ' + val(x.note) : ''}</li>`).join('');
  tick();
  showQueue();
  document.body.dataset.ready = 'true';
}
// Time since the passengers were trapped, live; it stops when the dispatch closes.
function tick() {
  if (!current) return;
  const end = CLOSED.includes(current.status) && current.closed_at ? new Date(current.closed_at).getTime() : null;
  document.getElementById('elapsed').textContent = end ? elapsed(current.time, end) : elapsed(current.time);
}
setInterval(tick, 1000);

async function load() {
  try { show(await call(`/api/v1/dispatches/${id}`)); document.getElementById('error').textContent = ''; }
  catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
}
// Sends the kept steps in order, each once: removed when central answered (taken, or refused
// because it already has it); kept when central could not be reached.
let flushing = false;
async function flush() {
  if (flushing) return; flushing = true;
  try {
    let q = queue();
    while (q.length) {
      const step = q[0];
      try {
        await call(`/api/v1/dispatches/${id}/status`, { method: 'POST', body: JSON.stringify({ status: step.status, note: step.note }) });
        document.getElementById('error').textContent = '';
        if (step.queued) document.getElementById('error').textContent = t('rescue.sent', { step: label('step', step.status) });
      } catch (e) {
        // Unreachable, or no longer signed in (cookie gone): keep the steps until the link is
        // opened again; they are not central's refusal.
        if (e.offline || e.status === 401) {
          setQueue(q.map(x => Object.assign(x, { queued: true })));
          if (e.status === 401) document.getElementById('error').textContent = t('rescue.refused', { step: label('step', step.status), reason: e.message });
          break;
        }
        // 409: central already has this step (sent before the connection dropped) or it no
        // longer fits; either way it is not sent again. The reload shows which.
        document.getElementById('error').textContent = e.status === 409 && current && ORDER.indexOf(current.status) >= ORDER.indexOf(step.status)
          ? '' : t('rescue.refused', { step: label('step', step.status), reason: e.message });
      }
      q = queue().slice(1); setQueue(q);
    }
    await load();
  } finally { flushing = false; }
}
for (const b of document.querySelectorAll('.steps button')) {
  b.addEventListener('click', async () => {
    const note = document.getElementById('note');
    setQueue(queue().concat([{ status: b.dataset.step, note: note.value, queued: false }]));
    note.value = '';
    b.disabled = true;
    await flush();
  });
}
window.addEventListener('online', () => flush());
// Also retry now and then: `online` does not fire when the network is up but central is not.
setInterval(() => { if (queue().length) flush(); }, 10000);
ready.then(() => (queue().length ? flush() : load()));
