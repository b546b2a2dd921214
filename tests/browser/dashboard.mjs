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
  // Every message the Content-Security-Policy causes: the pages must cause none.
  const refused = [];
  page.on('console', m => { console.error('console:', m.text()); if (m.text().includes('Content Security Policy')) refused.push(m.text()); });

  // Signing in: the token link becomes an HttpOnly cookie and leaves the address bar.
  await page.goto(`${env.BASE_URL}/?token=${env.REGULATOR_TOKEN}`);
  check(page.url() === `${env.BASE_URL}/`, `token removed from the address: ${page.url()}`);
  const kept = await page.evaluate(() => ({ cookie: document.cookie, stored: JSON.stringify(localStorage) }));
  check(!kept.cookie.includes(env.REGULATOR_TOKEN) && !kept.stored.includes(env.REGULATOR_TOKEN), `no script sees the token: ${JSON.stringify(kept)}`);
  const cookies = await page.context().cookies();
  const session = cookies.find(c => c.name === 'seguard_token');
  check(session && session.httpOnly && session.sameSite === 'Strict', `session cookie ${JSON.stringify(cookies)}`);
  results.signed_in = page.url();

  // Map: markers coloured by state, on the plain base when tiles are unreachable.
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  // (waitForSelector, not waitForFunction: the policy forbids the eval the latter polls with.)
  await page.waitForSelector('#who:has-text("inspector-li")', { timeout: 5000 });
  await page.waitForSelector('#map.offline-base', { timeout: 15000 });
  const counts = await page.$$eval('.seg-marker', els => els.reduce((m, e) => { m[e.dataset.state] = (m[e.dataset.state] || 0) + 1; return m; }, {}));
  const colours = await page.$$eval('.seg-marker', els => Object.fromEntries(els.map(e => [e.dataset.state, getComputedStyle(e).backgroundColor])));
  results.markers = counts; results.colours = colours;
  const expected = JSON.parse(env.EXPECTED);
  check(JSON.stringify(Object.entries(counts).sort()) === JSON.stringify(Object.entries(expected).sort()), `markers ${JSON.stringify(counts)} = ${env.EXPECTED}`);
  const want = { normal: 'rgb(42, 157, 143)', alarm: 'rgb(244, 162, 97)', trapped: 'rgb(214, 40, 40)', offline: 'rgb(141, 153, 174)', overdue: 'rgb(123, 44, 191)' };
  for (const [state, colour] of Object.entries(colours)) check(want[state] === colour, `${state} is ${colour}`);
  check(await page.isVisible('.leaflet-control-scale'), 'scale bar shown');
  // The lift with a coordinate off the globe is left out; the map stays on the district.
  const zoom = Number(await page.getAttribute('body', 'data-zoom'));
  results.zoom = zoom;
  check(zoom >= 10, `map zoomed to the markers, not the world: zoom ${zoom}`);
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
  await page.waitForSelector(`${row} .ack:has-text("inspector-li")`, { timeout: 5000 });
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
  check((await phone.textContent('#read-only')).includes('completed'), 'the page says the link only reads now');
  results.rescue = walked;

  // No page was refused anything by the Content-Security-Policy.
  check(refused.length === 0, `CSP violations: ${JSON.stringify(refused)}`);

  // Framing is refused: another page that puts the alarm list in a frame gets nothing.
  const framer = await browser.newPage();
  const framed = [];
  framer.on('console', m => framed.push(m.text()));
  await framer.setContent(`<iframe id="f" src="${env.BASE_URL}/alarms"></iframe>`);
  await framer.waitForTimeout(1500);
  const inner = framer.frames().find(f => f !== framer.mainFrame());
  const innerReady = inner ? await inner.evaluate(() => document.body && document.body.dataset.ready).catch(() => null) : null;
  check(innerReady !== 'true', 'the alarm list did not run in a frame');
  check(framed.some(t => t.includes("frame-ancestors 'none'")), `framing refused by CSP: ${JSON.stringify(framed)}`);
  results.framing = 'refused';

  // Sign-out clears the cookie: the API answers 401 and the header says so.
  await page.goto(`${env.BASE_URL}/`);
  await page.waitForSelector('#signout:not([hidden])', { timeout: 5000 });
  await Promise.all([page.waitForNavigation(), page.click('#signout button')]);
  await page.waitForSelector('#who:has-text("not signed in")', { timeout: 5000 });
  const after = await page.evaluate(async () => (await fetch('/api/v1/whoami')).status);
  check(after === 401, `whoami after sign-out: ${after}`);
  check(!(await page.context().cookies()).some(c => c.name === 'seguard_token'), 'cookie gone');
  results.signed_out = after;
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
