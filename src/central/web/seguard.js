// Shared by the dashboard pages: API calls, the header with sign-out and the language switch,
// the text catalogue (`/assets/i18n.js`, from i18n/*.json), times in central's zone, numbers,
// and escaping.
// Signing in: a `?token=` link is exchanged by central for an HttpOnly cookie (the page is
// reloaded without the token), so no script here ever holds a token.
(function () {
  // Pages of older versions kept the token in local storage: forget it.
  try { localStorage.removeItem('seguard.token'); } catch (e) { /* storage disabled */ }
  const CATALOGUES = window.SEGUARD_I18N || {};
  const LANG_KEY = 'seguard.lang';
  let stored = null;
  try { stored = localStorage.getItem(LANG_KEY); } catch (e) { /* storage disabled */ }
  // Simplified Chinese unless English was chosen on this browser.
  const lang = stored && CATALOGUES[stored] ? stored : 'zh-CN';
  const texts = CATALOGUES[lang] || {};
  document.documentElement.lang = lang;
  // The text of `key` in the chosen language, with `{name}` replaced from `params`.
  function t(key, params) {
    const text = key in texts ? texts[key] : key;
    return text.replace(/\{(\w+)\}/g, (m, name) => (params && name in params ? String(params[name]) : m));
  }
  // The catalogue's name for a value the server sends as a code (`kind.elevator`), or the value.
  function label(group, value) {
    const key = group + '.' + value;
    return key in texts ? texts[key] : String(value == null ? '' : value);
  }
  // The name of an alarm from its rule id's last part (`lift-1.trapped` → `trapped`), or ''.
  function alarmName(rule) {
    const key = 'alarmname.' + String(rule || '').split('.').pop();
    return key in texts ? texts[key] : '';
  }
  function setLang(next) {
    try { localStorage.setItem(LANG_KEY, next); } catch (e) { /* storage disabled */ }
    location.reload();
  }
  // A button that switches to the other language; the page reloads in it.
  function langButton() {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'lang'; b.id = 'lang';
    b.textContent = t('lang.switch'); b.setAttribute('aria-label', t('lang.switch_label'));
    b.lang = lang === 'zh-CN' ? 'en' : 'zh-CN';
    b.addEventListener('click', () => setLang(lang === 'zh-CN' ? 'en' : 'zh-CN'));
    return b;
  }
  // Fills the page's static texts: `data-i18n` (text), `data-i18n-placeholder`,
  // `data-i18n-label` (aria-label).
  function translate(root) {
    for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    for (const e of root.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
    for (const e of root.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
  }
  translate(document);

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
    h.innerHTML = [['/', 'nav.map'], ['/alarms', 'nav.alarms'], ['/board', 'nav.board'], ['/indicators', 'nav.indicators'], ['/risk', 'nav.risk'], ['/scorecards', 'nav.scorecards'], ['/hazards', 'nav.hazards']]
      .map(([href, key]) => `<a href="${href}" class="${href === here ? 'here' : ''}">${esc(t(key))}</a>`).join('') +
      `<strong class="brand">${esc(t('brand'))}</strong>` +
      // Search by registration code, 96333 code, name or address (the search page).
      `<form class="search" role="search" method="get" action="/search"><input type="search" name="q" id="search-q" aria-label="${esc(t('search.label'))}" placeholder="${esc(t('search.placeholder'))}"><button type="submit">${esc(t('search.submit'))}</button></form>` +
      `<span class="who" id="who"></span>` +
      `<form method="post" action="/signout" id="signout" hidden><button type="submit">${esc(t('nav.signout'))}</button></form>`;
    h.appendChild(langButton());
    document.body.prepend(h);
    api('/api/v1/whoami').then(w => {
      // A using unit's own overview, next to the map.
      if (w.role === 'equipment_unit') {
        h.querySelector('a').insertAdjacentHTML('afterend', `<a href="/unit" class="${here === '/unit' ? 'here' : ''}">${esc(t('nav.unit'))}</a>`);
      }
      document.getElementById('who').innerHTML = esc(t('who.is', { name: '\u0000', role: label('role', w.role) })).replace('\u0000', val(w.name));
      document.getElementById('signout').hidden = false;
    }).catch(() => { document.getElementById('who').textContent = t('who.none'); });
  }
  const esc = s => String(s == null ? '' : s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  // A value from the records (a name, an address, a code), escaped and marked as data: it is
  // shown as recorded, in whatever language it was written.
  const val = s => `<span class="v">${esc(s)}</span>`;

  // Times: 24-hour `YYYY-MM-DD HH:mm:ss` in the zone central is configured for.
  let zone = 'Asia/Shanghai';
  let clock = null;
  function formatter() {
    const options = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
    try { return new Intl.DateTimeFormat('en-CA', Object.assign({ timeZone: zone }, options)); }
    catch (e) { return new Intl.DateTimeFormat('en-CA', options); }
  }
  function time(s) {
    if (!s) return '';
    const d = new Date(s);
    if (isNaN(d)) return String(s);
    clock = clock || formatter();
    const p = Object.fromEntries(clock.formatToParts(d).map(x => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }
  // Numbers and percentages in the language's convention (zh-CN: 1,234.5 and 12.5%).
  const num = (n, digits) => n == null ? t('dash') : new Intl.NumberFormat(lang, { minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0 }).format(n);
  const pct = r => r == null ? t('dash') : new Intl.NumberFormat(lang, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(r);
  // Elapsed time from `since` to `until` (ms, default now): `12 分 05 秒`.
  function elapsed(since, until) {
    const total = Math.max(0, Math.floor(((until || Date.now()) - new Date(since).getTime()) / 1000));
    const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = String(total % 60).padStart(2, '0');
    return h ? t('elapsed.hms', { h, m: String(m).padStart(2, '0'), s }) : t('elapsed.ms', { m, s });
  }
  // The page's settings from central (its time zone, the dispatch deadlines), before the page
  // draws any time; `ready` resolves to them.
  const ready = fetch('/api/v1/ui', { credentials: 'same-origin' })
    .then(r => r.ok ? r.json() : {})
    .then(ui => { if (ui.time_zone) { zone = ui.time_zone; clock = null; } return ui; })
    .catch(() => ({}));
  // Downloads `blob` as `name` (CSV tables, PNG charts), without leaving the page.
  function download(name, blob) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
  // A table as CSV: UTF-8 with a byte-order mark (so Excel reads the Chinese), CRLF lines, the
  // cells' visible text, quoted where needed.
  function csv(table) {
    const cell = c => { const v = c.innerText.replace(/\s+/g, ' ').trim(); return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v; };
    const lines = [...table.rows].map(r => [...r.cells].map(cell).join(','));
    return new Blob(['\uFEFF' + lines.join('\r\n') + '\r\n'], { type: 'text/csv;charset=utf-8' });
  }
  // A button that exports `table` as `{name}.csv`, placed before the table.
  function exportable(table, name) {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'export'; b.dataset.export = name;
    b.textContent = t('export.csv');
    b.addEventListener('click', () => download(name + '.csv', csv(table)));
    table.before(b);
    return b;
  }
  // The basemap of central's `/api/v1/map/config` on a Leaflet map: the tiles (with a preset's
  // subdomains) and a label layer over them when the preset has one. Returns the layers, the
  // tiles first; none without a tile server.
  function basemap(map, config) {
    if (!config.tile_url || !window.L) return [];
    const options = { attribution: config.tile_attribution, maxZoom: 19 };
    if (config.tile_subdomains && config.tile_subdomains.length) options.subdomains = config.tile_subdomains;
    const layers = [L.tileLayer(config.tile_url, options)];
    if (config.label_url) layers.push(L.tileLayer(config.label_url, Object.assign({}, options, { attribution: '' })));
    for (const l of layers) l.addTo(map);
    return layers;
  }
  window.seguard = { api, apiPage, header, langButton, esc, val, time, num, pct, elapsed, t, label, alarmName, lang, ready, download, csv, exportable, basemap };
})();
