// Account management on the admin pages: make an account, disable and
// enable it, reset its password, change its role and delete it, with the
// forms offered exactly as the server's rights fields say.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BASE_URL, DEMO, api, eventually, launch, openPage, screenshot, signIn, signInApi } from './helpers.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const RIGHTS = 'id canUpdate canSetRole canDisable canDelete canResetPassword';

async function signInAs(email, password) {
  return api('mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }', { e: email, p: password });
}

/** Opens the page of the account with `email` from the users page. */
async function openUser(page, email, name) {
  await page.goto(`${BASE_URL}/#/users?search=${encodeURIComponent(email)}`);
  await page.getByRole('link', { name }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
  await page.getByTestId('account').getByRole('heading', { name: 'Account' }).waitFor();
}

test('an admin makes an account, disables, enables, resets and deletes it', async () => {
  const email = `carol.${Date.now()}@example.com`;
  const name = 'Carol Created';
  const first = 'carol-first-password';
  const page = await openPage(browser);
  await signIn(page, DEMO.admin);
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  const form = page.getByRole('form', { name: 'New account' });
  await form.waitFor();
  // An admin makes users only: the server's grantRoles.
  assert.deepEqual(await form.getByLabel('Role', { exact: true }).locator('option').allInnerTexts(), ['User']);
  await form.getByLabel('Email', { exact: true }).fill(email);
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByLabel('Password (optional)', { exact: true }).fill(first);
  await form.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
  await page.getByRole('status').filter({ hasText: `Created the account of ${name}` }).waitFor();
  const account = page.getByTestId('account');
  assert.equal(await account.getByTestId('status').innerText(), 'active');
  assert.match(await account.innerText(), /Last sign-in\s*never/);

  // The new account signs in on another device.
  const signedIn = await signInAs(email, first);
  const token = signedIn.data?.signIn?.token;
  assert.ok(token, JSON.stringify(signedIn));

  // Disabling asks for a reason, ends the session at once, refuses sign-in.
  await account.getByLabel('Reason for disabling', { exact: true }).fill('   ');
  await account.getByRole('button', { name: 'Disable account' }).click();
  await page.getByRole('alert').filter({ hasText: 'Please give a reason' }).waitFor();
  await account.getByLabel('Reason for disabling', { exact: true }).fill('Ticket #99: account compromised');
  await account.getByRole('button', { name: 'Disable account' }).click();
  await page.getByRole('status').filter({ hasText: `Disabled the account of ${name}` }).waitFor();
  await eventually(async () => assert.equal(await account.getByTestId('status').innerText(), 'disabled'));
  assert.match(await account.innerText(), /Ticket #99: account compromised/);
  await screenshot(page, 'user-disabled');
  const after = await api('{ viewer { user { id } } }', {}, { token });
  assert.equal(after.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', JSON.stringify(after));
  const refused = await signInAs(email, first);
  assert.ok(refused.errors?.length, JSON.stringify(refused));
  assert.equal(refused.data, null, JSON.stringify(refused));

  // Enabled again, it signs in; then a reset password replaces the old one.
  await account.getByRole('button', { name: 'Enable account' }).click();
  await eventually(async () => assert.equal(await account.getByTestId('status').innerText(), 'active'));
  assert.ok((await signInAs(email, first)).data?.signIn?.token, 'signs in after enableUser');
  await account.getByLabel('New password', { exact: true }).fill('carol-second-password');
  await account.getByRole('button', { name: 'Set password' }).click();
  await page.getByRole('status').filter({ hasText: `Set a new password for ${name}` }).waitFor();
  assert.equal((await signInAs(email, first)).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  assert.ok((await signInAs(email, 'carol-second-password')).data?.signIn?.token, 'the new password works');

  // A new name through the edit form.
  await account.getByLabel('Name', { exact: true }).fill('Carol Renamed');
  await account.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { level: 1, name: 'Carol Renamed' }).waitFor();

  // Deleting takes two clicks, then the account is gone from the list.
  await account.getByRole('button', { name: 'Delete account…' }).click();
  await account.getByRole('button', { name: `Delete ${email} for good` }).click();
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Deleted the account of Carol Renamed' }).waitFor();
  await page.getByLabel('Find a user by email or name', { exact: true }).fill(email);
  await page.getByLabel('Find a user by email or name', { exact: true }).press('Enter');
  await page.getByText(`No user matches “${email}”.`).waitFor();
  assert.equal((await signInAs(email, 'carol-second-password')).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  await page.assertClean();
  await page.closeAll();
});

test('a disabled user’s open dashboard goes back to sign-in', async () => {
  const { token: ownerToken } = await signInApi(DEMO.owner, 'e2e-arrange');
  const email = `dave.${Date.now()}@example.com`;
  const password = 'dave-password-123';
  const made = await api(
    'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }',
    { i: { email, name: 'Dave Disabled', password } },
    { token: ownerToken },
  );
  const id = made.data.createUser.id;
  const page = await openPage(browser);
  await signIn(page, { email, password });
  const disabled = await api(
    'mutation($id: UUID!) { disableUser(id: $id, reason: "left the company") { status } }',
    { id },
    { token: ownerToken },
  );
  assert.equal(disabled.data?.disableUser?.status, 'DISABLED', JSON.stringify(disabled));
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click({ timeout: 1000 }).catch(() => {});
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor({ timeout: 1000 });
  });
  await page.getByText('Your session has ended').waitFor();
  await api('mutation($id: UUID!) { deleteUser(id: $id) }', { id }, { token: ownerToken });
  await api('mutation { signOut }', {}, { token: ownerToken });
  await page.assertClean();
  await page.closeAll();
});

test('the account actions follow the server’s rights fields for each viewer', async () => {
  const tokens = {};
  for (const who of ['admin', 'owner']) tokens[who] = (await signInApi(DEMO[who], 'e2e-arrange')).token;
  const ids = {};
  const all = await api('{ users(limit: 100) { users { id email } } }', {}, { token: tokens.owner });
  for (const who of ['owner', 'admin', 'alice']) ids[who] = all.data.users.users.find((u) => u.email === DEMO[who].email).id;

  const labels = {
    canUpdate: 'Save changes',
    canSetRole: 'Change role',
    canDisable: 'Disable account',
    canResetPassword: 'Set password',
    canDelete: 'Delete account…',
  };
  for (const viewer of ['admin', 'owner']) {
    const page = await openPage(browser);
    await signIn(page, DEMO[viewer]);
    for (const target of ['owner', 'admin', 'alice']) {
      const body = await api(`query($id: UUID!) { user(id: $id) { ${RIGHTS} } }`, { id: ids[target] }, { token: tokens[viewer] });
      const rights = body.data?.user;
      assert.ok(rights, JSON.stringify(body));
      await openUser(page, DEMO[target].email, DEMO[target].name);
      const account = page.getByTestId('account');
      for (const [right, label] of Object.entries(labels)) {
        assert.equal(
          await account.getByRole('button', { name: label }).count(),
          rights[right] ? 1 : 0,
          `${viewer} on ${target}: ${label} (${right} = ${rights[right]})`,
        );
      }
    }
    // The owner is offered every role for a new account.
    if (viewer === 'owner') {
      await page.getByRole('link', { name: 'Users', exact: true }).click();
      const roles = await page.getByRole('form', { name: 'New account' }).getByLabel('Role', { exact: true }).locator('option').allInnerTexts();
      assert.deepEqual(roles, ['User', 'Admin', 'Owner']);
    }
    await page.assertClean();
    await page.closeAll();
  }
  // Nobody is offered actions on their own account that the server refuses.
  const self = await api(`query($id: UUID!) { user(id: $id) { ${RIGHTS} } }`, { id: ids.owner }, { token: tokens.owner });
  assert.equal(self.data.user.canDisable, false);
  assert.equal(self.data.user.canDelete, false);
  assert.equal(self.data.user.canSetRole, false);
  for (const token of Object.values(tokens)) await api('mutation { signOut }', {}, { token });
});

test('an owner makes an admin of a user and back', async () => {
  const { token: ownerToken } = await signInApi(DEMO.owner, 'e2e-arrange');
  const email = `erin.${Date.now()}@example.com`;
  await api('mutation($i: CreateUserInput!) { createUser(input: $i) { id } }', { i: { email, name: 'Erin Promoted' } }, { token: ownerToken });
  const page = await openPage(browser);
  await signIn(page, DEMO.owner);
  await openUser(page, email, 'Erin Promoted');
  const account = page.getByTestId('account');
  await account.getByLabel('Role', { exact: true }).selectOption('ADMIN');
  await account.getByRole('button', { name: 'Change role' }).click();
  await page.getByRole('status').filter({ hasText: 'Erin Promoted is now admin.' }).waitFor();
  await page.locator('.subtitle .badge.role-admin').waitFor();
  await account.getByLabel('Role', { exact: true }).selectOption('USER');
  await account.getByRole('button', { name: 'Change role' }).click();
  await page.getByRole('status').filter({ hasText: 'Erin Promoted is now user.' }).waitFor();
  await api('mutation { signOut }', {}, { token: ownerToken });
  await page.assertClean();
  await page.closeAll();
});
