// What every browser script of this folder shares: the environment the Rust tests pass
// (TESSERA_URL, SCREENSHOT_DIR, TESSERA_CHROMIUM), the page checks (language, heading, CSP,
// the accessibility audit), screenshots at 360 px and 1280 px, and the scenario runner.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const BASE = process.env.TESSERA_URL;
export const SHOTS = process.env.SCREENSHOT_DIR;
export const EXE = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
if (!BASE || !SHOTS) {
  console.error('TESSERA_URL and SCREENSHOT_DIR must be set (the Rust test that runs this script sets them)');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

export class Failure extends Error {}
export function check(cond, what) {
  if (!cond) throw new Failure(what);
}

export function onTessera(t) {
  return new URL(t.page.url()).origin === new URL(BASE).origin;
}

/// Saves the page at phone and desktop widths: `<scenario>-<nn>-<step>-{360,1280}.png`.
export async function shot(t, step) {
  if (onTessera(t)) await audit(t);
  t.n += 1;
  const name = `${t.name}-${String(t.n).padStart(2, '0')}-${step}`;
  for (const width of [360, 1280]) {
    await t.page.setViewportSize({ width, height: width === 360 ? 740 : 820 });
    await t.page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await t.page.setViewportSize({ width: 1280, height: 820 });
}

export async function expectPage(t, { lang, heading, url }) {
  if (url) await t.page.waitForURL(url);
  await t.page.waitForLoadState('load');
  const actualLang = await t.page.getAttribute('html', 'lang');
  check(actualLang === lang, `${t.page.url()}: <html lang="${actualLang}">, expected ${lang}`);
  if (heading) {
    const h1 = (await t.page.locator('h1').innerText()).trim();
    check(h1 === heading, `${t.page.url()}: heading "${h1}", expected "${heading}"`);
  }
  check(t.cspViolations.length === 0, `CSP violations: ${t.cspViolations.join(' | ')}`);
  await audit(t);
}

/// Accessibility and safety basics on every Tessera page: one h1, a label for every control,
/// errors tied to their field, and a CSRF token in every form.
export async function audit(t) {
  const r = await t.page.evaluate(() => {
    const controls = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')];
    return {
      h1: document.querySelectorAll('h1').length,
      unlabelled: controls.filter((c) => !c.labels || c.labels.length === 0).map((c) => c.name),
      untied: [...document.querySelectorAll('[aria-invalid=true]')]
        .filter((c) => !document.getElementById(c.getAttribute('aria-describedby') || ''))
        .map((c) => c.name),
      formsWithoutCsrf: [...document.querySelectorAll('form')]
        .filter((f) => !f.querySelector('input[name=csrf_token]')).length,
    };
  });
  check(r.h1 === 1, `${r.h1} h1 elements`);
  check(r.unlabelled.length === 0, `controls without a label: ${r.unlabelled}`);
  check(r.untied.length === 0, `invalid controls without their error: ${r.untied}`);
  check(r.formsWithoutCsrf === 0, `${r.formsWithoutCsrf} form(s) without csrf_token`);
}

/// Keyboard users see where they are: the first control reached with Tab has a visible outline.
export async function expectVisibleFocus(t) {
  await t.page.keyboard.press('Tab');
  const outline = await t.page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { tag: document.activeElement.tagName, style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  check(outline.style !== 'none' && outline.width >= 2, `focused ${outline.tag} has outline ${outline.style} ${outline.width}px`);
}

export async function submitAndWait(t, locator, url) {
  await Promise.all([t.page.waitForURL(url), locator.click()]);
  await t.page.waitForLoadState('load');
}

/// Runs `scenarios` (`{name: {locale, run(t)}}`), or only those named on the command line, each
/// in a fresh browser context; prints `ok`/`FAIL` per scenario and the closing line the Rust
/// side looks for, and exits 1 when any failed.
export async function runScenarios(scenarios) {
  const only = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: EXE, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  let failed = 0;
  try {
    for (const [name, s] of Object.entries(scenarios)) {
      if (only.length && !only.includes(name)) continue;
      const context = await browser.newContext({ locale: s.locale, viewport: { width: 1280, height: 820 } });
      context.setDefaultTimeout(15000);
      const page = await context.newPage();
      const t = { name, page, n: 0, cspViolations: [] };
      page.on('console', (m) => {
        if (/Content Security Policy|Refused to/.test(m.text())) t.cspViolations.push(m.text());
      });
      const started = Date.now();
      try {
        await s.run(t);
        check(t.cspViolations.length === 0, `CSP violations: ${t.cspViolations.join(' | ')}`);
        console.log(`ok   ${name} (${t.n} pages, ${Date.now() - started} ms)`);
      } catch (e) {
        failed += 1;
        await page.screenshot({ path: join(SHOTS, `${name}-FAILED.png`), fullPage: true }).catch(() => {});
        console.log(`FAIL ${name} at ${page.url()}: ${e instanceof Failure ? e.message : e.stack}`);
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  if (failed) {
    console.log(`${failed} scenario(s) failed; screenshots in ${SHOTS}`);
    process.exit(1);
  }
  console.log(`all scenarios passed; screenshots in ${SHOTS}`);
}
