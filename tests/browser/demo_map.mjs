// The demo's map in headless Chromium, once a passenger is trapped: the trapped elevator's
// marker is red. Run by tests/demo.rs, which starts `seguard demo` and passes:
//   BASE_URL, REGULATOR_TOKEN, TRAPPED (equipment id), MARKERS (how many elevators),
//   SCREENSHOTS (directory).
// Prints one JSON line of results; exits non-zero on the first failed check.
import { mkdirSync } from 'node:fs';
import { launch } from './chromium.mjs';

const env = process.env;
mkdirSync(env.SCREENSHOTS, { recursive: true });
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }

const browser = await launch();
// Large enough that the demo's fleet fits at a zoom where the map no longer clusters markers,
// so every elevator has its own marker in the DOM.
const page = await browser.newPage({ viewport: { width: 1800, height: 1800 } });
page.on('pageerror', e => console.error('page error:', e.message));
try {
  await page.goto(`${env.BASE_URL}/?token=${env.REGULATOR_TOKEN}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  const marker = `.seg-marker[data-equipment="${env.TRAPPED}"]`;
  await page.waitForSelector(marker, { timeout: 5000 });
  const trapped = await page.$eval(marker, e => ({
    state: e.dataset.state, classes: e.className, colour: getComputedStyle(e).backgroundColor,
  }));
  // Clusters fade out as the map settles at its zoom; the screenshot waits for them.
  await page.waitForSelector('.marker-cluster', { state: 'detached', timeout: 5000 });
  const markers = await page.$$eval('.seg-marker', els => els.length);
  // The demo ships its district's outline: without tiles the map is still a place.
  await page.waitForSelector('body[data-district="drawn"]', { state: 'attached', timeout: 5000 });
  check(await page.isVisible('.leaflet-overlay-pane path.district'), 'the district outline is drawn');
  await page.screenshot({ path: `${env.SCREENSHOTS}/demo-map-trapped.png` });
  check(markers === Number(env.MARKERS), `${markers} markers shown, want ${env.MARKERS}`);
  check(trapped.state === 'trapped' && trapped.classes.includes('state-trapped'), `marker state ${JSON.stringify(trapped)}`);
  check(trapped.colour === 'rgb(214, 40, 40)', `marker colour ${trapped.colour} is red`);
  console.log(JSON.stringify({ markers, trapped }));
} catch (e) {
  await page.screenshot({ path: `${env.SCREENSHOTS}/demo-map-failure.png` }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
