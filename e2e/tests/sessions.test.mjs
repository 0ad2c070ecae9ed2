// Signing in, the list of one's sessions, revoking, being revoked from
// elsewhere, bad tokens, throttling, and the phone layout.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  BASE_URL, DEMO, FIREFOX_ON_LINUX, SAFARI_ON_IPHONE, api, eventually, launch, openPage,
  screenshot, sessionCards, signIn, signInApi,
} from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('signing in with the keyboard shows your sessions, this device marked', async () => {
  const page = await openPage(browser);
  await page.goto(`${BASE_URL}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await screenshot(page, 'sign-in');

  // A wrong password is refused with a clear message.
  await page.keyboard.type(DEMO.alice.email); // the email field has focus
  await page.keyboard.press('Tab');
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'The email or password is incorrect.' }).waitFor();

  await page.getByLabel('Password').fill(DEMO.alice.password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Your sessions' }).waitFor();
  const current = sessionCards(page).filter({ hasText: 'This device' });
  await current.waitFor();
  const text = await current.innerText();
  assert.match(text, /HeadlessChrome|Chrome/, 'the device label');
  assert.match(text, /127\.0\.0\.1/, 'the IP address');
  for (const label of ['Signed in', 'Last active', 'Expires']) assert.ok(text.includes(label), label);
  assert.equal(await current.getByRole('button', { name: /Revoke/ }).count(), 0, 'the current one is ended with Sign out');

  // The token is kept for the tab only.
  const stored = await page.evaluate(() => ({
    session: Object.keys(sessionStorage),
    local: Object.keys(localStorage).length,
    cookies: document.cookie,
  }));
  assert.ok(stored.session.includes('session-manager.token'));
  assert.equal(stored.local, 0, 'nothing in localStorage');
  assert.equal(stored.cookies, '', 'no cookie');
  await page.assertClean();
  await page.closeAll();
});

test('revoking another session makes it vanish from the list', async () => {
  const elsewhere = await signInApi(DEMO.alice, FIREFOX_ON_LINUX);
  const page = await openPage(browser);
  await signIn(page, DEMO.alice);
  const firefox = page.locator(`li.session[data-session-id="${elsewhere.sessionId}"]`);
  await firefox.waitFor();
  assert.match(await firefox.innerText(), /Firefox 131 on Linux/);
  await screenshot(page, 'sessions');

  await firefox.getByRole('button', { name: /Revoke the session on Firefox 131 on Linux/ }).click();

  await firefox.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'Signed out Firefox 131 on Linux.' }).waitFor();
  const refused = await api('{ viewer { user { email } } }', {}, { token: elsewhere.token });
  assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', 'the revoked token is dead');
  await page.assertClean();
  await page.closeAll();
});

test('signing out all other sessions leaves only this device', async () => {
  await signInApi(DEMO.alice, SAFARI_ON_IPHONE);
  const page = await openPage(browser);
  await signIn(page, DEMO.alice);
  await eventually(async () => assert.ok((await sessionCards(page).count()) >= 2));

  await page.getByRole('button', { name: 'Sign out all other sessions' }).click();

  await page.getByRole('status').filter({ hasText: /Signed out \d+ other session/ }).waitFor();
  await eventually(async () => assert.equal(await sessionCards(page).count(), 1));
  await sessionCards(page).filter({ hasText: 'This device' }).waitFor();
  await page.assertClean();
  await page.closeAll();
});

test('a session revoked elsewhere is sent back to sign-in with the reason', async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.alice);
  const other = await signInApi(DEMO.alice, FIREFOX_ON_LINUX);

  // From the other device: sign out everywhere else (this browser too).
  const body = await api('mutation { revokeSessions(exceptCurrent: true) }', {}, { token: other.token });
  assert.ok(body.data.revokeSessions >= 1, JSON.stringify(body));

  // Without the subscription the 5 s refresh notices.
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 12_000 });
  await page.getByText('Your session has ended').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('session-manager.token')), null, 'the dead token is forgotten');
  await page.assertClean();
  await page.closeAll();
});

test('an expired, revoked or forged token in storage leads to sign-in, not a broken page', async () => {
  const revoked = await signInApi(DEMO.alice);
  await api('mutation { signOut }', {}, { token: revoked.token });
  for (const token of [revoked.token, 'smt_forgedforgedforgedforgedforgedforgedforg', 'not a token']) {
    const page = await openPage(browser);
    await page.addInitScript((t) => {
      if (!sessionStorage.getItem('seeded')) {
        sessionStorage.setItem('seeded', '1');
        sessionStorage.setItem('session-manager.token', t);
      }
    }, token);
    await page.goto(`${BASE_URL}/#/audit`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByText('Your session has ended').waitFor();
    await page.assertClean();
    await page.closeAll();
  }
});

test('too many failed sign-ins say how long to wait', async () => {
  const page = await openPage(browser);
  await page.goto(`${BASE_URL}/`);
  const email = page.getByLabel('Email');
  const password = page.getByLabel('Password');
  await email.fill(DEMO.bob.email);
  let message = '';
  for (let attempt = 0; attempt < 8 && !message.includes('Too many'); attempt += 1) {
    await password.fill(`wrong-password-${attempt}`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.getByRole('alert').waitFor();
    message = await page.getByRole('alert').innerText();
  }
  assert.match(message, /Too many attempts\. Please wait (\d+ seconds?|\d+ minutes) before trying again\./);
  await page.assertClean();
  await page.closeAll();
});

test('on a phone the sessions page fits the screen', async () => {
  const page = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signInApi(DEMO.alice, SAFARI_ON_IPHONE);
  await signIn(page, DEMO.alice);
  await eventually(async () => assert.ok((await sessionCards(page).count()) >= 2));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
  await screenshot(page, 'sessions-phone');
  await page.assertClean();
  await page.closeAll();
});
