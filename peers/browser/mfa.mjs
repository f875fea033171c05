// Second factors in the hosted pages, clicked through in Debian's chromium (issue 20): a person
// signs up with a password, enrols an authenticator app from the QR page (the code computed here
// from the secret the page shows, as an app would), saves a sheet of backup recovery codes, then
// signs in with password + authenticator code, then with password + a recovery code, and finds
// that recovery code refused the second time. Once in English and once in Russian, with
// screenshots of every page at 360 px and 1280 px.
//
// Run by crates/tessera/tests/it/ui_browser_mfa.rs with TESSERA_URL, TESSERA_CHROMIUM and
// SCREENSHOT_DIR.

import { createHmac } from 'node:crypto';
import { BASE, check, shot, expectPage, submitAndWait, runScenarios } from './lib.mjs';

/// RFC 6238 with an authenticator app's defaults (SHA-1, 6 digits, 30 s), `offset` steps from now.
function totp(base32, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of base32.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    check(v >= 0, `the secret "${base32}" is not base32`);
    bits += v.toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + offset));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

const TEXT = {
  en: {
    html: 'en', signIn: 'Sign in', createAccount: 'Create your account', create: 'Create account',
    saved: 'Your changes have been saved.', secondFactor: 'Please complete the second authentication challenge.',
    used: 'This backup recovery code has already been used.', signOut: 'Sign out',
    totp: 'Authenticator app', codes: 'Backup recovery codes',
  },
  ru: {
    html: 'ru', signIn: 'Вход', createAccount: 'Создание аккаунта', create: 'Зарегистрироваться',
    saved: 'Изменения сохранены.', secondFactor: 'Пройдите второй шаг проверки.',
    used: 'Этот резервный код уже использован.', signOut: 'Выйти',
    totp: 'Приложение-аутентификатор', codes: 'Резервные коды',
  },
};

async function signOut(t, x) {
  await submitAndWait(t, t.page.getByRole('link', { name: x.signOut, exact: true }), /\/ui\/welcome/);
}

/// The password step of a sign-in; ends on the second-factor page.
async function passwordStep(t, x, email) {
  await t.page.goto(`${BASE}/self-service/login/browser`);
  await expectPage(t, { lang: x.html, heading: x.signIn, url: /\/ui\/login\?flow=/ });
  const form = t.page.locator('form.form-password');
  await form.locator('input[name=identifier]').fill(email);
  await form.locator('input[name=password]').fill('correct horse battery staple');
  await submitAndWait(t, form.locator('button[type=submit]'), /\/ui\/login\?flow=/);
  await expectPage(t, { lang: x.html });
  check(await t.page.getByText(x.secondFactor).isVisible(), 'the second-factor page says what it wants');
}

function journey(lang) {
  const x = TEXT[lang];
  return {
    locale: lang === 'ru' ? 'ru-RU' : 'en-US',
    async run(t) {
      const email = `mfa-${lang}-${Date.now()}@example.com`;
      await t.page.goto(`${BASE}/self-service/registration/browser`);
      await expectPage(t, { lang: x.html, heading: x.createAccount, url: /\/ui\/registration\?flow=/ });
      const reg = t.page.locator('form.form-password');
      await reg.locator('input[name="traits.email"]').fill(email);
      await reg.locator('input[name=password]').fill('correct horse battery staple');
      await submitAndWait(t, reg.getByRole('button', { name: x.create }), /\/ui\/welcome/);

      // Enrol the authenticator app: the QR code and the secret for typing in.
      await t.page.goto(`${BASE}/self-service/settings/browser`);
      await expectPage(t, { lang: x.html, url: /\/ui\/settings\?flow=/ });
      const headings = (await t.page.locator('h2').allInnerTexts()).map((h) => h.trim());
      check(headings.includes(x.totp) && headings.includes(x.codes), `settings sections: ${headings}`);
      const qr = t.page.locator('figure.field-image img');
      check(await qr.isVisible(), 'the QR code is shown');
      check((await qr.getAttribute('src')).startsWith('data:image/'), 'the QR code is an inline image (no third party)');
      const secret = (await t.page.locator('code#f-totp-totp-secret-key').innerText()).trim();
      check(/^[A-Z2-7]{16,}$/.test(secret), `the secret "${secret}" is base32`);
      await shot(t, 'totp-enrol');
      // A wrong code first: refused next to the field, nothing enrolled.
      const totpForm = t.page.locator('form:has(input[name=totp_code])');
      const wrongCode = totp(secret, -1) === '000000' ? '111111' : '000000';
      await totpForm.locator('input[name=totp_code]').fill(wrongCode);
      await submitAndWait(t, totpForm.locator('button[type=submit]'), /\/ui\/settings\?flow=/);
      check(await t.page.locator('input[name=totp_code]').getAttribute('aria-invalid') === 'true', 'a wrong code is marked on its field');
      await shot(t, 'totp-wrong-code');
      // The code the app showed a step ago (still accepted): the current one stays for the
      // sign-in below, since a code confirming the key is spent.
      await t.page.locator('form:has(input[name=totp_code]) input[name=totp_code]').fill(totp(secret, -1));
      await submitAndWait(t, t.page.locator('form:has(input[name=totp_code]) button[type=submit]'), /\/ui\/settings\?flow=/);
      check(await t.page.getByText(x.saved).isVisible(), 'enrolment saved');
      check(await t.page.locator('input[name=totp_code]').count() === 0, 'the enrolment form is gone');

      // Backup recovery codes. The account has a second factor now, so changing settings asks
      // for it first (`required_aal: highest_available`), then comes back here.
      await submitAndWait(t, t.page.locator('button[name=lookup_secret_regenerate]'), /\/ui\/login\?flow=/);
      await expectPage(t, { lang: x.html });
      check(await t.page.getByText(x.secondFactor).isVisible(), 'settings ask for the second factor');
      check(await t.page.getByRole('link', { name: x.signOut, exact: true }).isVisible(), 'the step-up page offers a way out');
      check(await t.page.locator('p.switch a[href*="registration"]').count() === 0, 'no "create an account" for someone signed in');
      await shot(t, 'settings-step-up');
      await t.page.locator('input[name=totp_code]').fill(totp(secret));
      await submitAndWait(t, t.page.locator('form:has(input[name=totp_code]) button[type=submit]'), /\/ui\/settings\?flow=/);
      await submitAndWait(t, t.page.locator('button[name=lookup_secret_regenerate]'), /\/ui\/settings\?flow=/);
      const codes = (await t.page.locator('.recovery-sheet ol.codes li code').allInnerTexts()).map((c) => c.trim());
      check(codes.length >= 8 && new Set(codes).size === codes.length, `${codes.length} distinct recovery codes`);
      // The sheet stays legible on a phone: one column there (two columns of numbered codes
      // ran the second column's numbers into the first column's codes at 360 px).
      await t.page.setViewportSize({ width: 360, height: 740 });
      const sheet = await t.page.evaluate(() => ({
        lefts: [...new Set([...document.querySelectorAll('.recovery-sheet ol.codes li')].map((li) => Math.round(li.getBoundingClientRect().left)))],
        wide: document.documentElement.scrollWidth,
      }));
      check(sheet.lefts.length === 1 && sheet.wide <= 360, `at 360 px the codes start at ${sheet.lefts} (one column wanted), page ${sheet.wide}px wide`);
      await t.page.setViewportSize({ width: 1280, height: 820 });
      await shot(t, 'recovery-codes');
      await submitAndWait(t, t.page.locator('button[name=lookup_secret_confirm]'), /\/ui\/settings\?flow=/);
      check(await t.page.getByText(x.saved).isVisible(), 'recovery codes saved');
      check(await t.page.locator('.recovery-sheet').count() === 0, 'the codes are not shown again');
      await shot(t, 'settings-with-factors');
      await signOut(t, x);

      // Password, then the authenticator code.
      await passwordStep(t, x, email);
      await shot(t, 'second-factor');
      // The next step's code: the current one was spent on the step-up above (a code works
      // once), and an app's code stays valid a step either side.
      await t.page.locator('input[name=totp_code]').fill(totp(secret, 1));
      await submitAndWait(t, t.page.locator('form:has(input[name=totp_code]) button[type=submit]'), /\/ui\/welcome/);
      await expectPage(t, { lang: x.html });
      check(await t.page.getByText(email).first().isVisible(), 'signed in after the second factor');
      await signOut(t, x);

      // Password, then a recovery code; the same code again is refused.
      await passwordStep(t, x, email);
      await t.page.locator('input[name=lookup_secret]').fill(codes[0]);
      await submitAndWait(t, t.page.locator('form:has(input[name=lookup_secret]) button[type=submit]'), /\/ui\/welcome/);
      check(await t.page.getByText(email).first().isVisible(), 'signed in with a recovery code');
      await signOut(t, x);
      await passwordStep(t, x, email);
      await t.page.locator('input[name=lookup_secret]').fill(codes[0]);
      await submitAndWait(t, t.page.locator('form:has(input[name=lookup_secret]) button[type=submit]'), /\/ui\/login\?flow=/);
      await expectPage(t, { lang: x.html });
      check(await t.page.getByText(x.used).isVisible(), 'a used recovery code is refused, in the page language');
      await shot(t, 'recovery-code-used');
    },
  };
}

await runScenarios({ 'mfa-en': journey('en'), 'mfa-ru': journey('ru') });
