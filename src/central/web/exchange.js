// The upward exchange's status (loaded from /assets/: the pages hold no inline script): what
// waits in central's queue for the higher-level platform, what was confirmed, the last error.
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
    ];
    document.getElementById('cards').innerHTML = cards.map(([title, v, sub]) => `<div class="card"><div>${esc(title)}</div><div class="value">${v}</div><div class="sub">${sub}</div></div>`).join('');
    document.getElementById('kinds').innerHTML = Object.entries(q.by_kind).map(([k, [p, s2]]) => `<tr><td>${esc(label('exkind', k))}</td><td>${esc(num(p))}</td><td>${esc(num(s2))}</td></tr>`).join('');
    document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); }
  document.body.dataset.ready = 'true';
}
window.seguard.ready.then(load);
setInterval(load, 5000);
