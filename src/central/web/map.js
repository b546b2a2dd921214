// The map page (loaded from /assets/: the pages hold no inline script).
const { api, header, esc, time } = window.seguard;
header('/');
const COLOURS = { normal: 'Normal', alarm: 'Alarm', trapped: 'Trapped', offline: 'Gateway offline', overdue: 'Inspection overdue' };
function notice(text) {
  const n = document.createElement('div'); n.className = 'notice'; n.id = 'notice'; n.textContent = text; document.body.appendChild(n);
}
function popup(e) {
  const r = e.record || {};
  const rows = [
    ['State', `<span class="dot state-${e.state}"></span>${COLOURS[e.state]}`], ['Kind', e.kind], ['Registration code', r.registration_code],
    ['Use certificate', r.use_certificate], ['Rescue code', r.rescue_code], ['Using unit', e.using_unit],
    ['Maintenance unit', r.maintenance_unit ? `${r.maintenance_unit.name} ${r.maintenance_unit.phone}` : ''],
    ['Address', e.address], ['Next inspection', e.next_inspection], ['Insured', e.insured == null ? '' : (e.insured ? 'yes' : 'no')],
    ['Gateway', `${e.gateway} (${e.gateway_state})`], ['Open alarms', e.open_alarms], ['Latest alarm', e.latest_alarm],
  ].filter(([, v]) => v !== undefined && v !== null && v !== '');
  return `<strong>${esc(e.name)}</strong><table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${k === 'State' ? v : esc(v)}</td></tr>`).join('')}</table>`;
}
function validPosition(p) {
  return Array.isArray(p) && p.length === 2 && p.every(Number.isFinite) && Math.abs(p[0]) <= 90 && Math.abs(p[1]) <= 180;
}
async function main() {
  if (window.SEGUARD_NO_LEAFLET) { notice('This build has no map libraries: install npm and rebuild.'); return; }
  const config = await api('/api/v1/map/config');
  const map = L.map('map', { maxZoom: 19, minZoom: 3 }).setView(config.center, config.zoom);
  L.control.scale({ imperial: false }).addTo(map);
  let offline = false;
  function goOffline(why) {
    if (offline) return; offline = true;
    if (tiles) map.removeLayer(tiles);
    document.getElementById('map').classList.add('offline-base');
    notice('No map tiles reachable (' + why + '): plain base.');
  }
  let tiles = null;
  if (config.tile_url) {
    let loaded = 0, errors = 0;
    tiles = L.tileLayer(config.tile_url, { attribution: config.tile_attribution, maxZoom: 19 }).addTo(map);
    tiles.on('tileload', () => loaded++);
    tiles.on('tileerror', () => { errors++; if (errors >= 3 && loaded === 0) goOffline('tile errors'); });
    setTimeout(() => { if (loaded === 0) goOffline('no tile loaded'); }, 5000);
  } else {
    goOffline('no tile URL configured');
  }
  if (config.district) {
    api('/api/v1/map/district').then(g => L.geoJSON(g, { style: { color: '#1d3557', weight: 2, fill: false } }).addTo(map)).catch(() => {});
  }
  const legend = L.control({ position: 'bottomright' });
  legend.onAdd = () => { const d = L.DomUtil.create('div', 'legend'); d.innerHTML = Object.entries(COLOURS).map(([k, v]) => `<div><i class="state-${k}"></i>${v}</div>`).join(''); return d; };
  legend.addTo(map);
  const cluster = L.markerClusterGroup({ disableClusteringAtZoom: 15, chunkedLoading: true });
  const equipment = await api('/api/v1/equipment');
  const bounds = [];
  for (const e of equipment) {
    // Central leaves out a coordinate off the globe; check again, so that one bad marker
    // can never zoom the map out to the whole world.
    if (!validPosition(e.display)) continue;
    const icon = L.divIcon({ className: '', html: `<div class="seg-marker state-${e.state}" data-equipment="${esc(e.id)}" data-state="${e.state}"></div>`, iconSize: [18, 18] });
    const marker = L.marker(e.display, { icon, title: `${e.name}: ${COLOURS[e.state]}` }).bindPopup(popup(e));
    cluster.addLayer(marker);
    bounds.push(e.display);
  }
  map.addLayer(cluster);
  if (bounds.length) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 16 });
  document.body.dataset.markers = String(bounds.length);
  document.body.dataset.zoom = String(map.getZoom());
  document.body.dataset.ready = 'true';
}
main().catch(e => { console.error('map failed:', e && e.stack || String(e)); notice('Error: ' + (e && e.message || String(e))); document.body.dataset.ready = 'error'; });
