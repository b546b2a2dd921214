// Drives the dashboard in headless Chromium (Debian `chromium`, driven by playwright-core from
// npm). Run by tests/central_browser.rs, which starts central and passes:
//   BASE_URL, REGULATOR_TOKEN, ALARM_ID, RESCUE_URL, EXPECTED (JSON: state -> marker count),
//   ALARM_TIME and TRAPPED_TIME (as the pages must show them in central's zone),
//   GCJ02 and BD09 (JSON [lat, lon] of the trapped lift), SCREENSHOTS (directory).
// The browser runs in another zone (America/Los_Angeles) than central's, so a time shown in
// the browser's own zone fails. Pages open in Chinese; every page is checked for English
// catalogue words left (and, after the switch, for Chinese left).
// Prints one JSON line of results; exits non-zero on the first failed check.
import { launch } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { englishLeft, chineseLeft, unlabelled, tabTo, heights, keepForDocs } from './screens.mjs';

const env = process.env;
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const results = {};
function check(ok, what) { if (!ok) throw new Error('check failed: ' + what); }

const browser = await launch();
try {
  const zone = { timezoneId: 'America/Los_Angeles' };
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, ...zone });
  // A page in Chinese holds no English word of the catalogue; in English no Chinese.
  const inChinese = async (where) => { const left = await englishLeft(page); check(left.length === 0, `${where} in Chinese, English left: ${JSON.stringify(left)}`); };
  const inEnglish = async (where) => { const left = await chineseLeft(page); check(left.length === 0, `${where} in English, Chinese left: ${JSON.stringify(left)}`); };
  results.language = [];
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
  check(popup.includes('困人') && popup.includes('31103101002016010001'), `popup shows state and registry fields: ${popup}`);
  check(await page.getAttribute('html', 'lang') === 'zh-CN', 'pages open in Chinese');
  await inChinese('map with popup'); results.language.push('map');
  await page.screenshot({ path: `${shots}/map-popup.png` });

  // Alarm list: acknowledge with a comment.
  await page.goto(`${env.BASE_URL}/alarms`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  const row = `tr[data-alarm="${env.ALARM_ID}"]`;
  await inChinese('alarms'); results.language.push('alarms');
  const noLabel = await unlabelled(page);
  check(noLabel.length === 0, `alarm page fields without a label: ${JSON.stringify(noLabel)}`);
  // Times in central's zone (Asia/Shanghai), 24-hour, whatever the browser's zone.
  const raised = (await page.textContent(`${row} td:first-child`)).trim();
  check(raised.startsWith(env.ALARM_TIME), `alarm raised at "${raised}", want ${env.ALARM_TIME}`);
  results.alarm_time = raised;
  results.tabs_to_ack = await tabTo(page, `${row} .ack-button`);
  check(results.tabs_to_ack !== null, 'the acknowledge button is reached with Tab');
  await page.fill(`${row} .comment`, 'called the maintenance unit');
  await page.click(`${row} .ack-button`);
  await page.waitForSelector(`${row} .ack:has-text("inspector-li")`, { timeout: 5000 });
  results.ack = (await page.textContent(`${row} .ack`)).trim();
  await page.screenshot({ path: `${shots}/alarms.png`, fullPage: true });
  keepForDocs(shots, 'alarms');

  await page.goto(`${env.BASE_URL}/indicators`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await inChinese('indicators'); results.language.push('indicators');
  const values = await page.$$eval('.card .value', els => els.map(e => e.textContent));
  check(values.every(v => /^(\d{1,3}(,\d{3})*(\.\d+)?%?|–)$/.test(v)), `indicator values in the Chinese convention: ${JSON.stringify(values)}`);
  results.indicator_values = values;
  await page.screenshot({ path: `${shots}/indicators.png`, fullPage: true });

  // One click to English, remembered on the next page; and back.
  await Promise.all([page.waitForNavigation(), page.click('#lang')]);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  check(await page.getAttribute('html', 'lang') === 'en', 'switched to English');
  await inEnglish('indicators');
  await page.screenshot({ path: `${shots}/indicators-en.png`, fullPage: true });
  for (const [path, name] of [['/alarms', 'alarms'], ['/', 'map']]) {
    await page.goto(`${env.BASE_URL}${path}`);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    await page.waitForSelector('#who:has-text("inspector-li")', { timeout: 5000 });
    await inEnglish(name);
    await page.screenshot({ path: `${shots}/${name}-en.png`, fullPage: name !== 'map' });
  }
  results.language.push('english');
  await Promise.all([page.waitForNavigation(), page.click('#lang')]);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await inChinese('map after switching back');

  // The alarm list on a phone: acknowledge buttons a thumb can hit.
  const phoneSize = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, ...zone };
  const phoneList = await browser.newPage(phoneSize);
  await phoneList.goto(`${env.BASE_URL}/alarms?token=${env.REGULATOR_TOKEN}`);
  await phoneList.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  const ackHeights = await heights(phoneList, '.ack-button');
  check(ackHeights.length > 0 && ackHeights.every(h => h >= 44), `acknowledge buttons on a phone: ${ackHeights} px`);
  results.ack_heights = ackHeights;
  await phoneList.screenshot({ path: `${shots}/alarms-phone.png`, fullPage: true });

  // Rescue page on a phone-sized screen: walk the steps.
  const phone = await browser.newPage(phoneSize);
  await phone.goto(env.RESCUE_URL);
  await phone.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  check(!new URL(phone.url()).searchParams.has('t'), `the link token left the address bar: ${phone.url()}`);
  await phone.screenshot({ path: `${shots}/rescue-0-occurred.png`, fullPage: true });
  keepForDocs(shots, 'rescue-0-occurred');
  {
    const left = await englishLeft(phone);
    check(left.length === 0, `rescue page in Chinese, English left: ${JSON.stringify(left)}`);
    const noLabel = await unlabelled(phone);
    check(noLabel.length === 0, `rescue page fields without a label: ${JSON.stringify(noLabel)}`);
    // Navigation links: AMap in GCJ-02 (`to=lon,lat`), Baidu in BD-09 (`latlng:lat,lon`).
    const amap = await phone.getAttribute('#nav-amap', 'href');
    const baidu = decodeURIComponent(await phone.getAttribute('#nav-baidu', 'href'));
    const [gLat, gLon] = JSON.parse(env.GCJ02), [bLat, bLon] = JSON.parse(env.BD09);
    const to = /[?&]to=([-\d.]+),([-\d.]+)/.exec(amap);
    const dest = /latlng:([-\d.]+),([-\d.]+)/.exec(baidu);
    check(to && Math.abs(to[1] - gLon) < 1e-9 && Math.abs(to[2] - gLat) < 1e-9, `AMap link ${amap} goes to GCJ-02 ${env.GCJ02}`);
    check(dest && Math.abs(dest[1] - bLat) < 1e-9 && Math.abs(dest[2] - bLon) < 1e-9, `Baidu link ${baidu} goes to BD-09 ${env.BD09}`);
    results.navigation = { amap, baidu };
    // The small map marks the lift in the basemap's system (this central's tiles are GCJ-02).
    await phone.waitForSelector('#where[data-at]', { state: 'attached', timeout: 5000 });
    const at = (await phone.getAttribute('#where', 'data-at')).split(',').map(Number);
    check(Math.abs(at[0] - gLat) < 1e-9 && Math.abs(at[1] - gLon) < 1e-9, `small map at ${at}, want GCJ-02 ${env.GCJ02}`);
    check(await phone.isVisible('#where path.leaflet-interactive'), 'the lift is marked on the small map');
    const tels = await phone.$$eval('a[href^="tel:"]', els => els.map(e => e.getAttribute('href')));
    check(tels.includes('tel:+862155550101'), `tel: links ${tels}`);
    const fields = await phone.textContent('#fields');
    check(fields.includes('B2') && fields.includes('一级') && fields.includes(env.TRAPPED_TIME), `floor, tier and time in ${fields}`);
    // It ticks every second; headless Chromium can hold a page's timers back while nothing
    // talks to it, so look again every half second, for up to 5 s.
    const e1 = await phone.textContent('#elapsed');
    let e2 = e1;
    for (let i = 0; i < 10 && e2 === e1; i++) {
      await phone.waitForTimeout(500);
      e2 = await phone.textContent('#elapsed');
    }
    check(e1 && e2 && e1 !== e2, `time trapped counts: ${e1} then ${e2}`);
    results.elapsed = e2;
    const stepHeights = await heights(phone, '.steps button, .links a');
    check(stepHeights.every(h => h >= 44), `rescue buttons on a phone: ${stepHeights} px`);
    results.tabs_to_step = await tabTo(phone, 'button[data-step="responded"]');
    check(results.tabs_to_step !== null, 'the first rescue step is reached with Tab');
  }
  // A step taken without a connection waits on the phone and is sent once when it returns.
  await phone.context().setOffline(true);
  await phone.fill('#note', 'responded from the phone');
  await phone.click('button[data-step="responded"]');
  await phone.waitForSelector('body[data-queued="1"]', { state: 'attached', timeout: 5000 });
  check((await phone.textContent('#queued')).length > 0, 'the page says the step waits');
  await phone.screenshot({ path: `${shots}/rescue-1-offline.png`, fullPage: true });
  await phone.context().setOffline(false);
  await phone.waitForSelector('#status[data-status="responded"]', { timeout: 15000 });
  await phone.waitForSelector('body[data-queued="0"]', { state: 'attached', timeout: 5000 });
  const walked = ['responded (queued offline)'];
  for (const [i, step] of ['on_site', 'completed'].entries()) {
    await phone.fill('#note', `${step} from the phone`);
    await phone.click(`button[data-step="${step}"]`);
    await phone.waitForSelector(`#status[data-status="${step}"]`, { timeout: 5000 });
    walked.push(step);
    await phone.screenshot({ path: `${shots}/rescue-${i + 2}-${step}.png`, fullPage: true });
  }
  check(await phone.isDisabled('button[data-step="false_alarm"]'), 'closed dispatch takes no more steps');
  check(await phone.getAttribute('#read-only', 'data-reason') === 'rescue.read_only_closed', 'the page says the link only reads now');
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
  await page.waitForSelector('#who:has-text("未登录")', { timeout: 5000 });
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
