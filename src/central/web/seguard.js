// Shared by the dashboard pages: the role token (from ?token=, kept in localStorage), API calls,
// and the header.
(function () {
  const params = new URLSearchParams(location.search);
  if (params.get('token')) localStorage.setItem('seguard.token', params.get('token'));
  const token = () => localStorage.getItem('seguard.token') || '';
  async function api(path, options) {
    options = options || {};
    const headers = Object.assign({ 'Authorization': 'Bearer ' + token() }, options.headers || {});
    if (options.body && typeof options.body !== 'string') {
      options.body = JSON.stringify(options.body);
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  function header(here) {
    const h = document.createElement('header');
    h.innerHTML = [['/', 'Map'], ['/alarms', 'Alarms'], ['/indicators', 'Indicators']]
      .map(([href, name]) => `<a href="${href}" class="${href === here ? 'here' : ''}">${name}</a>`).join('') +
      '<strong style="margin-left:1em">seguard central</strong><span class="who" id="who"></span>';
    document.body.prepend(h);
    api('/api/v1/whoami').then(w => { document.getElementById('who').textContent = `${w.name} (${w.role})`; })
      .catch(() => { document.getElementById('who').textContent = 'not signed in: open with ?token=…'; });
  }
  const esc = s => String(s == null ? '' : s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const time = s => s ? new Date(s).toLocaleString() : '';
  window.seguard = { api, header, esc, time, token };
})();
