// The alarms page (loaded from /assets/: the pages hold no inline script).
const { api, apiPage, header, esc, val, time, t, label, alarmName, ready } = window.seguard;
header('/alarms');
// The URL of the next (older) page of the list, from the API's Link header.
let next = null;
const row = a => `
      <tr class="sev-${esc(a.severity)}" data-alarm="${esc(a.id)}">
        <td>${time(a.raised)}${a.cleared ? '<br><small>' + esc(t('alarms.cleared', { time: time(a.cleared) })) + '</small>' : ''}</td>
        <td><a class="equipment" href="/equipment/${esc(encodeURIComponent(a.gateway))}/${esc(encodeURIComponent(a.equipment))}">${val(a.equipment)}</a><br><small>${esc(label('kind', a.kind))} · ${val(a.gateway)}</small></td>
        <td>${a.trapped ? `<b class="trapped">${esc(t('alarms.trapped'))}</b> ` : ''}${alarmName(a.rule) ? `<b class="name">${esc(alarmName(a.rule))}</b><br>` : ''}${val(a.message)}<br><small>${val(a.rule)} · <a href="#" class="timeline">${esc(t('alarms.timeline'))}</a></small><div class="tl"></div></td>
        <td>${esc(label('severity', a.severity))}</td><td class="state">${esc(label('alarmstate', a.state))}</td>
        <td>${val(a.using_unit)}<br><small>${val(a.address)}</small></td>
        <td class="ack">${a.acked ? `${val(a.acked_by)}, ${time(a.acked)}<br><small>${val(a.ack_comment)}</small>`
          : `<input class="comment" placeholder="${esc(t('alarms.comment'))}" aria-label="${esc(t('alarms.comment_label'))}" size="14"> <button class="ack-button">${esc(t('alarms.acknowledge'))}</button>`}</td>
      </tr>`;
// Loads the first page of the filtered list, or with `older` appends the next page.
async function load(older) {
  const q = new URLSearchParams(new FormData(document.getElementById('filters'))).toString();
  try {
    const page = await apiPage(older && next ? next : '/api/v1/alarms?' + q);
    const rows = document.getElementById('rows');
    if (older) rows.insertAdjacentHTML('beforeend', page.items.map(row).join(''));
    else rows.innerHTML = page.items.map(row).join('') || `<tr><td colspan="7">${esc(t('alarms.none'))}</td></tr>`;
    next = page.next;
    document.getElementById('more').hidden = !next;
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
document.getElementById('more').addEventListener('click', () => load(true));
document.getElementById('filters').addEventListener('submit', e => { e.preventDefault(); load(); });
document.getElementById('rows').addEventListener('click', async e => {
  const row = e.target.closest('tr'); if (!row) return;
  if (e.target.classList.contains('ack-button')) {
    const comment = row.querySelector('.comment').value;
    try { await api(`/api/v1/alarms/${row.dataset.alarm}/ack`, { method: 'POST', body: { comment } }); await load(); }
    catch (err) { document.getElementById('error').textContent = t('error.prefix', { message: err.message }); }
  }
  if (e.target.classList.contains('timeline')) {
    e.preventDefault();
    const events = await api(`/api/v1/alarms/${row.dataset.alarm}/timeline`);
    row.querySelector('.tl').innerHTML = '<ol>' + events.map(v => `<li>${time(v.time)} ${esc(label('transition', v.transition))}: ${val(v.message)} <small>(${esc(t('alarms.via', { source: v.source, time: time(v.received) }))})</small></li>`).join('') + '</ol>';
  }
});
ready.then(() => load());
