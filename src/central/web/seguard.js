// Shared by the dashboard pages: API calls, the header with sign-out, and escaping.
// Signing in: a `?token=` link is exchanged by central for an HttpOnly cookie (the page is
// reloaded without the token), so no script here ever holds a token.
(function () {
  // Pages of older versions kept the token in local storage: forget it.
  try { localStorage.removeItem('seguard.token'); } catch (e) { /* storage disabled */ }
  async function request(path, options) {
    options = options || {};
    const headers = Object.assign({}, options.headers || {});
    if (options.body && typeof options.body !== 'string') {
      options.body = JSON.stringify(options.body);
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(path, Object.assign({}, options, { headers, credentials: 'same-origin' }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return { body, response };
  }
  async function api(path, options) {
    return (await request(path, options)).body;
  }
  // A list and the URL of its next page (`Link: <…>; rel="next"`), or null.
  async function apiPage(path) {
    const { body, response } = await request(path);
    const link = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('Link') || '');
    return { items: body, next: link ? link[1] : null };
  }
  function header(here) {
    const h = document.createElement('header');
    h.innerHTML = [['/', 'Map'], ['/alarms', 'Alarms'], ['/indicators', 'Indicators']]
      .map(([href, name]) => `<a href="${href}" class="${href === here ? 'here' : ''}">${name}</a>`).join('') +
      '<strong class="brand">seguard central</strong><span class="who" id="who"></span>' +
      '<form method="post" action="/signout" id="signout" hidden><button type="submit">Sign out</button></form>';
    document.body.prepend(h);
    api('/api/v1/whoami').then(w => {
      document.getElementById('who').textContent = `${w.name} (${w.role})`;
      document.getElementById('signout').hidden = false;
    }).catch(() => { document.getElementById('who').textContent = 'not signed in: open with ?token=…'; });
  }
  const esc = s => String(s == null ? '' : s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const time = s => s ? new Date(s).toLocaleString() : '';
  window.seguard = { api, apiPage, header, esc, time };
})();
