// The upward exchange's status (loaded from /assets/: the pages hold no inline script): what
// waits in central's queue for the higher-level platform, what was confirmed, the last error,
// and the records the platform refused, each with a button to re-queue it.
const { api, header, esc, val, time, t, num, label } = window.seguard;
header('/exchange');
async function load() {
  try {
    const s = await api('/api/v1/exchange/status');
    const q = s.queue;
    const cards = [
      [t('ex.endpoint'), s.settings ? val(s.settings.endpoint) : esc(t('ex.off')), s.settings ? esc(t('ex.area', { code: s.settings.area_code })) : ''],
      [t('ex.pending'), esc(num(q.pending)), q.oldest_pending ? esc(t('ex.oldest', { time: time(q.oldest_pending) })) : ''],
      [t('ex.sent'), esc(num(q.sent)), ''],
      [t('ex.failing'), esc(num(q.failing)), q.last_error ? val(q.last_error) : ''],
      [t('ex.refused'), esc(num(q.refused)), ''],
    ];
    // The endpoint is a URL, not a count: it wraps in text size rather than run out of its card.
    document.getElementById('cards').innerHTML = cards.map(([title, v, sub], i) => `<div class="card"><div>${esc(title)}</div><div class="value${i === 0 ? ' text' : ''}">${v}</div><div class="sub">${sub}</div></div>`).join('');
    document.getElementById('kinds').innerHTML = Object.entries(q.by_kind).map(([k, [p, s2, r]]) => `<tr><td>${esc(label('exkind', k))}</td><td>${esc(num(p))}</td><td>${esc(num(s2))}</td><td>${esc(num(r))}</td></tr>`).join('');
    document.getElementById('refused').innerHTML = q.refused_records.map(r => `<tr data-key="${esc(r.key)}"><td>${val(r.key)}</td><td>${esc(label('exkind', r.kind))}</td><td>${esc(time(r.refused))}</td><td>${esc(r.status)}</td><td>${val(r.answer)}</td><td><button type="button" class="requeue">${esc(t('ex.requeue'))}</button></td></tr>`).join('');
    document.getElementById('none-refused').hidden = q.refused_records.length > 0;
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
document.getElementById('refused').addEventListener('click', async e => {
  const row = e.target.closest('tr');
  if (!row || !e.target.classList.contains('requeue')) return;
  try { await api('/api/v1/exchange/requeue', { method: 'POST', body: { key: row.dataset.key } }); await load(); }
  catch (err) { document.getElementById('error').textContent = t('error.prefix', { message: err.message }); }
});
window.seguard.ready.then(load);
setInterval(load, 5000);
