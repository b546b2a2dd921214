// Drives the dashboard in headless Chromium (Debian `chromium`, driven by playwright-core from
// npm). Run by tests/central_browser.rs, which starts central and passes:
//   BASE_URL, REGULATOR_TOKEN, ALARM_ID, RESCUE_URL, EXPECTED (JSON: state -> marker count),
//   SCREENSHOTS (directory).
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync } from 'node:fs';

const env = process.env;
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', e => console.error('page error:', e.message));
  page.on('console', m => console.error('console:', m.text()));

  // Map: markers coloured by state, on the plain base when tiles are unreachable.
  await page.goto(`${env.BASE_URL}/?token=${env.REGULATOR_TOKEN}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  await page.waitForSelector('#map.offline-base', { timeout: 15000 });
  const counts = await page.$$eval('.seg-marker', els => els.reduce((m, e) => { m[e.dataset.state] = (m[e.dataset.state] || 0) + 1; return m; }, {}));
  const colours = await page.$$eval('.seg-marker', els => Object.fromEntries(els.map(e => [e.dataset.state, getComputedStyle(e).backgroundColor])));
  results.markers = counts; results.colours = colours;
  const expected = JSON.parse(env.EXPECTED);
  check(JSON.stringify(Object.entries(counts).sort()) === JSON.stringify(Object.entries(expected).sort()), `markers ${JSON.stringify(counts)} = ${env.EXPECTED}`);
  const want = { normal: 'rgb(42, 157, 143)', alarm: 'rgb(244, 162, 97)', trapped: 'rgb(214, 40, 40)', offline: 'rgb(141, 153, 174)', overdue: 'rgb(123, 44, 191)' };
  for (const [state, colour] of Object.entries(colours)) check(want[state] === colour, `${state} is ${colour}`);
  check(await page.isVisible('.leaflet-control-scale'), 'scale bar shown');
  await page.screenshot({ path: `${shots}/map.png` });
  await page.click('.seg-marker.state-trapped');
  await page.waitForSelector('.leaflet-popup-content', { timeout: 5000 });
  const popup = await page.textContent('.leaflet-popup-content');
  await page.waitForTimeout(400); // the popup fades in
  check(popup.includes('Trapped') && popup.includes('31103101002016010001'), 'popup shows state and registry fields');
  await page.screenshot({ path: `${shots}/map-popup.png` });

  // Alarm list: acknowledge with a comment.
  await page.goto(`${env.BASE_URL}/alarms`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  const row = `tr[data-alarm="${env.ALARM_ID}"]`;
  await page.fill(`${row} .comment`, 'called the maintenance unit');
  await page.click(`${row} .ack-button`);
  await page.waitForFunction(sel => document.querySelector(sel + ' .ack').textContent.includes('inspector-li'), row, { timeout: 5000 });
  results.ack = (await page.textContent(`${row} .ack`)).trim();
  await page.screenshot({ path: `${shots}/alarms.png`, fullPage: true });

  await page.goto(`${env.BASE_URL}/indicators`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await page.screenshot({ path: `${shots}/indicators.png`, fullPage: true });

  // Rescue page on a phone-sized screen: walk the steps.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.goto(env.RESCUE_URL);
  await phone.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await phone.screenshot({ path: `${shots}/rescue-0-occurred.png`, fullPage: true });
  const walked = [];
  for (const [i, step] of ['responded', 'on_site', 'completed'].entries()) {
    await phone.fill('#note', `${step} from the phone`);
    await phone.click(`button[data-step="${step}"]`);
    await phone.waitForSelector(`#status[data-status="${step}"]`, { timeout: 5000 });
    walked.push(step);
    await phone.screenshot({ path: `${shots}/rescue-${i + 1}-${step}.png`, fullPage: true });
  }
  check(await phone.isDisabled('button[data-step="false_alarm"]'), 'closed dispatch takes no more steps');
  results.rescue = walked;
  console.log(JSON.stringify(results));
} catch (e) {
  for (const p of browser.contexts().flatMap(c => c.pages())) {
    const state = await p.evaluate(() => ({ url: location.href, ready: document.body.dataset.ready, text: document.body.innerText.slice(0, 500) })).catch(() => null);
    console.error('page at failure:', JSON.stringify(state));
    await p.screenshot({ path: `${shots}/failure-${Date.now()}.png` }).catch(() => {});
  }
  throw e;
} finally {
  await browser.close();
}
