// The hosted login page with many social providers at 360 px, in English, Chinese and Russian:
// nothing overflows sideways, the first buttons are in view, the others open from the native
// "more options" disclosure, and each state is saved as a screenshot.
// Env: TESSERA_URL (the public base URL), TESSERA_CHROMIUM, SCREENSHOT_DIR.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = process.env.TESSERA_URL;
const EXE = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR;
mkdirSync(SHOTS, { recursive: true });

const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const browser = await chromium.launch({ executablePath: EXE, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  for (const lang of ['en', 'zh-CN', 'ru']) {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
    const page = await context.newPage();
    await page.goto(`${BASE}/self-service/login/browser?ui_locales=${lang}`);
    const summary = page.locator('details.more-options > summary');
    if (await summary.count() !== 1) fail(`${lang}: no "more options" disclosure`);
    const hidden = page.locator('details.more-options button.btn-social');
    const n = await hidden.count();
    if (n < 1) fail(`${lang}: nothing behind the disclosure`);
    if (await hidden.first().isVisible()) fail(`${lang}: the disclosure starts open`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 360) fail(`${lang}: the page is ${wide}px wide at 360px`);
    await page.screenshot({ path: join(SHOTS, `more-options-${lang}-closed-360.png`), fullPage: true });
    await summary.click();
    for (let i = 0; i < n; i++) {
      if (!(await hidden.nth(i).isVisible())) fail(`${lang}: button ${i} stays hidden when open`);
    }
    const wideOpen = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wideOpen > 360) fail(`${lang}: the open page is ${wideOpen}px wide at 360px`);
    await page.screenshot({ path: join(SHOTS, `more-options-${lang}-open-360.png`), fullPage: true });
    console.log(`${lang}: ${n} behind the disclosure, ${wide}px / ${wideOpen}px wide`);
    await context.close();
  }
  console.log('all scenarios passed');
} finally {
  await browser.close();
}
