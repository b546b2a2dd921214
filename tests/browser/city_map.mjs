// The whole city's map in headless Chromium, with marker clustering. Run by tests/city_map.rs
// and benches/city.rs, which start central on a generated city and pass:
//   BASE_URL, REGULATOR_TOKEN, MARKERS (how many pieces of equipment have a position),
//   SCREENSHOTS (directory), TIMEOUT_MS (default 180000), TRAPPED (optional: the id of the one
//   lift with a trapped passenger, whose cluster must read red).
// Measures the time from navigation until the clusters and markers drawn hold every marker,
// checks that the clusters and single markers in view hold every marker, takes a
// screenshot, and prints one JSON line of results.
import { mkdirSync } from 'node:fs';
import { launch } from './chromium.mjs';

const env = process.env;
mkdirSync(env.SCREENSHOTS, { recursive: true });
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('pageerror', e => console.error('page error:', e.message));
try {
  const started = Date.now();
  await page.goto(`${env.BASE_URL}/?token=${env.REGULATOR_TOKEN}`);
  const timeout = Number(env.TIMEOUT_MS || 180000);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout });
  // Clustering is chunked over frames: drawn when the clusters and single markers in the DOM
  // hold every marker placed (ms since navigation started).
  // (Polled from here: the page's CSP forbids the eval a polling waitForFunction needs.)
  let drawn_ms = null;
  while (drawn_ms === null) {
    drawn_ms = await page.evaluate(() => {
      const placed = Number(document.body.dataset.markers);
      const shown = [...document.querySelectorAll('.marker-cluster span')].reduce((n, s) => n + Number(s.textContent), 0)
        + document.querySelectorAll('.seg-marker').length;
      return shown === placed ? Math.round(performance.now()) : null;
    });
    check(Date.now() - started < timeout, 'every marker drawn in time');
    if (drawn_ms === null) await new Promise(r => setTimeout(r, 50));
  }
  const wall_ms = Date.now() - started;
  const r = await page.evaluate(() => ({
    markers: Number(document.body.dataset.markers),
    clusters: document.querySelectorAll('.marker-cluster').length,
    in_clusters: [...document.querySelectorAll('.marker-cluster span')].reduce((n, s) => n + Number(s.textContent), 0),
    single: document.querySelectorAll('.seg-marker').length,
    trapped: [...document.querySelectorAll('.seg-cluster.worst-trapped div, .seg-marker.state-trapped')]
      .map(e => ({ count: Number(e.textContent) || 1, colour: getComputedStyle(e).backgroundColor })),
  }));
  await page.screenshot({ path: `${env.SCREENSHOTS}/city-map.png` });
  check(r.markers === Number(env.MARKERS), `${r.markers} markers placed, want ${env.MARKERS}`);
  check(r.clusters > 0, 'the city is drawn in clusters');
  check(r.in_clusters + r.single === r.markers, `${r.in_clusters} in clusters + ${r.single} single, want ${r.markers}`);
  if (env.TRAPPED) {
    // One lift trapped among the whole city: exactly one cluster (or marker) reads red.
    check(r.trapped.length === 1 && ['rgb(183, 28, 28)', 'rgb(214, 40, 40)'].includes(r.trapped[0].colour),
      `one red cluster for the trapped lift: ${JSON.stringify(r.trapped)}`);
  }
  console.log(JSON.stringify({ ...r, drawn_ms, wall_ms }));
} catch (e) {
  await page.screenshot({ path: `${env.SCREENSHOTS}/city-map-failure.png` }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
