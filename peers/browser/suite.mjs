// The hosted sign-in pages clicked through in Debian's chromium with playwright-core.
//
// Run by crates/tessera/tests/ui_browser.rs, which starts Tessera and the provider emulators
// and passes: TESSERA_URL (public base URL), TESSERA_CHROMIUM (browser binary),
// SCREENSHOT_DIR (where every page is saved at 360 px and 1280 px wide), and for the OpenID
// Provider scenarios an app registered through the admin API: APP_CLIENT_ID and
// APP_REDIRECT_URI (a loopback page the test serves), and SPA_URL, the origin of a single-page
// app (peers/browser/spa/, registered as `spa`) that signs in with oidc-client-ts.
//
// Each scenario runs in a fresh browser context (its own cookies and language). A scenario
// fails on a wrong page, a page in the wrong language, or any CSP violation the browser reports.

import { createHash, randomBytes } from 'node:crypto';
import { BASE, Failure, check, shot, expectPage, expectVisibleFocus, submitAndWait, runScenarios } from './lib.mjs';

/// Presses a provider's button and picks a fake user on the emulator's consent page.
async function socialSignIn(t, buttonName, userLink) {
  await submitAndWait(t, t.page.getByRole('button', { name: buttonName, exact: true }), (u) => u.origin !== new URL(BASE).origin);
  await shot(t, 'upstream-consent');
  await t.page.getByRole('link', { name: userLink }).click();
  await t.page.waitForURL((u) => u.origin === new URL(BASE).origin && !u.pathname.startsWith('/self-service'));
  await t.page.waitForLoadState('load');
}

async function signOut(t, name) {
  await submitAndWait(t, t.page.getByRole('link', { name }), /\/ui\/welcome/);
}

/// An authorization request of the test's app (PKCE S256, a fresh state), asking for `lang`.
function appAuthorizeUrl(lang) {
  const clientId = process.env.APP_CLIENT_ID;
  const redirect = process.env.APP_REDIRECT_URI;
  check(clientId && redirect, 'APP_CLIENT_ID and APP_REDIRECT_URI must be set');
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(9).toString('base64url');
  const q = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirect,
    response_type: 'code',
    scope: 'openid email',
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ui_locales: lang,
  });
  return { url: `${BASE}/oidc/auth?${q.toString().replace(/\+/g, '%20')}`, state, redirect };
}

/// The SPA's #status once its script has finished ("signed out", "signed in" or "error: …").
async function spaStatus(t) {
  await t.page.waitForFunction(() => document.getElementById('status')?.textContent !== 'loading');
  return (await t.page.locator('#status').innerText()).trim();
}

/// What a cross-origin fetch from the current page gets: "answered <status>", or "blocked" when
/// the browser refuses it for CORS (fetch rejects).
async function fetchFromPage(t, url, init) {
  return t.page.evaluate(async ([u, i]) => {
    try {
      return `answered ${(await fetch(u, i)).status}`;
    } catch (e) {
      return `blocked (${e.name})`;
    }
  }, [url, init]);
}

const scenarios = {
  // The switcher: English by Accept-Language, then Russian, then Chinese, which sticks.
  'language-switch': { locale: 'en-US', async run(t) {
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await expectPage(t, { lang: 'en', heading: 'Sign in', url: /\/ui\/login\?flow=/ });
    await expectVisibleFocus(t);
    await shot(t, 'login-en');
    await submitAndWait(t, t.page.getByRole('link', { name: 'Русский' }), /\/ui\/login\?flow=/);
    await expectPage(t, { lang: 'ru', heading: 'Вход' });
    check(await t.page.getByRole('button', { name: 'Продолжить через VK' }).isVisible(), 'Russian VK button');
    await shot(t, 'login-ru');
    await submitAndWait(t, t.page.getByRole('link', { name: '简体中文' }), /\/ui\/login\?flow=/);
    await expectPage(t, { lang: 'zh-CN', heading: '登录' });
    await shot(t, 'login-zh');
    // The choice is remembered on the next page.
    await t.page.getByRole('link', { name: '立即注册' }).click();
    await expectPage(t, { lang: 'zh-CN', heading: '创建账号', url: /\/ui\/registration\?flow=/ });
    await shot(t, 'registration-zh');
    // ui_locales (as the OpenID Provider passes it) wins over the cookie.
    await t.page.goto(`${t.page.url()}&ui_locales=ru%20en`);
    await expectPage(t, { lang: 'ru', heading: 'Создание аккаунта' });
  } },

  // Password sign-up (errors first, then right), sign-out, a wrong password, sign-in.
  'password': { locale: 'en-US', async run(t) {
    const email = `reader-${Date.now()}@example.com`;
    await t.page.goto(`${BASE}/self-service/registration/browser`);
    await expectPage(t, { lang: 'en', heading: 'Create your account', url: /\/ui\/registration\?flow=/ });
    await shot(t, 'registration');
    const form = t.page.locator('form.form-password');
    await form.getByLabel('Email').fill(email);
    await form.getByLabel('Password').fill('short');
    await submitAndWait(t, form.getByRole('button', { name: 'Create account' }), /\/ui\/registration\?flow=/);
    // The agreement is enforced by the server, and the error sits next to the checkbox.
    const agree = t.page.locator('form.form-password input[name=terms_accepted]');
    check(await agree.getAttribute('aria-invalid') === 'true', 'agreement error is tied to the checkbox');
    check(await t.page.getByText('Accept the terms to continue.').first().isVisible(), 'agreement error shown');
    await shot(t, 'registration-agreement-error');
    await form.getByLabel('Password').fill('short');
    await form.locator('input[name=terms_accepted]').check();
    await submitAndWait(t, form.getByRole('button', { name: 'Create account' }), /\/ui\/registration\?flow=/);
    const pw = t.page.locator('form.form-password').getByLabel('Password');
    check(await pw.getAttribute('aria-invalid') === 'true', 'password marked invalid');
    check(await t.page.getByText('at least 8 characters').isVisible(), 'password policy error shown');
    check(await t.page.locator('form.form-password').getByLabel('Email').inputValue() === email, 'typed email kept');
    await shot(t, 'registration-password-error');
    await t.page.locator('form.form-password').getByLabel('Password').fill('correct horse battery staple');
    await t.page.locator('form.form-password input[name=terms_accepted]').check();
    await submitAndWait(t, t.page.locator('form.form-password').getByRole('button', { name: 'Create account' }), /\/ui\/welcome/);
    await expectPage(t, { lang: 'en', heading: 'Welcome' });
    check(await t.page.getByText(`You are signed in as ${email}.`).isVisible(), 'signed in after sign-up');
    await shot(t, 'welcome');
    await signOut(t, 'Sign out');
    check(await t.page.getByText('You are not signed in.').isVisible(), 'signed out');
    await shot(t, 'signed-out');
    await submitAndWait(t, t.page.getByRole('link', { name: 'Sign in' }), /\/ui\/login\?flow=/);
    const login = t.page.locator('form.form-password');
    await login.getByLabel('Email').fill(email);
    await login.getByLabel('Password').fill('wrong password here');
    await submitAndWait(t, login.getByRole('button', { name: 'Sign in' }), /\/ui\/login\?flow=/);
    check(await t.page.getByRole('alert').filter({ hasText: 'incorrect' }).isVisible(), 'wrong password announced');
    await shot(t, 'login-wrong-password');
    await t.page.locator('form.form-password').getByLabel('Password').fill('correct horse battery staple');
    await submitAndWait(t, t.page.locator('form.form-password').getByRole('button', { name: 'Sign in' }), /\/ui\/welcome/);
    check(await t.page.getByText(`You are signed in as ${email}.`).isVisible(), 'signed in');
    await submitAndWait(t, t.page.getByRole('link', { name: 'Account settings' }), /\/ui\/settings\?flow=/);
    await expectPage(t, { lang: 'en', heading: 'Account settings' });
    await shot(t, 'settings');
    const profile = t.page.locator('form.form-profile');
    await profile.getByLabel('First name').fill('Ada');
    await submitAndWait(t, profile.getByRole('button', { name: 'Save' }), /\/ui\/settings\?flow=/);
    check(await t.page.getByText('Your changes have been saved.').isVisible(), 'settings saved');
    await shot(t, 'settings-saved');
    await signOut(t, 'Sign out');
    check(await t.page.getByText('You are not signed in.').isVisible(), 'signed out from settings');
  } },

  // Forgot password in Russian: "Forgot password?" on the login page, the address, the code
  // (read back from the courier's queue through the admin API, as the mail carries it), and
  // the settings page where the new password goes.
  'recovery-ru': { locale: 'ru-RU', async run(t) {
    const admin = process.env.ADMIN_URL;
    const email = `olga-${Date.now()}@example.ru`;
    const made = await fetch(`${admin}/admin/identities`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ schema_id: 'default', traits: { email }, credentials: { password: { config: { password: 'a forgotten password 1' } } } }),
    });
    check(made.status === 201, `identity created: ${made.status}`);
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await expectPage(t, { lang: 'ru', heading: 'Вход', url: /\/ui\/login\?flow=/ });
    await submitAndWait(t, t.page.getByRole('link', { name: 'Забыли пароль?' }), /\/ui\/recovery\?flow=/);
    await expectPage(t, { lang: 'ru', heading: 'Восстановление доступа' });
    await shot(t, 'recovery-address');
    await t.page.getByLabel('Эл. почта').fill(email);
    await submitAndWait(t, t.page.getByRole('button', { name: 'Продолжить' }), /\/ui\/recovery\?flow=/);
    await expectPage(t, { lang: 'ru', heading: 'Восстановление доступа' });
    check(await t.page.getByText('мы отправили на него код восстановления').isVisible(), 'code sent said');
    await shot(t, 'recovery-code');
    const listed = await (await fetch(`${admin}/admin/courier/messages?recipient=${encodeURIComponent(email)}`)).json();
    const code = (listed[0]?.body || '').match(/\b\d{6}\b/)?.[0];
    check(code, `a code in the queued mail: ${JSON.stringify(listed)}`);
    await t.page.getByLabel('Код восстановления').fill(code);
    await submitAndWait(t, t.page.getByRole('button', { name: 'Продолжить' }), /\/ui\/settings\?flow=/);
    await expectPage(t, { lang: 'ru' });
    check(await t.page.getByText('Доступ к аккаунту восстановлен').isVisible(), 'recovered said on settings');
    await shot(t, 'recovered-settings');
    await t.page.locator('form.form-password input[name=password]').fill('a brand new password 2');
    await submitAndWait(t, t.page.locator('form.form-password button[name=method]'), /\/ui\/settings\?flow=/);
    await expectPage(t, { lang: 'ru' });
    await shot(t, 'password-set');
  } },

  // Address verification in Chinese: the address, the code from the queued mail, verified.
  'verification-zh': { locale: 'zh-CN', async run(t) {
    const admin = process.env.ADMIN_URL;
    const email = `wang-${Date.now()}@example.cn`;
    const made = await fetch(`${admin}/admin/identities`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ schema_id: 'default', traits: { email } }),
    });
    check(made.status === 201, `identity created: ${made.status}`);
    await t.page.goto(`${BASE}/self-service/verification/browser`);
    await expectPage(t, { lang: 'zh-CN', heading: '验证邮箱地址', url: /\/ui\/verification\?flow=/ });
    await shot(t, 'verification-address');
    await t.page.getByLabel('邮箱').fill(email);
    await submitAndWait(t, t.page.locator('button[name=method]').first(), /\/ui\/verification\?flow=/);
    await expectPage(t, { lang: 'zh-CN', heading: '验证邮箱地址' });
    await shot(t, 'verification-code');
    const listed = await (await fetch(`${admin}/admin/courier/messages?recipient=${encodeURIComponent(email)}`)).json();
    const code = (listed[0]?.body || '').match(/\b\d{6}\b/)?.[0];
    check(code, `a code in the queued mail: ${JSON.stringify(listed)}`);
    await t.page.getByLabel('验证码').fill(code);
    await submitAndWait(t, t.page.locator('button[name=method]').first(), /\/ui\/verification\?flow=/);
    await expectPage(t, { lang: 'zh-CN', heading: '验证邮箱地址' });
    check(await t.page.getByText('你的邮箱地址已验证。').isVisible(), 'verified said');
    await shot(t, 'verified');
    const who = await (await fetch(`${admin}/admin/identities?credentials_identifier=${encodeURIComponent(email)}`)).json();
    check(who[0]?.verifiable_addresses?.[0]?.verified === true, `verified in the identity: ${JSON.stringify(who)}`);
  } },

  // DingTalk in Chinese: straight in, then the linked account in settings.
  'dingtalk-zh': { locale: 'zh-CN', async run(t) {
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await expectPage(t, { lang: 'zh-CN', heading: '登录', url: /\/ui\/login\?flow=/ });
    // The experience's provider order: DingTalk first.
    const first = await t.page.locator('form.form-social button').first().innerText();
    check(first.includes('钉钉'), `first social button is "${first}"`);
    await socialSignIn(t, '通过钉钉继续', '张伟');
    await expectPage(t, { lang: 'zh-CN', heading: '欢迎', url: /\/ui\/welcome/ });
    check(await t.page.getByText('zhangwei@example.cn').isVisible(), 'signed in as 张伟');
    await shot(t, 'welcome');
    await submitAndWait(t, t.page.getByRole('link', { name: '账号设置' }), /\/ui\/settings\?flow=/);
    await expectPage(t, { lang: 'zh-CN', heading: '账号设置' });
    check(await t.page.getByRole('button', { name: '解除关联钉钉' }).isVisible(), 'DingTalk shown as linked');
    await shot(t, 'settings');
  } },

  // DingTalk without an email: fill the gaps (in Chinese), with an error first.
  'fill-the-gaps-zh': { locale: 'zh-CN', async run(t) {
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await socialSignIn(t, '通过钉钉继续', '李娜');
    await expectPage(t, { lang: 'zh-CN', heading: '还差一步', url: /\/ui\/registration\?flow=/ });
    const form = t.page.locator('form.form-gaps');
    check(await form.getByLabel('邮箱').inputValue() === '', 'email is the gap');
    check(await form.getByLabel('名', { exact: false }).first().inputValue() !== '', 'mapped name is pre-filled');
    await shot(t, 'gaps');
    await submitAndWait(t, form.getByRole('button', { name: '通过钉钉继续' }), /\/ui\/registration\?flow=/);
    // Both problems at once, each next to its field: the missing email and the agreement.
    check(await t.page.locator('form.form-gaps input[name="traits.email"]').getAttribute('aria-invalid') === 'true', 'email gap marked');
    check(await t.page.getByText('此项为必填项。').first().isVisible(), 'email gap explained');
    check(await t.page.getByText('请先同意条款再继续。').first().isVisible(), 'agreement error shown');
    await shot(t, 'gaps-errors');
    const again = t.page.locator('form.form-gaps');
    await again.getByLabel('邮箱').fill(`lina-${Date.now()}@example.cn`);
    await again.locator('input[name=terms_accepted]').check();
    await submitAndWait(t, again.getByRole('button', { name: '通过钉钉继续' }), /\/ui\/welcome/);
    await expectPage(t, { lang: 'zh-CN', heading: '欢迎' });
    await shot(t, 'welcome');
  } },

  // VK in Russian.
  'vk-ru': { locale: 'ru-RU', async run(t) {
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await expectPage(t, { lang: 'ru', heading: 'Вход', url: /\/ui\/login\?flow=/ });
    await socialSignIn(t, 'Продолжить через VK', 'Иван Петров');
    await expectPage(t, { lang: 'ru', heading: 'Добро пожаловать', url: /\/ui\/welcome/ });
    check(await t.page.getByText('ivan.petrov@example.ru').isVisible(), 'signed in as Иван');
    await shot(t, 'welcome');
    await submitAndWait(t, t.page.getByRole('link', { name: 'Настройки аккаунта' }), /\/ui\/settings\?flow=/);
    await expectPage(t, { lang: 'ru', heading: 'Настройки аккаунта' });
    await shot(t, 'settings');
  } },

  // GitHub in English, and a cancelled GitHub sign-in with its way forward.
  'github-en': { locale: 'en-GB', async run(t) {
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await expectPage(t, { lang: 'en', heading: 'Sign in', url: /\/ui\/login\?flow=/ });
    await submitAndWait(t, t.page.getByRole('button', { name: 'Continue with GitHub' }), (u) => u.origin !== new URL(BASE).origin);
    await t.page.getByRole('link', { name: 'Cancel' }).click();
    await expectPage(t, { lang: 'en', heading: 'Sign in', url: /\/ui\/login\?flow=/ });
    check(await t.page.getByRole('alert').filter({ hasText: 'cancelled or denied' }).isVisible(), 'denied message');
    await shot(t, 'access-denied');
    await socialSignIn(t, 'Continue with GitHub', 'The Octocat');
    await expectPage(t, { lang: 'en', heading: 'Welcome', url: /\/ui\/welcome/ });
    check(await t.page.getByText('octocat@example.com').isVisible(), 'signed in as octocat');
    await shot(t, 'welcome');
  } },

  // "This email already has an account": sign in with the password to link GitHub, then
  // unlink it again in settings.
  'linking': { locale: 'en-US', async run(t) {
    await t.page.goto(`${BASE}/self-service/registration/browser`);
    const form = t.page.locator('form.form-password');
    await form.getByLabel('Email').fill('ivan@example.ru');
    await form.getByLabel('Password').fill('a long enough password');
    await form.locator('input[name=terms_accepted]').check();
    await submitAndWait(t, form.getByRole('button', { name: 'Create account' }), /\/ui\/welcome/);
    await signOut(t, 'Sign out');
    await t.page.goto(`${BASE}/self-service/login/browser`);
    await socialSignIn(t, 'Continue with GitHub', 'Иван Петров');
    await expectPage(t, { lang: 'en', heading: 'Link your account', url: /\/ui\/login\?flow=/ });
    check(await t.page.getByRole('status').filter({ hasText: 'ivan@example.ru' }).isVisible(), 'link explanation');
    await shot(t, 'sign-in-to-link');
    const login = t.page.locator('form.form-password');
    await login.getByLabel('Password').fill('a long enough password');
    // Proving the account leads to an explicit question that names the GitHub account.
    await submitAndWait(t, login.getByRole('button', { name: 'Sign in' }), /\/ui\/login\?flow=/);
    await expectPage(t, { lang: 'en', heading: 'Link your account', url: /\/ui\/login\?flow=/ });
    check(await t.page.getByText('Link the GitHub account').isVisible(), 'link question names the account');
    await shot(t, 'confirm-link');
    await submitAndWait(t, t.page.getByRole('button', { name: 'Link GitHub account' }), /\/ui\/welcome/);
    await submitAndWait(t, t.page.getByRole('link', { name: 'Account settings' }), /\/ui\/settings\?flow=/);
    check(await t.page.getByRole('button', { name: 'Unlink GitHub' }).isVisible(), 'GitHub linked');
    await shot(t, 'settings-linked');
    await submitAndWait(t, t.page.getByRole('button', { name: 'Unlink GitHub' }), /\/ui\/settings\?flow=/);
    check(await t.page.getByRole('button', { name: 'Link GitHub' }).isVisible(), 'GitHub unlinked');
    await shot(t, 'settings-unlinked');
    // Link it back from settings, through the emulator.
    await submitAndWait(t, t.page.getByRole('button', { name: 'Link GitHub' }), (u) => u.origin !== new URL(BASE).origin);
    await t.page.getByRole('link', { name: 'Иван Петров' }).click();
    await t.page.waitForURL(/\/ui\/settings\?flow=/);
    check(await t.page.getByRole('button', { name: 'Unlink GitHub' }).isVisible(), 'GitHub linked again');
  } },

  // Error pages: an unknown error id, and an expired or unknown flow, each with a way forward.
  'errors': { locale: 'ru-RU', async run(t) {
    await t.page.goto(`${BASE}/ui/error?id=00000000-0000-4000-8000-000000000000`);
    await expectPage(t, { lang: 'ru', heading: 'Что-то пошло не так' });
    await shot(t, 'error-ru');
    await submitAndWait(t, t.page.getByRole('link', { name: 'Начать заново' }), /\/ui\/login\?flow=/);
    await expectPage(t, { lang: 'ru', heading: 'Вход' });
  } },

  // An app signs in through the OpenID Provider, asking for Chinese: sign-in with DingTalk,
  // the consent page (app name, scopes, 授权), and the app receives a code with its state.
  'app-sign-in-with-consent': { locale: 'en-US', async run(t) {
    const { url, state, redirect } = appAuthorizeUrl('zh-CN');
    await t.page.goto(url);
    await expectPage(t, { lang: 'zh-CN', heading: '登录', url: /\/ui\/login\?flow=/ });
    await socialSignIn(t, '通过钉钉继续', '张伟');
    await expectPage(t, { lang: 'zh-CN', heading: '授权访问', url: /\/ui\/consent\?request=/ });
    check(await t.page.getByText('Bookstore WordPress 请求访问你的 Bookstore 账号').isVisible(), 'app name in the heading');
    check(await t.page.getByText('zhangwei@example.cn').isVisible(), 'who is signed in');
    const scopes = await t.page.locator('ul.scopes li').allInnerTexts();
    check(scopes.join('|') === '确认你的身份|查看你的邮箱地址', `scopes: ${scopes}`);
    check(await t.page.getByRole('button', { name: '取消' }).isVisible(), 'deny button');
    await shot(t, 'consent-zh');
    await submitAndWait(t, t.page.getByRole('button', { name: '授权', exact: true }), (u) => u.href.startsWith(redirect));
    const back = new URL(t.page.url());
    check(back.searchParams.get('code'), `no code in ${back}`);
    check(back.searchParams.get('state') === state, `state ${back.searchParams.get('state')}, expected ${state}`);
    check(!back.searchParams.get('error'), `error ${back.searchParams.get('error')}`);
    check(t.cspViolations.length === 0, `CSP violations: ${t.cspViolations.join(' | ')}`);
  } },

  // The same app in Russian, and the user says no: the app hears access_denied with its state.
  // Then the OpenID Provider's error, "Sign out?" and "signed out" pages.
  'app-sign-in-deny': { locale: 'en-US', async run(t) {
    const { url, state, redirect } = appAuthorizeUrl('ru');
    await t.page.goto(url);
    await expectPage(t, { lang: 'ru', heading: 'Вход', url: /\/ui\/login\?flow=/ });
    await socialSignIn(t, 'Продолжить через VK', 'Иван Петров');
    await expectPage(t, { lang: 'ru', heading: 'Разрешение доступа', url: /\/ui\/consent\?request=/ });
    check(await t.page.getByText('Bookstore WordPress запрашивает доступ').isVisible(), 'app name in the heading');
    await shot(t, 'consent-ru');
    await submitAndWait(t, t.page.getByRole('button', { name: 'Отмена', exact: true }), (u) => u.href.startsWith(redirect));
    const back = new URL(t.page.url());
    check(back.searchParams.get('error') === 'access_denied', `error ${back.searchParams.get('error')} in ${back}`);
    check(back.searchParams.get('state') === state, `state ${back.searchParams.get('state')}, expected ${state}`);
    check(!back.searchParams.get('code'), 'no code after a denial');
    // The OP's other pages, in the language this journey chose: an error page, then
    // "Sign out?" (no id_token_hint) and "signed out".
    await t.page.goto(`${BASE}/oidc/auth?client_id=no-such-app&response_type=code`);
    await expectPage(t, { lang: 'ru', heading: 'Неизвестное приложение' });
    check(await t.page.locator('[data-error] span[lang=en]').innerText() !== '', 'technical detail in English');
    await shot(t, 'op-error-ru');
    await t.page.goto(`${BASE}/oidc/session/end?client_id=${encodeURIComponent(process.env.APP_CLIENT_ID)}`);
    await expectPage(t, { lang: 'ru', heading: 'Выйти из аккаунта?' });
    await shot(t, 'logout-confirm-ru');
    await submitAndWait(t, t.page.getByRole('button', { name: 'Выйти', exact: true }), (u) => u.pathname === '/oidc/session/end' && u.search === '');
    await expectPage(t, { lang: 'ru', heading: 'Вы вышли из аккаунта' });
    await shot(t, 'signed-out-ru');
  } },

  // A single-page app on its own origin signs in with oidc-client-ts (code + PKCE). Discovery,
  // the code's redemption at /oidc/token and userinfo are cross-origin fetches, which work only
  // because the OpenID Provider answers CORS for the origins of `spa` apps' redirect URIs.
  // Introspection stays closed to browsers, and /oidc/token to a `traditional` app's origin.
  'spa-sign-in': { locale: 'en-US', async run(t) {
    const spa = process.env.SPA_URL;
    check(spa, 'SPA_URL must be set');
    check(new URL(spa).origin !== new URL(BASE).origin, `the SPA (${spa}) must be on another origin than Tessera`);
    const email = `spa-reader-${Date.now()}@example.com`;
    const password = 'correct horse battery staple';
    // The user, registered beforehand and signed out again.
    await t.page.goto(`${BASE}/self-service/registration/browser`);
    await expectPage(t, { lang: 'en', heading: 'Create your account', url: /\/ui\/registration\?flow=/ });
    const form = t.page.locator('form.form-password');
    await form.getByLabel('Email').fill(email);
    await form.getByLabel('Password').fill(password);
    await form.locator('input[name=terms_accepted]').check();
    await submitAndWait(t, form.getByRole('button', { name: 'Create account' }), /\/ui\/welcome/);
    await signOut(t, 'Sign out');

    await t.page.goto(`${spa}/`);
    const before = await spaStatus(t);
    check(before === 'signed out', `the SPA's start page says "${before}"`);
    await shot(t, 'spa-start');
    await t.page.getByRole('button', { name: 'Sign in' }).click();
    // oidc-client-ts reads discovery (cross-origin) before it navigates to /oidc/auth.
    await t.page.waitForURL(/\/ui\/login\?flow=/).catch(async () => {
      throw new Failure(`no Tessera sign-in page after the SPA's "Sign in"; the SPA says "${await spaStatus(t)}"`);
    });
    await expectPage(t, { lang: 'en', heading: 'Sign in' });
    await shot(t, 'login');
    const login = t.page.locator('form.form-password');
    await login.getByLabel('Email').fill(email);
    await login.getByLabel('Password').fill(password);
    await submitAndWait(t, login.getByRole('button', { name: 'Sign in' }), /\/ui\/consent\?request=/);
    await expectPage(t, { lang: 'en', heading: 'Allow access' });
    check(await t.page.getByText('Bookshelf SPA wants to access your Bookstore account').isVisible(), 'app name in the heading');
    const scopes = await t.page.locator('ul.scopes li').allInnerTexts();
    check(scopes.join('|') === 'Know who you are|See your name and profile picture|See your email address', `scopes: ${scopes}`);
    await shot(t, 'consent');
    await submitAndWait(t, t.page.getByRole('button', { name: 'Allow', exact: true }), (u) => u.href.startsWith(`${spa}/callback`));
    // signinRedirectCallback() redeems the code with a cross-origin POST to /oidc/token, then
    // the page calls userinfo with the access token and tries introspection.
    const after = await spaStatus(t);
    await shot(t, 'spa-signed-in');
    check(after === 'signed in', `the SPA after the callback says "${after}" (code redemption or userinfo from the SPA's origin failed)`);
    const sub = (await t.page.locator('#sub').innerText()).trim();
    check(sub !== '', 'no sub in the id_token profile');
    const idEmail = (await t.page.locator('#email').innerText()).trim();
    check(idEmail === email, `id_token email "${idEmail}", expected ${email}`);
    const infoEmail = (await t.page.locator('#userinfo-email').innerText()).trim();
    check(infoEmail === email, `userinfo email "${infoEmail}", expected ${email}`);
    const introspection = (await t.page.locator('#introspection').innerText()).trim();
    check(introspection.startsWith('blocked'), `introspection from the SPA's origin: ${introspection}, expected blocked by CORS`);
    // A traditional app's origin gets no CORS from the token endpoint.
    await t.page.goto(process.env.APP_REDIRECT_URI);
    const traditional = await fetchFromPage(t, `${BASE}/oidc/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&code=x',
    });
    check(traditional.startsWith('blocked'), `/oidc/token from a traditional app's origin: ${traditional}, expected blocked by CORS`);
  } },
};

await runScenarios(scenarios);
