// The alarms page (loaded from /assets/: the pages hold no inline script).
const { api, apiPage, header, esc, time } = window.seguard;
header('/alarms');
// The URL of the next (older) page of the list, from the API's Link header.
let next = null;
const row = a => `
      <tr class="sev-${a.severity}" data-alarm="${esc(a.id)}">
        <td>${time(a.raised)}${a.cleared ? '<br><small>cleared ' + time(a.cleared) + '</small>' : ''}</td>
        <td>${esc(a.equipment)}<br><small>${esc(a.kind)} · ${esc(a.gateway)}</small></td>
        <td>${a.trapped ? '<b class="trapped">TRAPPED</b> ' : ''}${esc(a.message)}<br><small>${esc(a.rule)} · <a href="#" class="timeline">timeline</a></small><div class="tl"></div></td>
        <td>${esc(a.severity)}</td><td class="state">${esc(a.state)}</td>
        <td>${esc(a.using_unit)}<br><small>${esc(a.address)}</small></td>
        <td class="ack">${a.acked ? `${esc(a.acked_by)}, ${time(a.acked)}<br><small>${esc(a.ack_comment)}</small>`
          : `<input class="comment" placeholder="comment" size="14"> <button class="ack-button">Acknowledge</button>`}</td>
      </tr>`;
// Loads the first page of the filtered list, or with `older` appends the next page.
async function load(older) {
  const q = new URLSearchParams(new FormData(document.getElementById('filters'))).toString();
  try {
    const page = await apiPage(older && next ? next : '/api/v1/alarms?' + q);
    const rows = document.getElementById('rows');
    if (older) rows.insertAdjacentHTML('beforeend', page.items.map(row).join(''));
    else rows.innerHTML = page.items.map(row).join('') || '<tr><td colspan="7">No alarms match.</td></tr>';
    next = page.next;
    document.getElementById('more').hidden = !next;
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = e.message; }
  document.body.dataset.ready = 'true';
}
document.getElementById('more').addEventListener('click', () => load(true));
document.getElementById('filters').addEventListener('submit', e => { e.preventDefault(); load(); });
document.getElementById('rows').addEventListener('click', async e => {
  const row = e.target.closest('tr'); if (!row) return;
  if (e.target.classList.contains('ack-button')) {
    const comment = row.querySelector('.comment').value;
    try { await api(`/api/v1/alarms/${row.dataset.alarm}/ack`, { method: 'POST', body: { comment } }); await load(); }
    catch (err) { document.getElementById('error').textContent = err.message; }
  }
  if (e.target.classList.contains('timeline')) {
    e.preventDefault();
    const events = await api(`/api/v1/alarms/${row.dataset.alarm}/timeline`);
    row.querySelector('.tl').innerHTML = '<ol>' + events.map(v => `<li>${time(v.time)} ${esc(v.transition)}: ${esc(v.message)} <small>(via ${esc(v.source)}, received ${time(v.received)})</small></li>`).join('') + '</ol>';
  }
});
load();
