// Telegram's Login Widget (`provider: telegram`) in Chromium. With JavaScript: the button, the
// emulator's confirmation page, Tessera's bridge page (its one inline script, allowed by the
// CSP's hash, reads `#tgAuthResult` from the address and posts it), the email Telegram does not
// give, and the return to the app. Without JavaScript: the bridge page explains, in the page's
// language, why it cannot go on. Fails on any CSP violation the browser reports.
// Env: TESSERA_URL (the public base URL), TESSERA_CHROMIUM, SCREENSHOT_DIR.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = process.env.TESSERA_URL;
const EXE = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR;
mkdirSync(SHOTS, { recursive: true });
const APP = 'https://app.example.com';

const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const onTessera = (u) => new URL(u).origin === new URL(BASE).origin;

async function context(options) {
  const c = await browser.newContext({ viewport: { width: 360, height: 740 }, ...options });
  c.setDefaultTimeout(15000);
  const page = await c.newPage();
  const violations = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
  });
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().includes('/self-service/methods/oidc/callback/telegram')) posts.push(r.postData() || '');
  });
  return { c, page, violations, posts };
}

const browser = await chromium.launch({ executablePath: EXE, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  // Russian, with JavaScript: all the way through.
  {
    const { c, page, violations, posts } = await context({ locale: 'ru-RU' });
    await page.goto(`${BASE}/self-service/login/browser`);
    await page.waitForURL(/\/ui\/login\?flow=/);
    await Promise.all([
      page.waitForURL((u) => !onTessera(u.href)),
      page.getByRole('button', { name: 'Продолжить через Telegram', exact: true }).click(),
    ]);
    await page.screenshot({ path: join(SHOTS, 'telegram-ru-01-confirm.png'), fullPage: true });
    // Confirming sends the browser to the callback with `#tgAuthResult=…`; the bridge page
    // posts it and the flow goes on to the registration page (Telegram gives no email).
    await Promise.all([
      page.waitForURL(/\/ui\/registration\?flow=/),
      page.getByRole('link', { name: 'Иван Петров (@ivan_petrov)' }).click(),
    ]);
    await page.waitForLoadState('load');
    if (posts.length !== 1) fail(`the bridge posted ${posts.length} times`);
    if (!/(^|&)tgAuthResult=[A-Za-z0-9_%-]{40,}/.test(posts[0]) || !/(^|&)state=[A-Za-z0-9_-]{20,}/.test(posts[0])) {
      fail(`the bridge's post lacks the result or the state: ${posts[0]}`);
    }
    const lang = await page.getAttribute('html', 'lang');
    if (lang !== 'ru') fail(`registration page in ${lang}`);
    const form = page.locator('form.form-gaps');
    if (await form.locator('input[name="traits.name.first"]').inputValue() !== 'Иван') fail('the name is not filled in');
    await page.screenshot({ path: join(SHOTS, 'telegram-ru-02-gaps.png'), fullPage: true });
    await form.locator('input[name="traits.email"]').fill(`ivan-${Date.now()}@example.ru`);
    // The app is not there (example.com): seeing the browser sent to it is enough.
    await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(`${APP}/`)),
      form.getByRole('button', { name: 'Продолжить через Telegram' }).click(),
    ]);
    console.log('ru: signed up through the bridge and sent back to the app');
    if (violations.length) fail(`CSP violations: ${violations.join(' | ')}`);
    await c.close();
  }

  // Chinese, without JavaScript: the bridge page says why it stops, and nothing is posted.
  {
    const { c, page, violations, posts } = await context({ locale: 'zh-CN', javaScriptEnabled: false });
    await page.goto(`${BASE}/self-service/login/browser`);
    await page.waitForURL(/\/ui\/login\?flow=/);
    await Promise.all([
      page.waitForURL((u) => !onTessera(u.href)),
      page.getByRole('button', { name: '通过 Telegram 继续', exact: true }).click(),
    ]);
    await Promise.all([
      page.waitForURL(/\/self-service\/methods\/oidc\/callback\/telegram\?state=/),
      page.getByRole('link', { name: 'Иван Петров (@ivan_petrov)' }).click(),
    ]);
    await page.waitForLoadState('load');
    const lang = await page.getAttribute('html', 'lang');
    if (lang !== 'zh-CN') fail(`bridge page in ${lang}`);
    const h1 = (await page.locator('h1').innerText()).trim();
    if (h1 !== '通过 Telegram 登录') fail(`bridge heading "${h1}"`);
    const alert = page.getByRole('alert');
    if (!(await alert.isVisible())) fail('no explanation without JavaScript');
    const said = await alert.innerText();
    if (!said.includes('JavaScript') || !said.includes('其他登录方式')) fail(`explanation: ${said}`);
    if (!(await page.getByRole('link', { name: '返回登录' }).isVisible())) fail('no way back');
    await page.screenshot({ path: join(SHOTS, 'telegram-zh-noscript.png'), fullPage: true });
    if (posts.length !== 0) fail('something was posted without JavaScript');
    if (violations.length) fail(`CSP violations: ${violations.join(' | ')}`);
    console.log(`zh-CN without JavaScript: ${said}`);
    await c.close();
  }
  console.log('all scenarios passed');
} finally {
  await browser.close();
}
