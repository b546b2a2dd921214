// The dispatch board in headless Chromium, at desktop and phone sizes. Run by
// tests/central_browser.rs, which starts central with a short response deadline and passes:
//   BASE_URL, REGULATOR_TOKEN, GATEWAY_TOKEN and INCIDENT (a second trapped incident, posted
//   while the board is open), SCREENSHOTS (directory).
// Prints one JSON line of results; exits non-zero on the first failed check.
import { mkdirSync } from 'node:fs';
import { launch } from './chromium.mjs';
import { englishLeft, contrast, keepForDocs } from './screens.mjs';

const env = process.env;
mkdirSync(env.SCREENSHOTS, { recursive: true });
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }
const results = {};
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', e => console.error('page error:', e.message));
  await page.goto(`${env.BASE_URL}/board?token=${env.REGULATOR_TOKEN}`);
  await page.waitForSelector('body[data-open="1"]', { state: 'attached', timeout: 15000 });
  const respond = 'tr[data-dispatch] td[data-deadline="respond"]';
  // Counting down while the deadline is ahead...
  const first = await page.textContent(respond);
  check(['pending', 'soon'].includes(await page.getAttribute(respond, 'data-state')), `respond deadline ahead: ${first}`);
  await page.waitForTimeout(1100);
  const second = await page.textContent(respond);
  check(first !== second, `the deadline counts down: ${first}, then ${second}`);
  results.countdown = [first, second];
  await page.screenshot({ path: `${env.SCREENSHOTS}/board-counting.png`, fullPage: true });
  // ...and red once it has passed, without reloading.
  await page.waitForSelector(`${respond}[data-state="late"]`, { timeout: 15000 });
  const colour = await page.$eval(respond, e => getComputedStyle(e).backgroundColor);
  check(colour === 'rgb(183, 28, 28)', `late deadline is red: ${colour}`);
  results.late = await page.textContent(respond);
  results.contrast_late = await contrast(page, respond);
  check(results.contrast_late >= 4.5, `late deadline text contrast ${results.contrast_late}`);
  const left = await englishLeft(page);
  check(left.length === 0, `board in Chinese, English left: ${JSON.stringify(left)}`);
  await page.screenshot({ path: `${env.SCREENSHOTS}/board-late.png`, fullPage: true });
  keepForDocs(env.SCREENSHOTS, 'board-late');
  // A new trapped incident shows within a poll, flagged.
  const posted = await fetch(`${env.BASE_URL}/api/v1/intake/incidents`, {
    method: 'POST', body: env.INCIDENT,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${env.GATEWAY_TOKEN}` },
  });
  check(posted.ok, `second incident posted: ${posted.status}`);
  await page.waitForSelector('body[data-open="2"]', { state: 'attached', timeout: 15000 });
  check(await page.isVisible('#new-trapped'), 'the banner announces the new trapped dispatch');
  check(await page.$$eval('tr.fresh', els => els.length) === 1, 'the new row is flagged');
  results.banner = await page.textContent('#new-trapped');
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.goto(`${env.BASE_URL}/board?token=${env.REGULATOR_TOKEN}`);
  await phone.waitForSelector('body[data-open="2"]', { state: 'attached', timeout: 15000 });
  await phone.screenshot({ path: `${env.SCREENSHOTS}/board-phone.png`, fullPage: true });
  console.log(JSON.stringify(results));
} catch (e) {
  for (const p of browser.contexts().flatMap(c => c.pages())) {
    await p.screenshot({ path: `${env.SCREENSHOTS}/board-failure-${Date.now()}.png` }).catch(() => {});
  }
  throw e;
} finally {
  await browser.close();
}
