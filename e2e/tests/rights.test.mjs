// What the dashboard offers follows the server's answers (`Viewer.can`,
// `Session.canRevoke`), never a copy of its rules: for each demo role, and
// from an impersonation session.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BASE_URL, DEMO, FIREFOX_ON_LINUX, api, launch, openPage, sessionCards, signIn, signInApi } from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const CAN = '{ viewer { can { listUsers readAllAudit verifyAuditChain revokeSessions } } }';

/** `Viewer.can` for `token`. */
async function rights(token) {
  const body = await api(CAN, {}, { token });
  assert.ok(body.data?.viewer?.can, JSON.stringify(body));
  return body.data.viewer.can;
}

/** Waits until the audit log has shown its events (or said there are none). */
async function openAudit(page) {
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await page.locator('table.audit, p.empty').first().waitFor();
}

test('the Users link, the audit filters by person and the chain check follow Viewer.can', async () => {
  for (const who of [DEMO.alice, DEMO.admin, DEMO.owner]) {
    const { token } = await signInApi(who, 'e2e-arrange');
    const can = await rights(token);
    await api('mutation { signOut }', {}, { token });

    const page = await openPage(browser);
    await signIn(page, who);
    assert.equal(await page.getByRole('link', { name: 'Users' }).count(), can.listUsers ? 1 : 0, `${who.name}: Users link`);
    await openAudit(page);
    if (can.verifyAuditChain) await page.getByTestId('chain').waitFor();
    assert.equal(await page.getByTestId('chain').count(), can.verifyAuditChain ? 1 : 0, `${who.name}: chain check`);
    for (const name of ['userId', 'actorId']) {
      assert.equal(await page.locator(`input[name="${name}"]`).count(), can.readAllAudit ? 1 : 0, `${who.name}: ${name} filter`);
    }
    assert.equal(await page.locator('input[name="sessionId"]').count(), 1, `${who.name}: session filter`);
    const linked = await page.locator('table.audit a.person').count();
    if (!can.readAllAudit) assert.equal(linked, 0, `${who.name}: people are not links`);
    await page.assertClean();
    await page.closeAll();
  }
});

test('while impersonating, Users, bulk sign-out and Revoke on the other sessions are offered as the server says', async () => {
  const elsewhere = await signInApi(DEMO.alice, FIREFOX_ON_LINUX);
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await page.goto(`${BASE_URL}/#/users?search=${encodeURIComponent(DEMO.alice.email)}`);
  await page.getByRole('link', { name: DEMO.alice.name }).click();
  await page.getByRole('heading', { level: 1, name: DEMO.alice.name }).waitFor();

  // The admin's own view of Alice's session offers Revoke, as the server says.
  const card = page.locator(`li.session[data-session-id="${elsewhere.sessionId}"]`);
  await card.waitFor();
  assert.equal(await card.getByRole('button', { name: /Revoke the session/ }).count(), 1, 'the admin may revoke it');

  await page.getByLabel('Reason (shown to the user)').fill('Support ticket #17');
  await page.getByRole('button', { name: 'Start impersonation' }).click();
  await page.getByRole('region', { name: 'Impersonation' }).waitFor();
  await page.getByRole('heading', { level: 1, name: `Sessions of ${DEMO.alice.name}` }).waitFor();
  await card.waitFor();
  await sessionCards(page).filter({ hasText: 'This device' }).waitFor();

  const token = await page.evaluate(() => sessionStorage.getItem('session-manager.token'));
  const can = await rights(token);
  assert.equal(can.listUsers, false, JSON.stringify(can));
  assert.equal(can.revokeSessions, false, JSON.stringify(can));
  const listed = await api('{ sessions { sessions { id canRevoke } } }', {}, { token });
  const other = listed.data.sessions.sessions.find((s) => s.id === elsewhere.sessionId);
  assert.equal(other.canRevoke, false, JSON.stringify(listed));

  assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0, 'no Users link');
  assert.equal(await page.getByRole('button', { name: 'Sign out all other sessions' }).isVisible(), false, 'no bulk sign-out');
  assert.equal(await card.getByRole('button', { name: /Revoke the session/ }).count(), 0, 'no Revoke on the other session');
  // And the server does refuse it.
  const refused = await api('mutation($id: UUID!) { revokeSession(id: $id) { id } }', { id: elsewhere.sessionId }, { token });
  assert.equal(refused.errors?.[0]?.extensions?.code, 'FORBIDDEN', JSON.stringify(refused));

  await page.getByRole('region', { name: 'Impersonation' }).getByRole('button', { name: 'Stop impersonating' }).click();
  await page.getByRole('region', { name: 'Impersonation' }).waitFor({ state: 'detached' });
  await api('mutation { signOut }', {}, { token: elsewhere.token });
  await page.assertClean();
  await page.closeAll();
});
