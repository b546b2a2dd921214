// The map page (loaded from /assets/: the pages hold no inline script).
const { api, header, esc, val, t, label, ready, basemap } = window.seguard;
header('/');
// The map fills the window below the header, however many lines the header wraps to (it grows
// when the signed-in name arrives).
let drawn = null;
function fitBelowHeader() {
  document.getElementById('map').style.top = document.querySelector('header').offsetHeight + 'px';
  if (drawn) drawn.invalidateSize();
}
fitBelowHeader();
new ResizeObserver(fitBelowHeader).observe(document.querySelector('header'));
const STATES = ['normal', 'alarm', 'trapped', 'offline', 'overdue'];
// The order in which a cluster shows the state of its markers: the one that needs help first.
const WORST_FIRST = ['trapped', 'alarm', 'offline', 'overdue', 'normal'];
const stateName = s => label('mapstate', s);
function notice(text) {
  const n = document.createElement('div'); n.className = 'notice'; n.id = 'notice'; n.textContent = text; document.body.appendChild(n);
}
function popup(e) {
  const r = e.record || {};
  const given = v => v !== undefined && v !== null && v !== '';
  // [catalogue key, HTML]; values from the records are marked as data (`val`).
  const rows = [
    ['field.state', `<span class="dot state-${esc(e.state)}"></span>${esc(stateName(e.state))}`],
    ['field.kind', esc(label('kind', e.kind))],
    ['field.registration_code', given(r.registration_code) && val(r.registration_code)],
    ['field.use_certificate', given(r.use_certificate) && val(r.use_certificate)],
    ['field.rescue_code', given(r.rescue_code) && val(r.rescue_code)],
    ['field.using_unit', given(e.using_unit) && val(e.using_unit)],
    ['field.maintenance_unit', r.maintenance_unit && val(`${r.maintenance_unit.name} ${r.maintenance_unit.phone || ''}`)],
    ['field.address', given(e.address) && val(e.address)],
    ['field.next_inspection', given(e.next_inspection) && val(e.next_inspection)],
    ['field.insured', e.insured != null && esc(t(e.insured ? 'yes' : 'no'))],
    ['field.gateway', `${val(e.gateway)} (${esc(label('gateway', e.gateway_state))})`],
    ['field.open_alarms', given(e.open_alarms) && esc(String(e.open_alarms))],
    ['field.latest_alarm', given(e.latest_alarm) && val(e.latest_alarm)],
  ].filter(([, v]) => v);
  const page = `/equipment/${encodeURIComponent(e.gateway)}/${encodeURIComponent(e.id)}`;
  return `<strong>${val(e.name)}</strong><table>${rows.map(([k, v]) => `<tr><th>${esc(t(k))}</th><td>${v}</td></tr>`).join('')}</table>` +
    `<a class="open" href="${esc(page)}">${esc(t('equipment.open'))}</a>`;
}
function validPosition(p) {
  return Array.isArray(p) && p.length === 2 && p.every(Number.isFinite) && Math.abs(p[0]) <= 90 && Math.abs(p[1]) <= 180;
}
async function main() {
  if (window.SEGUARD_NO_LEAFLET) { notice(t('map.no_leaflet')); return; }
  await ready;
  const config = await api('/api/v1/map/config');
  const map = L.map('map', { maxZoom: 19, minZoom: 3, zoomControl: false }).setView(config.center, config.zoom);
  drawn = map;
  // Leaflet's own texts, from the catalogue too.
  L.control.zoom({ zoomInTitle: t('map.zoom_in'), zoomOutTitle: t('map.zoom_out') }).addTo(map);
  map.on('popupopen', e => {
    const close = e.popup.getElement().querySelector('.leaflet-popup-close-button');
    if (close) close.setAttribute('aria-label', t('map.close_popup'));
  });
  L.control.scale({ imperial: false }).addTo(map);
  let offline = false;
  function goOffline(why) {
    if (offline) return; offline = true;
    for (const l of tiles) map.removeLayer(l);
    document.getElementById('map').classList.add('offline-base');
    notice(t('map.no_tiles', { why: t(why) }));
  }
  const tiles = basemap(map, config);
  if (tiles.length) {
    let loaded = 0, errors = 0;
    tiles[0].on('tileload', () => loaded++);
    tiles[0].on('tileerror', () => { errors++; if (errors >= 3 && loaded === 0) goOffline('map.why_errors'); });
    setTimeout(() => { if (loaded === 0) goOffline('map.why_none'); }, 5000);
  } else {
    goOffline('map.why_unset');
  }
  // The district's outline (GeoJSON the operator supplies), under the markers: without tiles
  // it is what makes the plain base a place.
  let district = null;
  if (config.district) {
    district = api('/api/v1/map/district').then(g => {
      // The district's edge bold, its streets (`level: "street"`) thin and dashed.
      const style = f => (f.properties || {}).level === 'street'
        ? { className: 'district street', color: '#457b9d', weight: 1, dashArray: '4 4', fill: false }
        : { className: 'district', color: '#1d3557', weight: 2.5, fillColor: '#1d3557', fillOpacity: 0.05 };
      const layer = L.geoJSON(g, { interactive: false, style }).addTo(map);
      document.body.dataset.district = 'drawn';
      return layer;
    }).catch(e => { console.error('district outline:', e.message); return null; });
  }
  const legend = L.control({ position: 'bottomright' });
  legend.onAdd = () => { const d = L.DomUtil.create('div', 'legend'); d.innerHTML = STATES.map(k => `<div><i class="state-${k}"></i>${esc(stateName(k))}</div>`).join(''); return d; };
  legend.addTo(map);
  // A cluster wears the worst state among its markers (trapped first): a trapped lift among a
  // thousand normal ones must still read red from the whole city's view. The same icon for
  // the clusters the browser makes and those central sends.
  const clusterDiv = (worst, n) => {
    const size = n < 100 ? 40 : n < 1000 ? 48 : 56;
    return L.divIcon({
      html: `<div title="${esc(stateName(worst))}"><span>${n}</span></div>`,
      className: `marker-cluster seg-cluster worst-${worst}`,
      iconSize: L.point(size, size),
    });
  };
  const clusterIcon = c => {
    const states = new Set(c.getAllChildMarkers().map(m => m.options.state));
    return clusterDiv(WORST_FIRST.find(s => states.has(s)) || 'normal', c.getChildCount());
  };
  // A marker is [gateway, id, lat, lon, kind, state, name]; its popup reads the equipment's
  // record from central when it is first opened.
  const markerOf = ([gateway, id, lat, lon, , state, name]) => {
    const icon = L.divIcon({ className: '', html: `<div class="seg-marker state-${state}" data-equipment="${esc(id)}" data-state="${state}"></div>`, iconSize: [18, 18] });
    const marker = L.marker([lat, lon], { icon, title: `${name}: ${stateName(state)}`, state });
    marker.once('click', () => api(`/api/v1/equipment/${encodeURIComponent(gateway)}/${encodeURIComponent(id)}`)
      .then(d => marker.bindPopup(popup(d.equipment)).openPopup())
      .catch(e => notice(t('error.prefix', { message: e.message }))));
    return marker;
  };
  // Central sends every marker of a small fleet (the browser clusters them), and for a city
  // the clusters of the visible box at this zoom, asked again when the view moves.
  let layer = null, asked = 0;
  function draw(r) {
    if (layer) map.removeLayer(layer);
    const markers = r.markers.filter(m => validPosition([m[2], m[3]])).map(markerOf);
    if (r.clusters.length) {
      layer = L.layerGroup(markers);
      for (const [lat, lon, n, worst] of r.clusters) {
        L.marker([lat, lon], { icon: clusterDiv(worst, n), title: `${n}: ${stateName(worst)}` })
          .on('click', () => map.setView([lat, lon], Math.min(map.getZoom() + 2, 15)))
          .addTo(layer);
      }
    } else {
      layer = L.markerClusterGroup({ disableClusteringAtZoom: 15, chunkedLoading: true, iconCreateFunction: clusterIcon });
      layer.addLayers(markers);
    }
    map.addLayer(layer);
    document.body.dataset.markers = String(markers.length + r.clusters.reduce((n, c) => n + c[2], 0));
    document.body.dataset.clusters = String(r.clusters.length);
  }
  async function load() {
    const b = map.getBounds().pad(0.1), mine = ++asked;
    const bbox = [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()].map(v => v.toFixed(5)).join(',');
    const r = await api(`/api/v1/map/markers?bbox=${bbox}&zoom=${map.getZoom()}`);
    if (mine === asked) { draw(r); document.body.dataset.zoom = String(map.getZoom()); }
  }
  const first = await api(`/api/v1/map/markers?zoom=${map.getZoom()}`);
  // The first screen: the markers (on the district's shading and streets), or the whole
  // district before any equipment is known. Central leaves out a coordinate off the globe;
  // the bounds are checked again, so that one bad marker can never zoom the map out to the
  // whole world.
  const outline = district && await district;
  const bounds = first.bounds && first.bounds.every(validPosition) ? first.bounds : null;
  if (bounds) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 16, animate: false });
  else if (outline && outline.getBounds().isValid()) map.fitBounds(outline.getBounds());
  if (first.complete) draw(first);
  else {
    await load();
    map.on('moveend', () => load().catch(e => console.error('map markers:', e.message)));
  }
  document.body.dataset.zoom = String(map.getZoom());
  document.body.dataset.ready = 'true';
}
main().catch(e => { console.error('map failed:', e && e.stack || String(e)); notice(t('error.prefix', { message: e && e.message || String(e) })); document.body.dataset.ready = 'error'; });
