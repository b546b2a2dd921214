// The dispatch board (loaded from /assets/: the pages hold no inline script): every open
// dispatch with its elapsed time and the response and arrival deadlines (counted from the
// dispatch, as the indicators count them) coloured as they approach, polled every 5 s and
// counted every second; a new trapped dispatch flashes its row and the banner. Closed ones below.
const { api, header, esc, val, time, t, label, elapsed, ready } = window.seguard;
header('/board');
const CLOSED = ['completed', 'false_alarm'];
let limits = { respond: 180, arrive: 1800 };
let dispatches = [];
let situations = [];
let seen = null;
const ms = s => new Date(s).getTime();
const mmss = total => { const s = Math.abs(Math.round(total / 1000)); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`; };

// One deadline cell: met (with the time it was met), pending (time left; `soon` in the last
// third), or late (time over).
function deadline(d, kind, doneAt) {
  const span = 1000 * (kind === 'respond' ? limits.respond : limits.arrive);
  const due = ms(d.created) + span;
  if (doneAt) {
    const ok = ms(doneAt) <= due;
    return { state: ok ? 'met' : 'missed', text: t(ok ? 'board.met' : 'board.missed', { time: time(doneAt).slice(11) }) };
  }
  const left = due - Date.now();
  if (left < 0) return { state: 'late', text: t('board.late', { over: mmss(left) }) };
  return { state: left <= span / 3 ? 'soon' : 'pending', text: t('board.left', { left: mmss(left) }) };
}
function cell(d, kind, doneAt) {
  const x = deadline(d, kind, doneAt);
  return `<td class="deadline ${x.state}" data-deadline="${kind}" data-state="${x.state}">${esc(x.text)}</td>`;
}
// A regional alarm flood: one block with its counts and its dispatches in the order the server
// gives (who is inside and how long); they leave the open table below.
function drawSituations() {
  document.getElementById('situations').innerHTML = situations.length ? `<h2>${esc(t('board.situations'))}</h2>` + situations.map(s => {
    const open = s.dispatches.filter(d => !CLOSED.includes(d.status));
    return `<section class="situation" data-situation="${esc(s.id)}" data-open="${open.length}">
      <h3>${esc(t('board.situation', { alarms: s.alarms, trapped: s.dispatches.length, open: open.length, time: time(s.started) }))}${s.ended ? ' · ' + esc(t('board.situation_ended', { time: time(s.ended) })) : ''}</h3>
      <p><small>${esc(t('board.situation_order'))} ${esc(t('board.situation_empty', { n: Math.max(0, s.alarms - s.dispatches.length) }))}</small></p>
      <table><tbody>${open.map(d => `<tr data-dispatch="${esc(d.id)}"><td><a href="/rescue/${encodeURIComponent(d.id)}">${val(d.order_no)}</a></td>
        <td>${val(d.elevator.name)}</td><td>${val(d.address)}</td><td>${val(d.unit.name)}</td><td>${esc(label('status', d.status))}</td>
        <td class="elapsed">${esc(elapsed(d.time))}</td>${cell(d, 'respond', d.responded_at)}${cell(d, 'arrive', d.on_site_at)}</tr>`).join('')}</tbody></table></section>`;
  }).join('') : '';
}
function draw() {
  drawSituations();
  const grouped = new Set(situations.flatMap(s => s.dispatches.map(d => d.id)));
  const open = dispatches.filter(d => !CLOSED.includes(d.status) && !grouped.has(d.id));
  const closed = dispatches.filter(d => CLOSED.includes(d.status));
  document.getElementById('open').innerHTML = open.map(d => `
    <tr data-dispatch="${esc(d.id)}" class="${seen && seen.fresh.has(d.id) ? 'fresh' : ''}">
      <td><a href="/rescue/${encodeURIComponent(d.id)}">${val(d.order_no)}</a></td>
      <td>${val(d.elevator.name)}<br><small>${val(d.elevator.registration_code)}</small></td>
      <td>${val(d.address)}</td>
      <td>${val(d.unit.name)}<br><small>${esc(label('tier', d.tier))}</small></td>
      <td>${esc(label('status', d.status))}</td>
      <td class="elapsed">${esc(elapsed(d.time))}</td>
      ${cell(d, 'respond', d.responded_at)}${cell(d, 'arrive', d.on_site_at)}
    </tr>`).join('') || `<tr><td colspan="8">${esc(t('board.none_open'))}</td></tr>`;
  document.getElementById('closed').innerHTML = closed.map(d => `
    <tr data-dispatch="${esc(d.id)}">
      <td><a href="/rescue/${encodeURIComponent(d.id)}">${val(d.order_no)}</a></td>
      <td>${val(d.elevator.name)}</td><td>${val(d.address)}</td><td>${esc(label('status', d.status))}</td>
      <td>${esc(time(d.time))}</td><td>${esc(time(d.responded_at))}</td><td>${esc(time(d.on_site_at))}</td><td>${esc(time(d.closed_at))}</td>
    </tr>`).join('') || `<tr><td colspan="8">${esc(t('board.none_closed'))}</td></tr>`;
  document.body.dataset.open = String(open.length);
}
// A short tone for a new trapped dispatch, where the browser lets a page play one.
function chime() {
  try {
    const ctx = new AudioContext(), osc = ctx.createOscillator();
    osc.frequency.value = 880; osc.connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.3);
  } catch (e) { /* no audio */ }
}
async function poll() {
  try {
    // The open dispatches (the newest 500) and the last 50 closed: two pages, not the history.
    const [open, closed, s] = await Promise.all([api('/api/v1/dispatches?state=open&limit=500'), api('/api/v1/dispatches?state=closed&limit=50'), api('/api/v1/situations')]);
    dispatches = open.concat(closed); situations = s;
    const ids = new Set(dispatches.filter(d => !CLOSED.includes(d.status)).map(d => d.id));
    // The first load only learns what is open; later ones flag what is new.
    const fresh = seen ? new Set([...ids].filter(id => !seen.ids.has(id))) : new Set();
    seen = { ids, fresh };
    const banner = document.getElementById('new-trapped');
    if (fresh.size) { banner.hidden = false; banner.textContent = t('board.new', { n: fresh.size }); chime(); }
    draw();
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
ready.then(async ui => {
  if (ui.respond_within_s) limits = { respond: ui.respond_within_s, arrive: ui.arrive_within_s };
  await poll();
  setInterval(poll, 5000);
  setInterval(draw, 1000);
});
