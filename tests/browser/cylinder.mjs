// A cylinder's page opened from its code on a phone-sized screen, as a QR code opens it. Run by
// tests/regulator_browser.rs, which passes BASE_URL, REGULATOR_TOKEN, CODE, UNDECLARED (a code
// seen only in a refused fill) and SCREENSHOTS.
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { englishLeft } from './screens.mjs';

const env = process.env;
mkdirSync(env.SCREENSHOTS, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  page.on('pageerror', e => console.error('page error:', e.message));
  await page.goto(`${env.BASE_URL}/c/${env.CODE}?token=${env.REGULATOR_TOKEN}`);
  check(page.url() === `${env.BASE_URL}/c/${env.CODE}`, `token left the address: ${page.url()}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  results.state = await page.getAttribute('[data-state]', 'data-state');
  results.timeline = await page.$$eval('#timeline li', lis => lis.map(l => l.dataset.kind));
  check(results.state === 'valid', `state ${results.state}`);
  check(JSON.stringify(results.timeline) === '["station","fill","inspected","owner_changed","registered","fill"]', `timeline ${results.timeline}`);
  const left = await englishLeft(page);
  check(left.length === 0, `cylinder page in Chinese, English left: ${JSON.stringify(left)}`);
  // Fits the phone: nothing wider than the screen.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, `page ${width}px wide on a 390px screen`);
  await page.screenshot({ path: `${env.SCREENSHOTS}/cylinder-phone.png`, fullPage: true });
  results.width = width;
  // A code no filling unit declared: its row comes from the fill, and the page says so.
  await page.goto(`${env.BASE_URL}/c/${env.UNDECLARED}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  results.undeclared_state = await page.getAttribute('[data-state]', 'data-state');
  results.undeclared_timeline = await page.$$eval('#timeline li', lis => lis.map(l => l.dataset.kind));
  check(await page.$('[data-origin="fills"]') !== null, 'marked as seen in fills only');
  check(JSON.stringify(results.undeclared_timeline) === '["refused","seen_in_fill"]' || JSON.stringify(results.undeclared_timeline) === '["seen_in_fill","refused"]', `timeline ${results.undeclared_timeline}`);
  const leftUndeclared = await englishLeft(page);
  check(leftUndeclared.length === 0, `undeclared cylinder page in Chinese, English left: ${JSON.stringify(leftUndeclared)}`);
  await page.screenshot({ path: `${env.SCREENSHOTS}/cylinder-undeclared-phone.png`, fullPage: true });
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
