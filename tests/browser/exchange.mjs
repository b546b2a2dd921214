// The upward exchange's page with a record the higher-level platform refused: listed with its
// status and answer, in Chinese, and re-queued by its button. Run by tests/regulator_browser.rs,
// which passes BASE_URL, REGULATOR_TOKEN, KEY (the refused record) and SCREENSHOTS.
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
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', e => console.error('page error:', e.message));
  await page.goto(`${env.BASE_URL}/exchange?token=${env.REGULATOR_TOKEN}`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
  const rows = await page.$$eval('#refused tr', trs => trs.map(tr => ({ key: tr.dataset.key, cells: [...tr.cells].map(c => c.textContent) })));
  results.refused = rows;
  check(rows.length === 1 && rows[0].key === env.KEY, `refused rows ${JSON.stringify(rows)}`);
  check(rows[0].cells[3] === '422', `status ${rows[0].cells[3]}`);
  check(rows[0].cells[4].startsWith('record refused: field `address`'), `answer ${rows[0].cells[4]}`);
  check(await page.isHidden('#none-refused'), 'says none refused while one is');
  const left = await englishLeft(page);
  check(left.length === 0, `exchange page in Chinese, English left: ${JSON.stringify(left)}`);
  await page.screenshot({ path: `${env.SCREENSHOTS}/exchange-refused.png`, fullPage: true });
  await page.click('#refused button.requeue');
  await page.waitForSelector('#none-refused:not([hidden])', { timeout: 15000 });
  results.after = await page.$$eval('#refused tr', trs => trs.length);
  check(await page.textContent('#error') === '', `error ${await page.textContent('#error')}`);
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
