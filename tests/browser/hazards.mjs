// Walks one inspection hazard from report to verified closure in headless Chromium: the using
// unit records a correction (first with the responsibility left out, which is refused), the
// regulator sends it back, the unit corrects again, the agency verifies it; then the agency
// uploads a batch of reports as CSV, refused for a bad line, then stored. Run by
// tests/regulator_browser.rs, which starts central, writes the fleet and posts the report, and
// passes BASE_URL, UNIT_TOKEN, REGULATOR_TOKEN, AGENCY_TOKEN, HAZARD_ID and SCREENSHOTS.
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { englishLeft, unlabelled } from './screens.mjs';

const env = process.env;
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }
const ready = page => page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
const item = `article[data-hazard="${env.HAZARD_ID}"]`;

const browser = await launch();
// Each role in its own browser context (its own cookie).
async function as(token) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', e => console.error('page error:', e.message));
  await page.goto(`${env.BASE_URL}/hazards?token=${token}`);
  await ready(page);
  return page;
}
async function settle(page) { await page.waitForSelector('body[data-ready="false"]', { state: 'attached', timeout: 5000 }).catch(() => {}); await ready(page); }
try {
  // The using unit's ledger: the overdue brake first, marked overdue, on the maker's ledger too.
  const unit = await as(env.UNIT_TOKEN);
  const order = await unit.$$eval('article', as => as.map(a => a.dataset.hazard));
  check(order[0] === env.HAZARD_ID && order.length === 2, `ledger order ${order}`);
  check(await unit.isVisible(`${item} .overdue-badge`), 'overdue marked');
  const text = await unit.textContent(item);
  check(text.includes('制造单位台账') && text.includes('Orient Elevator Works'), `two ledgers: ${text}`);
  let left = await englishLeft(unit);
  check(left.length === 0, `ledger in Chinese, English left: ${JSON.stringify(left)}`);
  check((await unlabelled(unit)).length === 0, 'every field labelled');
  await unit.screenshot({ path: `${shots}/hazard-1-reported.png`, fullPage: true });
  // Responsibility left out: refused, and said so.
  await unit.fill(`${item} textarea[name=cause]`, '制动衬片早期磨损（制造批次 2024-07）');
  await unit.fill(`${item} textarea[name=corrective_action]`, '已更换制动衬片，每月检查磨损');
  await unit.click(`${item} form.correct button`);
  await unit.waitForSelector(`${item} .error:has-text("responsibility")`, { timeout: 5000 });
  results.refused = await unit.textContent(`${item} .error`);
  await unit.fill(`${item} textarea[name=responsibility]`, '制造单位（材料）；维保单位未按期检查磨损');
  await unit.click(`${item} form.correct button`);
  await settle(unit);
  check(await unit.getAttribute(item, 'data-status') === 'corrected', 'corrected');
  await unit.screenshot({ path: `${shots}/hazard-2-corrected.png`, fullPage: true });

  // The regulator sends it back with a note.
  const regulator = await as(env.REGULATOR_TOKEN);
  await regulator.fill(`${item} form.verify input[name=note]`, '请补充制动试验记录');
  await regulator.click(`${item} form.verify button.send-back`);
  await settle(regulator);
  check(await regulator.getAttribute(item, 'data-status') === 'open', 'sent back open');
  check((await regulator.textContent(`${item} .review`)).includes('请补充制动试验记录'), 'the note is shown');
  await regulator.screenshot({ path: `${shots}/hazard-3-sent-back.png`, fullPage: true });

  // The unit corrects again; the agency verifies: closed.
  await unit.reload(); await ready(unit);
  await unit.fill(`${item} textarea[name=cause]`, '制动衬片早期磨损（制造批次 2024-07）');
  await unit.fill(`${item} textarea[name=responsibility]`, '制造单位（材料）；维保单位未按期检查磨损');
  await unit.fill(`${item} textarea[name=corrective_action]`, '已更换制动衬片并做制动试验（记录附后），每月检查磨损');
  await unit.click(`${item} form.correct button`);
  await settle(unit);
  const agency = await as(env.AGENCY_TOKEN);
  check(await agency.isVisible('#reports-section'), 'the agency sees its reports');
  await agency.fill(`${item} form.verify input[name=note]`, '复查制动试验合格');
  await agency.click(`${item} form.verify button.accept`);
  await settle(agency);
  check(await agency.$(item) === null, 'verified: gone from the open ledger');
  await agency.check('input[name=closed]');
  await agency.click('#filters button[type=submit]');
  await settle(agency);
  check(await agency.getAttribute(item, 'data-status') === 'verified', 'listed as verified with closed items');
  left = await englishLeft(agency);
  check(left.length === 0, `agency page in Chinese, English left: ${JSON.stringify(left)}`);
  await agency.screenshot({ path: `${shots}/hazard-4-verified.png`, fullPage: true });
  results.final = await agency.getAttribute(item, 'data-status');

  // A batch of reports as CSV from the agency's page: a bad line refuses the whole file, the
  // problem named by its line in Chinese; the corrected file is stored.
  const header = 'report_no,gateway,equipment,inspected_on,conclusion,manufacturer,description,severity,legal_basis,deadline,product_defect\n';
  const good = 'DSEI-2026-0601,gw1,q1,2026-11-25,合格,,,,,,\n';
  const bad = 'DSEI-2026-0602,gw1,q2,2026-11-25,整改后合格,,层门门锁啮合长度不足,重大,TSG T7001-2023 6.8,2026-11-20,\n';
  async function upload(text) {
    await agency.setInputFiles('#upload-file', { name: 'reports.csv', mimeType: 'text/csv', buffer: Buffer.from(text) });
    await agency.evaluate(() => { document.body.dataset.uploaded = 'false'; });
    await agency.click('#upload button[type=submit]');
    await agency.waitForSelector('body[data-uploaded="true"]', { state: 'attached', timeout: 10000 });
    await ready(agency);
  }
  const reportsBefore = await agency.$$eval('#reports tr', rows => rows.length);
  await upload(header + good + bad);
  results.batch_problem = await agency.textContent('#upload-problems li[data-line="3"]');
  check(results.batch_problem.includes('第 3 行') && results.batch_problem.includes('整改期限'), `problem named: ${results.batch_problem}`);
  check(await agency.$$eval('#reports tr', rows => rows.length) === reportsBefore, 'nothing of a refused file stored');
  await agency.screenshot({ path: `${shots}/hazard-5-batch-refused.png`, fullPage: true });
  await upload(header + good + bad.replace('2026-11-20', '2026-12-20'));
  check((await agency.$$('#upload-problems li')).length === 0, 'no problem left');
  results.batch_reports = await agency.$$eval('#reports tr', rows => rows.length) - reportsBefore;
  await agency.screenshot({ path: `${shots}/hazard-6-batch-stored.png`, fullPage: true });
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
