// Checks shared by the browser tests: the language of a page's own texts (not the data it
// shows, which the pages mark `.v`), labels on form fields, and keyboard reachability.
import { readFileSync, mkdirSync, copyFileSync } from 'node:fs';

const dir = new URL('../../src/central/web/i18n/', import.meta.url);
const en = JSON.parse(readFileSync(new URL('en.json', dir), 'utf8'));
const zh = JSON.parse(readFileSync(new URL('zh-CN.json', dir), 'utf8'));
const words = texts => new Set(Object.values(texts).flatMap(v => v.replace(/\{\w+\}/g, ' ').toLowerCase().match(/[a-z]{3,}/g) || []));
// The Latin words the Chinese catalogue may hold: the product's name, the switch's label and
// the sign-in parameter, and the export formats' names. Any other is an untranslated text.
const LATIN = ['seguard', 'english', 'switch', 'token', 'npm', 'csv', 'png'];
const stray = [...words(zh)].filter(w => !LATIN.includes(w));
if (stray.length) throw new Error('check failed: English words in the Chinese catalogue: ' + stray.join(', '));
// English words of the English catalogue, to look for on pages shown in Chinese.
export const ENGLISH = [...words(en)].filter(w => !LATIN.includes(w));

// The page's own visible texts: text nodes outside `.v`, option texts, placeholders,
// aria-labels and the title; not those marked as another language (the switch names the other
// language in that language, `lang="en"` on a Chinese page).
export async function ownTexts(page) {
  return page.evaluate(() => {
    const other = e => e.closest('[lang]') !== document.documentElement;
    const out = [document.title];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const e = n.parentElement;
      if (!e || e.closest('.v, script, style, [hidden]') || other(e)) continue;
      if (e.tagName !== 'OPTION' && !e.checkVisibility()) continue;
      if (n.textContent.trim()) out.push(n.textContent.trim());
    }
    for (const e of document.querySelectorAll('[placeholder], [aria-label]')) {
      if (e.closest('.v') || other(e)) continue;
      out.push(e.getAttribute('placeholder') || '', e.getAttribute('aria-label') || '');
    }
    return out.filter(Boolean);
  });
}

// English catalogue words left on a page shown in Chinese.
export async function englishLeft(page) {
  const texts = await ownTexts(page);
  return texts.filter(s => (s.toLowerCase().match(/[a-z]{3,}/g) || []).some(w => ENGLISH.includes(w)));
}

// Chinese texts left on a page shown in English.
export async function chineseLeft(page) {
  return (await ownTexts(page)).filter(s => /[\u3400-\u9fff\uff01-\uff5e\u3001-\u3011]/.test(s));
}

// Form fields without a label (a <label>, aria-label or aria-labelledby).
export async function unlabelled(page) {
  return page.$$eval('input:not([type=hidden]), select, textarea', els => els
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    .map(e => e.outerHTML.slice(0, 120)));
}

// Presses Tab from the top of the page until `selector` has the focus; the presses it took,
// or null after `limit`.
export async function tabTo(page, selector, limit = 120) {
  await page.evaluate(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); });
  for (let i = 1; i <= limit; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(s => !!document.activeElement && document.activeElement.matches(s), selector)) return i;
  }
  return null;
}

// Heights (px) of the elements matching `selector`.
export async function heights(page, selector) {
  return page.$$eval(selector, els => els.map(e => Math.round(e.getBoundingClientRect().height)));
}

// The WCAG contrast ratio of an element's text colour on its background (the first ancestor
// with an opaque one, white at the top).
export async function contrast(page, selector) {
  return page.$eval(selector, e => {
    const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
    let bg = null;
    for (let x = e; x && !bg; x = x.parentElement) {
      const c = rgb(getComputedStyle(x).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) bg = c.slice(0, 3);
    }
    bg = bg || [255, 255, 255];
    const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const [a, b] = [lum(rgb(getComputedStyle(e).color).slice(0, 3)), lum(bg)];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  });
}

// Copies screenshot `name` from `shots` to $DOCS (docs/screenshots/, which the README shows)
// when the test was run with UPDATE_DOCS_SCREENSHOTS=1; an ordinary run leaves the tree alone.
export function keepForDocs(shots, name) {
  const docs = process.env.DOCS;
  if (!docs) return;
  mkdirSync(docs, { recursive: true });
  copyFileSync(`${shots}/${name}.png`, `${docs}/${name}.png`);
}
