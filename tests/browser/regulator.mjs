// Drives the regulator's pages in headless Chromium (Debian `chromium`, through playwright-core
// from npm). Run by tests/regulator_browser.rs, which starts central with the fleet of
// tests/common/regulator_fleet.rs and passes BASE_URL, REGULATOR_TOKEN and SCREENSHOTS.
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { englishLeft, chineseLeft, unlabelled } from './screens.mjs';

const env = process.env;
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }
const ready = page => page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', e => console.error('page error:', e.message));
  const refused = [];
  page.on('console', m => { console.error('console:', m.text(), JSON.stringify(m.location())); if (m.text().includes('Content Security Policy')) refused.push(m.text()); });

  // The ranked list: the lift with recurring faults and an overdue inspection first, its
  // reasons shown, in Chinese.
  await page.goto(`${env.BASE_URL}/risk?token=${env.REGULATOR_TOKEN}`);
  await ready(page);
  const order = await page.$$eval('#rows tr', rows => rows.map(r => r.dataset.equipment));
  results.risk_order = order;
  check(JSON.stringify(order.slice(0, 2)) === '["s1","s2"]', `ranking ${order}`);
  const reasons = await page.$$eval('#rows tr:first-child li', lis => lis.map(l => l.dataset.factor));
  results.top_reasons = reasons;
  check(reasons[0] === 'inspection_overdue' && reasons.includes('recurring_faults'), `reasons ${reasons}`);
  const first = await page.textContent('#rows tr:first-child');
  check(first.includes('定期检验逾期') && first.includes('同一故障 30 日内重复 2 次'), `reasons in Chinese: ${first}`);
  let left = await englishLeft(page);
  check(left.length === 0, `risk page in Chinese, English left: ${JSON.stringify(left)}`);
  check((await unlabelled(page)).length === 0, 'every field labelled');
  await page.click('details.weights summary');
  await page.screenshot({ path: `${shots}/risk.png`, fullPage: true });
  // Two rows a page: the rest follow on `more`, in the same order, until all five are shown.
  await page.goto(`${env.BASE_URL}/risk?limit=2`);
  await ready(page);
  const firstPage = await page.$$eval('#rows tr', rows => rows.map(r => r.dataset.equipment));
  check(JSON.stringify(firstPage) === JSON.stringify(order.slice(0, 2)), `first page ${firstPage}`);
  check((await page.textContent('#shown')).includes('共 5 台'), `shown: ${await page.textContent('#shown')}`);
  for (let i = 0; i < 2; i++) {
    check(await page.isVisible('#more'), `more button before page ${i + 2}`);
    await page.click('#more');
    await ready(page);
  }
  const paged = await page.$$eval('#rows tr', rows => rows.map(r => r.dataset.equipment));
  check(JSON.stringify(paged) === JSON.stringify(order), `paged ${paged}, whole ${order}`);
  check(!(await page.isVisible('#more')), 'no more button after the last row');
  results.risk_paged = paged;
  // Filtered by area: the two lifts in Jing'an; the export link carries the filter.
  await page.fill('input[name=area]', "jing'an");
  await page.click('#filters button[type=submit]');
  await ready(page);
  const filtered = await page.$$eval('#rows tr', rows => rows.map(r => r.dataset.equipment));
  check(JSON.stringify(filtered) === '["s1","s2"]', `filtered ${filtered}`);
  const csvHref = await page.getAttribute('#csv', 'href');
  check(csvHref.includes('format=csv') && csvHref.includes('area=jing'), `export link ${csvHref}`);
  // (text() would drop the byte-order mark: read the bytes.)
  const bytes = await page.evaluate(async href => Array.from(new Uint8Array(await (await fetch(href)).arrayBuffer())), csvHref);
  const csv = new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes));
  check(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf, `csv starts with a byte-order mark: ${bytes.slice(0, 3)}`);
  check(csv.split('\r\n').filter(Boolean).length === 3, `csv ${JSON.stringify(csv.slice(0, 80))}`);
  results.csv_lines = csv.split('\r\n').filter(Boolean).length;

  // The scorecards of November: Quick Lifts A, Slow Lifts D with its shortfalls.
  await page.goto(`${env.BASE_URL}/scorecards?month=2026-11`);
  await ready(page);
  const grades = await page.$$eval('b[data-grade]', bs => bs.map(b => b.dataset.grade));
  const units = await page.$$eval('th[data-unit]', ths => ths.map(t => t.dataset.unit));
  results.grades = Object.fromEntries(units.map((u, i) => [u, grades[i]]));
  check(JSON.stringify(results.grades) === '{"Quick Lifts":"A","Slow Lifts":"D"}', `grades ${JSON.stringify(results.grades)}`);
  const response = await page.textContent('tr[data-measure="response_rate"]');
  check(response.includes('100.0%') && response.includes('50.0%'), `response rates ${response}`);
  const median = await page.textContent('tr[data-measure="arrival_median"]');
  check(median.includes('12 分 30 秒') && median.includes('28 分 20 秒'), `arrival medians ${median}`);
  left = await englishLeft(page);
  check(left.length === 0, `scorecards in Chinese, English left: ${JSON.stringify(left)}`);
  await page.screenshot({ path: `${shots}/scorecards.png`, fullPage: true });
  // In English after the switch.
  await page.click('#lang');
  await ready(page);
  const chinese = await chineseLeft(page);
  check(chinese.length === 0, `scorecards in English, Chinese left: ${JSON.stringify(chinese)}`);
  await page.screenshot({ path: `${shots}/scorecards-en.png`, fullPage: true });

  // The printable monthly report: the month in its title, no navigation on paper.
  await page.goto(`${env.BASE_URL}/scorecards/report?month=2026-11`);
  await ready(page);
  const title = await page.textContent('#report-title');
  check(title.includes('2026-11'), `report title ${title}`);
  await page.emulateMedia({ media: 'print' });
  check(!(await page.isVisible('header')) && !(await page.isVisible('#print')), 'navigation hidden in print');
  await page.screenshot({ path: `${shots}/scorecard-report-print.png`, fullPage: true });
  results.report_title = title;

  // The ranked list on a phone.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await phone.context().addCookies(await page.context().cookies());
  await phone.goto(`${env.BASE_URL}/risk`);
  await ready(phone);
  await phone.screenshot({ path: `${shots}/risk-phone.png`, fullPage: true });
  check(refused.length === 0, `the pages break no content-security rule: ${refused}`);
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
