// Admin pages: finding users, their sessions, impersonation with the
// banner and stop, and the audit log's filters, paging and chain status.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  BASE_URL, DEMO, api, eventually, launch, openPage, screenshot, sessionCards, signIn, signInApi,
} from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function userId(email) {
  const { token } = await signInApi(DEMO.owner, 'e2e-arrange');
  const body = await api('query($s: String) { users(search: $s) { users { id email } } }', { s: email }, { token });
  await api('mutation { signOut }', {}, { token });
  return body.data.users.users.find((u) => u.email === email).id;
}

test('an admin finds a user, impersonates them with a reason, and stops', async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  await page.getByLabel('Find a user by email or name').fill('ALICE');
  await page.getByLabel('Find a user by email or name').press('Enter');
  await page.getByTestId('range').filter({ hasText: '1–1 of 1 users' }).waitFor();
  await screenshot(page, 'users');

  await page.getByRole('link', { name: DEMO.alice.name }).click();
  await page.getByRole('heading', { level: 1, name: DEMO.alice.name }).waitFor();
  await page.getByLabel('Reason (shown to the user)').fill('Support ticket #4711: cannot see invoices');
  await screenshot(page, 'user');
  await page.getByRole('button', { name: 'Start impersonation' }).click();

  // The banner names both people and stays while moving around.
  const banner = page.getByRole('region', { name: 'Impersonation' });
  await banner.waitFor();
  assert.match(await banner.getByTestId('impersonator').innerText(), /admin@example\.com/);
  assert.match(await banner.getByTestId('impersonated').innerText(), /alice@example\.com/);
  await page.getByRole('heading', { level: 1, name: `Sessions of ${DEMO.alice.name}` }).waitFor();
  const mine = sessionCards(page).filter({ hasText: 'This device' });
  await mine.waitFor();
  assert.match(await mine.innerText(), /Impersonation/);
  assert.match(await mine.innerText(), /Adam Admin \(admin@example\.com\)/);
  assert.match(await mine.innerText(), /Support ticket #4711/);
  assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0, 'no admin pages while impersonating');
  await screenshot(page, 'impersonation');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await banner.waitFor();

  await banner.getByRole('button', { name: 'Stop impersonating' }).click();

  await banner.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'Impersonation of Alice User stopped.' }).waitFor();
  assert.match(await page.getByTestId('whoami').innerText(), /admin@example\.com/);
  await page.getByRole('heading', { level: 1, name: DEMO.alice.name }).waitFor();
  // The impersonation session is over: no longer among Alice's active ones.
  await eventually(async () => {
    const texts = await sessionCards(page).allInnerTexts();
    assert.ok(!texts.some((t) => t.includes('Support ticket #4711')), texts.join('\n'));
  });
  await page.assertClean();
  await page.closeAll();
});

test("an admin sees and revokes a user's sessions", async () => {
  const bobDevice = await signInApi(DEMO.bob, 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36');
  const bobId = await userId(DEMO.bob.email);
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await page.goto(`${BASE_URL}/#/users/${bobId}`);
  const card = page.locator(`li.session[data-session-id="${bobDevice.sessionId}"]`);
  await card.waitFor();

  await card.getByRole('button', { name: /Revoke the session/ }).click();

  await card.waitFor({ state: 'detached' });
  const refused = await api('{ viewer { user { id } } }', {}, { token: bobDevice.token });
  assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  await page.assertClean();
  await page.closeAll();
});

test('a user sees no admin pages and is refused an admin address', async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.alice);
  assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0);
  await page.goto(`${BASE_URL}/#/users`);
  await page.getByRole('heading', { level: 1, name: 'Page not found' }).waitFor();
  await page.assertClean();
  await page.closeAll();
});

test('the audit log filters by type and status, pages, and shows the chain status to owners', async () => {
  // Arrange: enough events of one type to page through (each read of
  // another user's sessions is audited).
  const aliceId = await userId(DEMO.alice.email);
  const { token } = await signInApi(DEMO.owner, 'e2e-arrange');
  for (let i = 0; i < 23; i += 1) {
    const body = await api('query($u: UUID) { sessions(userId: $u) { count } }', { u: aliceId }, { token });
    assert.ok(body.data, JSON.stringify(body));
  }
  // And a refusal (a failed event): a user asking for the user list.
  const alice = await signInApi(DEMO.alice, 'e2e-arrange');
  const denied = await api('{ users { pagination { total } } }', {}, { token: alice.token });
  assert.equal(denied.errors?.[0]?.extensions?.code, 'FORBIDDEN');

  const page = await openPage(browser);
  await signIn(page, DEMO.owner);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  const chain = page.getByTestId('chain');
  await chain.waitFor();
  assert.match(await chain.innerText(), /Chain intact — \d+ events checked/);
  await page.locator('table.audit tbody tr').first().waitFor();
  await screenshot(page, 'audit');

  await page.getByLabel('Event type').fill('sessions.viewed');
  await page.getByLabel('Per page').selectOption('10');
  await page.getByRole('button', { name: 'Apply filters' }).click();

  const range = page.getByTestId('range');
  await range.filter({ hasText: /^1–10 of \d+ events$/ }).waitFor();
  const total = Number((await range.innerText()).match(/of (\d+)/)[1]);
  assert.ok(total >= 23, `at least the 23 arranged events (${total})`);
  const types = () => page.locator('table.audit tbody tr td:nth-child(2)').allInnerTexts();
  assert.deepEqual([...new Set(await types())], ['sessions.viewed']);
  assert.match(page.url(), /eventType=sessions\.viewed/, 'the filter is in the address');

  await page.getByRole('button', { name: 'Next →' }).click();
  await range.filter({ hasText: `11–20 of ${total} events` }).waitFor();
  assert.equal((await types()).length, 10);
  assert.deepEqual([...new Set(await types())], ['sessions.viewed']);
  await page.getByRole('button', { name: '← Previous' }).click();
  await range.filter({ hasText: `1–10 of ${total} events` }).waitFor();
  await page.goBack(); // Back returns to the second page
  await range.filter({ hasText: `11–20 of ${total} events` }).waitFor();

  // Status filter: only failed events (refusals, wrong passwords).
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('Status', { exact: true }).selectOption('FAILED');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await eventually(async () => {
    const statuses = await page.locator('table.audit tbody tr td:nth-child(3)').allInnerTexts();
    assert.ok(statuses.length > 0);
    assert.deepEqual([...new Set(statuses)], ['failed']);
  });

  // A malformed id is answered with a readable message, not a broken page.
  await page.getByLabel('User ID').fill('not-a-uuid');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('alert').filter({ hasText: 'Please check your input.' }).waitFor();
  await page.assertClean();
  await page.closeAll();
});
