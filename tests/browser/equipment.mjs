// The equipment page, search, indicators and the unit overview (paged) in headless Chromium (Debian
// `chromium`, driven by playwright-core). Run by tests/central_browser.rs, which starts central
// and passes: BASE_URL, REGULATOR_TOKEN, UNIT_TOKEN, LIFT_CODE (lift-a's registration code),
// SCREENSHOTS (directory), DOCS (the README's screenshots, or empty: see keepForDocs).
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { englishLeft, chineseLeft, unlabelled, tabTo, heights, contrast, keepForDocs } from './screens.mjs';

const env = process.env;
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }
const ready = p => p.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 15000 });
// A screenshot; `docs` ones are also the README's (keepForDocs).
const shot = async (p, name, { full = true, docs = false } = {}) => {
  await p.screenshot({ path: `${shots}/${name}.png`, fullPage: full });
  if (docs) keepForDocs(shots, name);
};

const browser = await launch();
try {
  const zone = { timezoneId: 'America/Los_Angeles' };
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, ...zone });
  page.on('pageerror', e => console.error('page error:', e.message));
  const refused = [];
  page.on('console', m => { console.error('console:', m.text()); if (m.text().includes('Content Security Policy')) refused.push(m.text()); });
  const inChinese = async (where, p = page) => { const left = await englishLeft(p); check(left.length === 0, `${where} in Chinese, English left: ${JSON.stringify(left)}`); };
  const inEnglish = async (where, p = page) => { const left = await chineseLeft(p); check(left.length === 0, `${where} in English, Chinese left: ${JSON.stringify(left)}`); };
  const labelled = async (where, p = page) => { const none = await unlabelled(p); check(none.length === 0, `${where}: fields without a label: ${JSON.stringify(none)}`); };
  // A table's CSV export: the downloaded file starts with the UTF-8 byte-order mark.
  const exported = async (p, selector) => {
    const [download] = await Promise.all([p.waitForEvent('download'), p.click(selector)]);
    const bytes = readFileSync(await download.path());
    check(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf, `${selector}: CSV starts with the BOM, not ${[...bytes.slice(0, 3)]}`);
    return { name: download.suggestedFilename(), text: bytes.toString('utf8').slice(1) };
  };

  await page.goto(`${env.BASE_URL}/?token=${env.REGULATOR_TOKEN}`);
  await ready(page);

  // Search from the header: a registration code opens that equipment's page.
  results.tabs_to_search = await tabTo(page, '#search-q');
  check(results.tabs_to_search !== null, 'the search box is reached with Tab');
  await page.keyboard.type(env.LIFT_CODE);
  await Promise.all([page.waitForURL(/\/equipment\/gw1\/lift-a$/), page.keyboard.press('Enter')]);
  await ready(page);
  results.from_search = new URL(page.url()).pathname;
  const registry = await page.textContent('#registry');
  check(registry.includes(env.LIFT_CODE) && registry.includes('02417'), `registry on the page: ${registry}`);
  const tels = await page.$$eval('#registry a[href^="tel:"]', els => els.map(e => e.getAttribute('href')));
  check(['tel:+862155550303', 'tel:+862155550333', 'tel:+862155550101'].every(x => tels.includes(x)), `tel: links ${tels}`);
  check(await page.getAttribute('#state', 'data-state') === 'trapped', 'lift-a is shown trapped');
  check(await contrast(page, '#state') >= 4.5, 'the state badge is readable');
  check((await page.textContent('#dispatches tbody')).includes('Shenlong'), 'the dispatch is listed');
  check((await page.textContent('#alarms tbody')).includes('困人'), 'the trapped alarm is listed');
  await page.waitForSelector('#where[data-at]', { state: 'attached', timeout: 5000 });
  check(await page.isVisible('#where path.leaflet-interactive'), 'the lift is marked on the small map');
  await inChinese('equipment page');
  await labelled('equipment page');
  results.tabs_to_export = await tabTo(page, 'button[data-export="lift-a-alarms"]');
  check(results.tabs_to_export !== null, 'the export button is reached with Tab');
  const alarmsCsv = await exported(page, 'button[data-export="lift-a-alarms"]');
  check(alarmsCsv.text.startsWith('报警时间,') && alarmsCsv.text.includes('困人'), `alarms CSV: ${alarmsCsv.text.slice(0, 200)}`);
  results.csv = alarmsCsv.name;
  await shot(page, 'equipment', { docs: true });

  // A name part lists the matches; one click opens the page.
  await page.fill('#search-q', 'boiler');
  await Promise.all([page.waitForURL(/\/search\?q=boiler/), page.press('#search-q', 'Enter')]);
  await ready(page);
  await inChinese('search page');
  await labelled('search page');
  await shot(page, 'search');
  await Promise.all([page.waitForURL(/\/equipment\/gw1\/boiler-1$/), page.click('a.match')]);
  await ready(page);
  const readings = await page.textContent('#readings tbody');
  check(readings.includes('1.32') && readings.includes('1.25'), `latest reading and limit: ${readings}`);
  check((await page.textContent('#nameplate')).includes('1.25'), 'nameplate shown');

  // The filling station's refusals, named in Chinese.
  await page.goto(`${env.BASE_URL}/equipment/gw1/station-1`);
  await ready(page);
  const fills = await page.textContent('#fills tbody');
  check(fills.includes('CYL-0002') && fills.includes('超过检验期'), `fills: ${fills}`);
  await inChinese('filling station page');
  await shot(page, 'equipment-station');

  // The offline map: the district's outline and street drawn under the markers.
  await page.goto(`${env.BASE_URL}/`);
  await ready(page);
  await page.waitForSelector('body[data-district="drawn"]', { state: 'attached', timeout: 5000 });
  await page.waitForSelector('#map.offline-base', { timeout: 5000 });
  check(await page.isVisible('.leaflet-overlay-pane path.district:not(.street)'), 'the outline is drawn');
  check(await page.isVisible('.leaflet-overlay-pane path.district.street'), 'the street is drawn');
  const under = await page.evaluate(() => Number(getComputedStyle(document.querySelector('.leaflet-overlay-pane')).zIndex) < Number(getComputedStyle(document.querySelector('.leaflet-marker-pane')).zIndex));
  check(under && await page.isVisible('.leaflet-marker-pane .seg-marker, .leaflet-marker-pane .marker-cluster'), 'the outline lies under the markers');
  await page.waitForTimeout(500);
  await shot(page, 'map-district', { full: false, docs: true });
  // Zoomed out, markers at one spot cluster, and the cluster wears its worst state: the
  // trapped lift's red, not the colour of the many normal ones beside it.
  for (let i = 0; i < 3; i++) { await page.click('.leaflet-control-zoom-out'); await page.waitForTimeout(400); }
  const clusters = await page.$$eval('.marker-cluster', els => els.map(e => `${e.className}: ${e.textContent}`));
  check(await page.isVisible('.seg-cluster.worst-trapped'), `the cluster holding the trapped lift is red: ${JSON.stringify(clusters)}`);
  check(await contrast(page, '.seg-cluster.worst-trapped div') >= 4.5, 'a cluster count is readable');
  // Open it.
  for (let i = 0; i < 4 && !(await page.isVisible('.seg-marker.state-trapped')); i++) {
    await page.click('.marker-cluster');
    await page.waitForTimeout(800);
  }

  // From the map's popup and from the alarm list.
  await page.click('.seg-marker.state-trapped');
  await page.waitForSelector('.leaflet-popup-content a.open', { timeout: 5000 });
  await page.waitForTimeout(400);
  await Promise.all([page.waitForURL(/\/equipment\/gw1\/lift-a$/), page.click('.leaflet-popup-content a.open')]);
  await page.goto(`${env.BASE_URL}/alarms`);
  await ready(page);
  const links = await page.$$eval('a.equipment', els => els.map(e => e.getAttribute('href')));
  check(links.includes('/equipment/gw1/boiler-1'), `alarm list links to the equipment pages: ${links}`);

  // Indicators: a small chart per weekly series, each exported as PNG; the weekly table and
  // the breakdowns exported as CSV with the BOM.
  await page.goto(`${env.BASE_URL}/indicators`);
  await ready(page);
  const charts = await page.$$eval('figure.chart canvas[role="img"]', els => els.map(e => e.getAttribute('aria-label')));
  check(charts.length === 7, `seven charts: ${JSON.stringify(charts)}`);
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('button[data-png="alarms"]')]);
  const pngBytes = readFileSync(await png.path());
  check(pngBytes.slice(1, 4).toString() === 'PNG' && pngBytes.length > 1000, `alarms chart as PNG: ${pngBytes.length} bytes`);
  results.png = { name: png.suggestedFilename(), bytes: pngBytes.length };
  const weekly = await exported(page, 'button[data-export="weekly"]');
  check(weekly.text.split('\r\n').length >= 13, `12 weeks in the CSV: ${weekly.text}`);
  const areas = await page.textContent('#by-area tbody');
  check(areas.includes('8 River Road'), `breakdown by area: ${areas}`);
  const areaCsv = await exported(page, 'button[data-export="breakdown-area"]');
  check(/8 River Road,4,2,1,/.test(areaCsv.text), `area CSV: ${areaCsv.text}`);
  await page.click('#tabs button[data-by="maintenance_unit"]');
  check(await page.isVisible('#by-maintenance_unit') && !(await page.isVisible('#by-area')), 'tabs switch the breakdown');
  check((await page.textContent('#by-maintenance_unit')).includes('Shenlong'), 'breakdown by maintenance unit');
  results.tabs_to_png = await tabTo(page, 'button[data-png="alarms"]');
  check(results.tabs_to_png !== null, 'the PNG export is reached with Tab');
  await inChinese('indicators');
  await shot(page, 'indicators', { docs: true });

  // English, one click away, on the new pages too.
  await page.goto(`${env.BASE_URL}/equipment/gw1/station-1`);
  await ready(page);
  await Promise.all([page.waitForNavigation(), page.click('#lang')]);
  await ready(page);
  await inEnglish('filling station page');
  check((await page.textContent('#fills tbody')).includes('inspection expired'), 'refusal named in English');
  await page.goto(`${env.BASE_URL}/search?q=boiler`);
  await ready(page);
  await inEnglish('search page');
  await page.goto(`${env.BASE_URL}/indicators`);
  await ready(page);
  await inEnglish('indicators');
  await shot(page, 'indicators-en', { docs: true });
  await page.goto(`${env.BASE_URL}/equipment/gw1/lift-a`);
  await ready(page);
  await inEnglish('equipment page');
  await shot(page, 'equipment-en');
  await Promise.all([page.waitForNavigation(), page.click('#lang')]);
  await ready(page);

  // On a phone: the page lays out in one column, its buttons a thumb can hit.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, ...zone });
  await phone.goto(`${env.BASE_URL}/equipment/gw1/lift-a?token=${env.REGULATOR_TOKEN}`);
  await ready(phone);
  const h = await heights(phone, 'button.export:visible, header form.search button');
  check(h.every(x => x >= 44), `buttons on a phone: ${h} px`);
  const wide = await phone.evaluate(() => document.querySelector('.columns').scrollWidth <= window.innerWidth);
  check(wide, 'the registry fits the phone');
  await shot(phone, 'equipment-phone', { docs: true });

  // A using unit's overview: its own equipment (not another unit's lift), the open alarms and
  // the overdue cylinder, its open inspection hazard, in its own browser.
  const unit = await (await browser.newContext({ viewport: { width: 1280, height: 800 }, ...zone })).newPage();
  unit.on('console', m => { if (m.text().includes('Content Security Policy')) refused.push(m.text()); });
  await unit.goto(`${env.BASE_URL}/?token=${env.UNIT_TOKEN}`);
  await ready(unit);
  await Promise.all([unit.waitForURL(/\/unit$/), unit.click('header a[href="/unit"]')]);
  await ready(unit);
  const mine = await unit.$$eval('#equipment tbody tr', rows => rows.map(r => r.dataset.equipment));
  check(JSON.stringify(mine) === JSON.stringify(['lift-a', 'boiler-1', 'cyl-1', 'station-1']), `the unit's equipment, trapped first: ${JSON.stringify(mine)}`);
  const cardsShown = await unit.$$eval('.card .value', els => Object.fromEntries(els.map(e => [e.dataset.card, e.textContent])));
  check(cardsShown['unit.card_equipment'] === '4' && cardsShown['unit.card_trapped'] === '1' && cardsShown['unit.card_alarm'] === '2' && cardsShown['unit.card_overdue'] === '1' && cardsShown['unit.card_hazards'] === '1', `unit cards ${JSON.stringify(cardsShown)}`);
  const hazards = await unit.textContent('#hazards tbody');
  check(hazards.includes('brake lining worn below limit') && !hazards.includes('pit ladder'), `the unit's own open hazard, not another unit's: ${hazards}`);
  check(await unit.isVisible('#hazards tr.sev-critical'), 'the overdue hazard is marked');
  check((await unit.textContent('#overdue tbody')).includes('CYL-0001'), 'the overdue cylinder is listed');
  check(await contrast(unit, '#equipment .badge.state-trapped') >= 4.5, 'state badges are readable');
  await inChinese('unit overview', unit);
  await labelled('unit overview', unit);
  await shot(unit, 'unit', { docs: true });
  await Promise.all([unit.waitForNavigation(), unit.click('#lang')]);
  await ready(unit);
  await inEnglish('unit overview', unit);
  await shot(unit, 'unit-en');
  // A page at a time (`?limit=2`): the worst two first, the rest on "more", which then hides;
  // the cards still count every piece.
  await unit.goto(`${env.BASE_URL}/unit?limit=2`);
  await ready(unit);
  const shown = () => unit.$$eval('#equipment tbody tr', rows => rows.map(r => r.dataset.equipment));
  const firstPage = await shown();
  check(JSON.stringify(firstPage) === JSON.stringify(['lift-a', 'boiler-1']), `the first page, worst first: ${JSON.stringify(firstPage)}`);
  check(await unit.isVisible('#equipment-more') && (await unit.textContent('#equipment-more')) === 'More equipment', 'more equipment follows');
  check(await unit.isHidden('#overdue-more'), 'the one overdue inspection fits its page');
  check((await unit.textContent('[data-card="unit.card_equipment"]')) === '4', 'the card counts every piece, not the page');
  await unit.click('#equipment-more');
  await unit.waitForSelector('#equipment tbody tr:nth-child(4)', { state: 'attached' });
  const allPages = await shown();
  check(JSON.stringify(allPages) === JSON.stringify(['lift-a', 'boiler-1', 'cyl-1', 'station-1']), `both pages, each piece once: ${JSON.stringify(allPages)}`);
  check(await unit.isHidden('#equipment-more'), 'no more button after the last page');

  check(refused.length === 0, `CSP violations: ${JSON.stringify(refused)}`);
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
