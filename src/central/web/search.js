// The search page (loaded from /assets/: the pages hold no inline script): equipment by
// registration code, 96333 code, name or address, from the header's search box. A query that
// is exactly one match's registration or 96333 code opens that equipment's page.
const { api, header, esc, val, t, label, exportable } = window.seguard;
header('/search');
const q = new URLSearchParams(location.search).get('q') || '';
document.getElementById('search-q').value = q;
const href = m => `/equipment/${encodeURIComponent(m.gateway)}/${encodeURIComponent(m.id)}`;
exportable(document.getElementById('matches'), 'search');
api('/api/v1/equipment/search?q=' + encodeURIComponent(q)).then(matches => {
  const exact = matches.filter(m => m.registration_code === q.trim() || m.rescue_code === q.trim());
  if (exact.length === 1) { location.replace(href(exact[0])); return; }
  document.getElementById('summary').innerHTML = q.trim() ? esc(t('search.found', { n: matches.length, q: '\u0000' })).replace('\u0000', val(q)) : esc(t('search.empty'));
  document.getElementById('rows').innerHTML = matches.map(m => `<tr>
      <td><a class="match" href="${esc(href(m))}">${val(m.name)}</a></td><td>${esc(label('kind', m.kind))}</td>
      <td>${val(m.registration_code)}</td><td>${val(m.rescue_code || '')}</td><td>${val(m.using_unit)}</td><td>${val(m.address)}</td></tr>`).join('');
  document.body.dataset.ready = 'true';
}).catch(e => { document.getElementById('error').textContent = t('error.prefix', { message: e.message }); document.body.dataset.ready = 'error'; });
