// Admin pages: finding users, their sessions, impersonation with the
// banner and stop, and the audit log's filters, paging and chain status.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  BASE_URL, DEMO, FIREFOX_ON_LINUX, api, eventually, launch, openPage, screenshot, sessionCards, signIn,
  signInApi,
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

/** How many `sessions.viewed` events about `userId` the audit log holds (read by the owner). */
async function viewedEvents(token, userId) {
  const body = await api(
    'query($f: AuditFilter) { sessionAudit(filter: $f, limit: 1) { pagination { total } } }',
    { f: { userId, eventType: 'sessions.viewed' } },
    { token },
  );
  assert.ok(body.data, JSON.stringify(body));
  return body.data.sessionAudit.pagination.total;
}

/** Opens the admin page of `user` the way an admin does: Users, search, click. */
async function openUserPage(page, user) {
  await page.goto(`${BASE_URL}/#/users?search=${encodeURIComponent(user.email)}`);
  await page.getByRole('link', { name: user.name }).click();
  await page.getByRole('heading', { level: 1, name: user.name }).waitFor();
  await page.getByTestId('live-status').filter({ hasText: 'Live' }).waitFor();
}

/** Records the `sessionEvents` subscriptions a page starts and the events it receives. */
function watchLiveEvents(page) {
  const seen = { subscribed: [], events: [] };
  page.on('websocket', (socket) => {
    socket.on('framesent', ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === 'subscribe') seen.subscribed.push(message.payload.variables);
    });
    socket.on('framereceived', ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === 'next' && message.payload?.data?.sessionEvents) seen.events.push(message.payload.data.sessionEvents);
    });
  });
  return seen;
}

test("an admin's page of a user, left open, reads the user's sessions once", async () => {
  const aliceId = await userId(DEMO.alice.email);
  const owner = await signInApi(DEMO.owner, 'e2e-arrange');
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  const before = await viewedEvents(owner.token, aliceId);

  await openUserPage(page, DEMO.alice);
  // Nothing else happens for 10 seconds; the page stays open and live.
  await page.waitForTimeout(10_000);

  const added = (await viewedEvents(owner.token, aliceId)) - before;
  assert.ok(added <= 1, `at most one sessions.viewed event in 10 s, got ${added}`);
  assert.equal(await page.getByTestId('live-status').innerText(), 'Live', 'still live');
  await api('mutation { signOut }', {}, { token: owner.token });
  await page.assertClean();
  await page.closeAll();
});

test("an admin's page of a user updates when the user signs in or is signed out elsewhere", async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await openUserPage(page, DEMO.alice);

  const elsewhere = await signInApi(DEMO.alice, FIREFOX_ON_LINUX);

  // No polling on this page and no focus change: only the live event can show it.
  const card = page.locator(`li.session[data-session-id="${elsewhere.sessionId}"]`);
  await card.waitFor();
  assert.match(await card.innerText(), /Firefox 131 on Linux/);

  await api('mutation { signOut }', {}, { token: elsewhere.token });
  await card.waitFor({ state: 'detached' });
  await page.assertClean();
  await page.closeAll();
});

test("an admin's own sessions page follows the admin's events only", async () => {
  const adminApi = await signInApi(DEMO.admin, 'e2e-arrange');
  const adminId = (await api('{ viewer { user { id } } }', {}, { token: adminApi.token })).data.viewer.user.id;
  const page = await openPage(browser);
  const seen = watchLiveEvents(page);
  await signIn(page, DEMO.admin);
  await page.getByTestId('live-status').filter({ hasText: 'Live' }).waitFor();

  // Someone else's sign-in, then the admin's own from another device.
  const alice = await signInApi(DEMO.alice, 'e2e-arrange');
  const mine = await signInApi(DEMO.admin, FIREFOX_ON_LINUX);

  await page.locator(`li.session[data-session-id="${mine.sessionId}"]`).waitFor();
  assert.deepEqual(seen.subscribed, [{ userId: adminId }], 'one subscription, to the admin\'s own events');
  assert.ok(seen.events.length > 0, 'the admin\'s sign-in came as a live event');
  assert.deepEqual(
    seen.events.filter((e) => e.userId !== adminId),
    [],
    'no event about anyone else reaches the page',
  );
  for (const token of [adminApi.token, alice.token, mine.token]) await api('mutation { signOut }', {}, { token });
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

  // The ended-sessions view says who ended it and why.
  await page.getByLabel('Show ended sessions').check();
  const ended = page.locator(`li.session[data-session-id="${bobDevice.sessionId}"]`);
  await ended.waitFor();
  assert.equal(await ended.getByTestId('ended').innerText(), 'Ended by Adam Admin — revoked');
  await page.assertClean();
  await page.closeAll();
});

test('the impersonation form shows for the accounts the server says the viewer may impersonate', async () => {
  // (viewer, account, shown): the server's `canImpersonate` decides.
  const cases = [
    [DEMO.admin, DEMO.alice, true],
    [DEMO.admin, DEMO.owner, false],
    [DEMO.admin, DEMO.admin, false],
    [DEMO.owner, DEMO.admin, true],
    [DEMO.owner, DEMO.owner, false],
  ];
  for (const [viewer, account, shown] of cases) {
    const what = `${viewer.name} on ${account.name}`;
    const { token } = await signInApi(viewer, 'e2e-arrange');
    const asked = await api(
      'query($s: String) { users(search: $s) { users { email canImpersonate } } }',
      { s: account.email },
      { token },
    );
    await api('mutation { signOut }', {}, { token });
    const answer = asked.data.users.users.find((u) => u.email === account.email);
    assert.equal(answer.canImpersonate, shown, `${what}: the server's answer`);

    const page = await openPage(browser);
    await signIn(page, viewer);
    await openUserPage(page, account);
    // The user's sessions have been read (or refused: an admin may not
    // see an owner's).
    await page.locator('ul.sessions > li, [role="alert"]').first().waitFor();
    assert.equal(
      await page.getByRole('button', { name: 'Start impersonation' }).isVisible(),
      shown,
      `${what}: the form`,
    );
    await page.assertClean();
    await page.closeAll();
  }
});

test("the audit log's event-type filter suggests the types the server lists", async () => {
  const { token } = await signInApi(DEMO.alice, 'e2e-arrange');
  const body = await api('{ auditEventTypes }', {}, { token });
  await api('mutation { signOut }', {}, { token });
  const listed = body.data.auditEventTypes;
  assert.ok(listed.includes('session.revoked'), JSON.stringify(body));

  const page = await openPage(browser);
  await signIn(page, DEMO.alice);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  const options = page.locator('datalist#event-types option');
  await eventually(async () => assert.ok((await options.count()) > 0));
  const suggested = await options.evaluateAll((all) => all.map((o) => o.value));
  assert.deepEqual(suggested, listed);
  assert.equal(
    await page.getByLabel('Event type').getAttribute('list'),
    'event-types',
    'the field offers them',
  );
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

test('the audit log names people, with the id on hover, and a click on one filters by them', async () => {
  const aliceId = await userId(DEMO.alice.email);
  const bobId = await userId(DEMO.bob.email);
  const { token } = await signInApi(DEMO.owner, 'e2e-arrange');
  // The owner reads Alice's and Bob's sessions: events by the owner about each.
  for (const u of [aliceId, bobId]) {
    const body = await api('query($u: UUID) { sessions(userId: $u) { count } }', { u }, { token });
    assert.ok(body.data, JSON.stringify(body));
  }
  await api('mutation { signOut }', {}, { token });

  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await page.goto(`${BASE_URL}/#/audit?eventType=sessions.viewed`);
  const rows = page.locator('table.audit tbody tr');
  await rows.first().waitFor();
  const actor = rows.first().locator('td[data-label="Actor"] .person');
  const user = rows.first().locator('td[data-label="User"] .person');
  assert.match(await actor.innerText(), /Olivia Owner\s+owner@example\.com/);
  assert.match(await user.innerText(), /Bob User\s+bob@example\.com/, 'the newest event is about Bob');
  assert.match(await user.getAttribute('title'), new RegExp(bobId), 'the id on hover');
  assert.equal(await page.locator('table.audit tbody td code[title]').count(), 0, 'no bare ids for known people');

  // A click on Alice filters the log by her, keeping the event type.
  await rows.locator('td[data-label="User"] a.person', { hasText: DEMO.alice.name }).first().click();
  await eventually(async () => {
    assert.match(page.url(), new RegExp(`userId=${aliceId}`));
    assert.match(page.url(), /eventType=sessions\.viewed/);
    const users = await page.locator('table.audit tbody td[data-label="User"]').allInnerTexts();
    assert.ok(users.length > 0);
    assert.deepEqual([...new Set(users.map((t) => t.replace(/\s+/g, ' ').trim()))], [`${DEMO.alice.name} ${DEMO.alice.email}`]);
  });
  assert.equal(await page.getByLabel('User ID').inputValue(), aliceId, 'the filter shows the id');

  // And a click on the actor filters by who did it.
  await rows.first().locator('td[data-label="Actor"] a.person').click();
  await eventually(async () => {
    assert.match(page.url(), /actorId=/);
    const actors = await page.locator('table.audit tbody td[data-label="Actor"]').allInnerTexts();
    assert.ok(actors.length > 0);
    assert.deepEqual([...new Set(actors.map((t) => t.replace(/\s+/g, ' ').trim()))], [`${DEMO.owner.name} ${DEMO.owner.email}`]);
  });
  await page.assertClean();
  await page.closeAll();
});
