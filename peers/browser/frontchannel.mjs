// Front-channel logout (OIDC Front-Channel Logout 1.0) in Debian's chromium with
// playwright-core: a person signs in to an app through Tessera's OpenID Provider (the code
// posted by the `form_post` page), then signs out
// at `session/end`; the signed-out page loads the app's front-channel logout page in an iframe,
// which the browser's CSP lets through (and nothing else). The app's page is a loopback server
// of crates/tessera/tests/it/op_frontchannel.rs, which checks afterwards what it was loaded with.
//
// Env: TESSERA_URL, TESSERA_CHROMIUM, SCREENSHOT_DIR, AUTH_URL (the app's authorization
// request), APP_REDIRECT_URI, LOGOUT_URL (`session/end` for the app), FRAME_ORIGIN (the app's
// origin), EMAIL and PASSWORD of a registered person.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = process.env.TESSERA_URL;
const EXE = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR;
const env = (k) => {
  const v = process.env[k];
  if (!v) fail(`${k} must be set`);
  return v;
};
mkdirSync(SHOTS, { recursive: true });

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

const browser = await chromium.launch({ executablePath: EXE, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 820 } });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  const csp = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) csp.push(m.text());
  });

  // Sign in to the app: login form, consent, back at the app with a code. The app asks for
  // `response_mode=form_post`, so the code arrives in a POST made by Tessera's form_post page,
  // whose one inline script the page's CSP allows by hash (a violation fails below).
  const posted = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().startsWith(env('APP_REDIRECT_URI'))) posted.push(r.postData() || '');
  });
  await page.goto(env('AUTH_URL'));
  await page.waitForURL(/\/ui\/login\?flow=/);
  const login = page.locator('form.form-password');
  await login.getByLabel('Email').fill(env('EMAIL'));
  await login.getByLabel('Password').fill(env('PASSWORD'));
  await Promise.all([page.waitForURL(/\/ui\/consent\?request=/), login.getByRole('button', { name: 'Sign in' }).click()]);
  const redirect = env('APP_REDIRECT_URI');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirect)),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  if (posted.length !== 1 || !new URLSearchParams(posted[0]).get('code')) {
    fail(`the form_post page posted ${JSON.stringify(posted)} to the app`);
  }
  if (csp.length) fail(`CSP violations on the way in: ${csp.join(' | ')}`);

  // Sign out at Tessera: "Sign out?", then the signed-out page with the app's iframe.
  await page.goto(env('LOGOUT_URL'));
  const heading = (await page.locator('h1').innerText()).trim();
  if (heading !== 'Sign out?') fail(`logout heading "${heading}"`);
  const [signedOut] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/oidc/session/end' && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Sign out', exact: true }).click(),
  ]);
  // `load` waits for the iframes too.
  await page.waitForLoadState('load');
  const policy = (await signedOut.headerValue('content-security-policy')) || '';
  const frameSrc = policy.split(';').map((d) => d.trim()).filter((d) => d.startsWith('frame-src'));
  if (frameSrc.length !== 1 || frameSrc[0] !== `frame-src ${env('FRAME_ORIGIN')}`) {
    fail(`the signed-out page's CSP frames ${JSON.stringify(frameSrc)}, expected exactly ${env('FRAME_ORIGIN')}: ${policy}`);
  }
  const frames = await page.locator('iframe.fc-logout').evaluateAll((els) => els.map((e) => e.src));
  if (frames.length !== 1) fail(`${frames.length} front-channel iframes: ${frames}`);
  const src = new URL(frames[0]);
  if (src.origin !== env('FRAME_ORIGIN')) fail(`iframe at ${src.origin}`);
  if (src.searchParams.get('iss') !== `${BASE}/oidc`) fail(`iss ${src.searchParams.get('iss')}`);
  if (!src.searchParams.get('sid')) fail('no sid');
  const loaded = page.frames().find((f) => f.url().startsWith(env('FRAME_ORIGIN')));
  if (!loaded) fail('the app page was not loaded in a frame');
  const said = (await loaded.locator('body').innerText()).trim();
  if (said !== 'signed out of the app') fail(`the app's page says "${said}"`);
  const h1 = (await page.locator('h1').innerText()).trim();
  if (h1 !== 'You are signed out') fail(`heading "${h1}"`);
  await page.screenshot({ path: join(SHOTS, 'frontchannel-signed-out-1280.png'), fullPage: true });
  if (csp.length) fail(`CSP violations: ${csp.join(' | ')}`);

  // Another page of Tessera frames nothing.
  // (page.goto answers with the last response of the redirects: the login page itself.)
  const other = await page.goto(`${BASE}/self-service/login/browser`);
  await page.waitForLoadState('load');
  const loginPolicy = other.headers()['content-security-policy'] || '';
  if (!/default-src 'none'/.test(loginPolicy)) fail(`the login page has no CSP: ${other.url()}`);
  if (/frame-src/.test(loginPolicy)) fail(`the login page's CSP frames something: ${loginPolicy}`);
  console.log(`signed out with ${frames[0]}`);
  console.log('all scenarios passed');
  await context.close();
} finally {
  await browser.close();
}
