// The owner's webhook pages: making an endpoint (its secret shown once),
// its health and deliveries as a receiver inside this test sees them,
// failures, disabling, rotating and deleting; and that nobody else is
// offered them (the server refuses them too). The server runs with
// WEBHOOK_ALLOW_PRIVATE=true (e2e/run.sh), so 127.0.0.1 is a destination.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { BASE_URL, DEMO, api, eventually, launch, openPage, screenshot, signIn, signInApi } from './helpers.mjs';

let browser;
let receiver;
let receiverUrl;
/** Every POST the receiver got: { path, headers, body }. */
const received = [];

before(async () => {
  browser = await launch();
  // Answers 204 on /ok and 500 on /fail.
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(req.url === '/fail' ? 500 : 204);
      res.end(req.url === '/fail' ? 'receiver is down' : undefined);
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}`;
});
after(async () => {
  await browser?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

async function openWebhooks(page) {
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
  await page.locator('table.webhooks, p.empty').first().waitFor();
}

/** Makes an endpoint through the form; returns its secret as shown. */
async function createEndpoint(page, url, { types = [], description = '' } = {}) {
  await page.getByLabel('URL').fill(url);
  await page.getByRole('checkbox', { name: 'session.revoked', exact: true }).waitFor();
  for (const type of types) await page.getByRole('checkbox', { name: type, exact: true }).check();
  if (description) await page.getByLabel('Description (optional)').fill(description);
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  const secret = page.getByRole('region', { name: 'Signing secret' }).getByTestId('secret');
  await secret.waitFor();
  return secret.textContent();
}

/** The id of the endpoint at `url`, through the API. */
async function endpointId(token, url) {
  const body = await api('{ webhookEndpoints { id url } }', {}, { token });
  const found = body.data.webhookEndpoints.find((e) => e.url === url);
  assert.ok(found, JSON.stringify(body));
  return found.id;
}

/** Signs `who` in and out again through the API: a session.revoked event. */
async function revokeOne(who) {
  const { token, sessionId } = await signInApi(who, 'e2e-webhook-trigger');
  const out = await api('mutation { signOut }', {}, { token });
  assert.equal(out.data?.signOut, true, JSON.stringify(out));
  return sessionId;
}

test('an owner makes an endpoint, sees its secret once, and a revocation shows up as a 2xx delivery', async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.owner);
  await openWebhooks(page);
  const url = `${receiverUrl}/ok`;
  const secret = await createEndpoint(page, url, { types: ['session.revoked'], description: 'drop cached sessions' });
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{40,}$/, 'the secret is shown');
  const row = page.locator('table.webhooks tbody tr').filter({ hasText: url });
  await row.waitFor();
  assert.match(await row.textContent(), /session\.revoked/);
  assert.match(await row.textContent(), /drop cached sessions/);
  await screenshot(page, 'webhooks');

  // Shown once: not after leaving the page, nor anywhere the API answers.
  await page.getByRole('link', { name: 'Your sessions' }).click();
  await page.getByRole('heading', { level: 1, name: 'Your sessions' }).waitFor();
  await openWebhooks(page);
  assert.equal(await page.getByTestId('secret').count(), 0, 'the secret is gone');
  const token = await page.evaluate(() => sessionStorage.getItem('session-manager.token'));
  const listed = await api('{ webhookEndpoints { id url description eventTypes } }', {}, { token });
  assert.ok(!JSON.stringify(listed).includes(secret), 'no read answers the secret');

  const sessionId = await revokeOne(DEMO.alice);
  const delivery = await eventually(() => {
    const found = received.find((r) => r.path === '/ok' && JSON.parse(r.body).sessionId === sessionId);
    assert.ok(found, 'the receiver got the revocation');
    return found;
  });
  const event = JSON.parse(delivery.body);
  assert.equal(event.type, 'session.revoked');
  assert.equal(delivery.headers['webhook-id'], event.id);
  assert.match(delivery.headers['webhook-signature'], /^v1,/);

  // The endpoint's page: health and the delivery with its 204.
  await row.getByRole('link', { name: url }).click();
  await page.getByRole('heading', { level: 1, name: url }).waitFor();
  const attempt = page.locator('table.deliveries tbody tr').filter({ hasText: `seq ${event.seq}` });
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    await attempt.waitFor({ timeout: 1000 });
  });
  assert.equal((await attempt.getByTestId('response-code').textContent()).trim(), '204');
  assert.match(await attempt.textContent(), /success/);
  assert.match(await attempt.textContent(), /session\.revoked/);
  const health = page.getByTestId('health');
  assert.equal((await health.getByTestId('state').textContent()).trim(), 'enabled');
  assert.equal((await health.getByTestId('failures').textContent()).trim(), '0');
  assert.doesNotMatch(await health.textContent(), /Last success\s*none yet/);
  await screenshot(page, 'webhook');

  // Delete it (two steps), so the other tests start from none.
  await page.getByRole('button', { name: 'Delete endpoint…' }).click();
  await page.getByRole('button', { name: `Delete ${url} for good` }).click();
  await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
  await page.assertClean();
  await page.closeAll();
});

test('a failing receiver shows failures; disable, enable, rotate and delete work', async () => {
  const page = await openPage(browser);
  await signIn(page, DEMO.owner);
  await openWebhooks(page);
  const url = `${receiverUrl}/fail`;
  const first = await createEndpoint(page, url);
  const token = await page.evaluate(() => sessionStorage.getItem('session-manager.token'));
  const id = await endpointId(token, url);

  // (Not Bob: the sign-in throttling test has locked his account for a while.)
  await revokeOne(DEMO.alice);
  await eventually(() => assert.ok(received.some((r) => r.path === '/fail'), 'the receiver was tried'));
  await page.getByRole('link', { name: url }).click();
  await page.getByRole('heading', { level: 1, name: url }).waitFor();
  const health = page.getByTestId('health');
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.locator('table.deliveries tbody tr.failed').first().waitFor({ timeout: 1000 });
  });
  const failed = page.locator('table.deliveries tbody tr.failed').first();
  assert.equal((await failed.getByTestId('response-code').textContent()).trim(), '500');
  assert.match(await failed.textContent(), /failed/);
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    assert.equal((await health.getByTestId('state').textContent()).trim(), 'failing');
  });
  assert.notEqual((await health.getByTestId('failures').textContent()).trim(), '0');
  assert.match(await health.textContent(), /Failing since/);
  assert.match(await health.textContent(), /Next attempt/);

  // Disable, then enable again.
  await page.getByRole('button', { name: 'Disable' }).click();
  await eventually(async () => assert.equal((await health.getByTestId('state').textContent()).trim(), 'disabled'));
  let listed = await api('{ webhookEndpoints { id enabled } }', {}, { token });
  assert.equal(listed.data.webhookEndpoints.find((e) => e.id === id).enabled, false, JSON.stringify(listed));
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByRole('button', { name: 'Disable' }).waitFor();
  listed = await api('{ webhookEndpoints { id enabled } }', {}, { token });
  assert.equal(listed.data.webhookEndpoints.find((e) => e.id === id).enabled, true, JSON.stringify(listed));

  // Rotate (two steps): a new secret, shown once.
  await page.getByRole('button', { name: 'Rotate secret…' }).click();
  assert.equal(await page.getByTestId('secret').count(), 0, 'the first click only asks');
  await page.getByRole('button', { name: 'Rotate now' }).click();
  const second = await page.getByRole('region', { name: 'Signing secret' }).getByTestId('secret').textContent();
  assert.match(second, /^whsec_/);
  assert.notEqual(second, first, 'a new secret');
  // The old secret keeps signing for a day, and the page says until when.
  await page.getByTestId('previous-secret-until').waitFor();

  // Replay from a seq is accepted, and refused for a seq that cannot be.
  await page.getByLabel('Send again from audit seq').fill('1');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Events from seq 1 on are being sent again.').waitFor();
  await page.getByLabel('Send again from audit seq').fill('999999999');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.locator('.message.error').filter({ hasText: 'Please check your input' }).waitFor();

  // Delete (two steps).
  await page.getByRole('button', { name: 'Delete endpoint…' }).click();
  listed = await api('{ webhookEndpoints { id } }', {}, { token });
  assert.ok(listed.data.webhookEndpoints.some((e) => e.id === id), 'the first click only asks');
  await page.getByRole('button', { name: `Delete ${url} for good` }).click();
  await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
  await page.getByText(`Deleted the endpoint ${url}.`).waitFor();
  listed = await api('{ webhookEndpoints { id } }', {}, { token });
  assert.ok(!listed.data.webhookEndpoints.some((e) => e.id === id), JSON.stringify(listed));
  assert.equal(await page.locator('table.webhooks tbody tr').filter({ hasText: url }).count(), 0);
  await page.assertClean();
  await page.closeAll();
});

/** A request to the SSF API with `key`; returns { status, body }. */
async function ssf(method, path, key, body) {
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

test('the owner page lists Shared Signals streams with their health', async () => {
  const { token: ownerToken } = await signInApi(DEMO.owner, 'e2e-ssf');
  const made = await api(
    'mutation($n: String!, $s: [ApiScope!]!) { createApiKey(name: $n, scopes: $s) { key } }',
    { n: 'e2e receiver', s: ['SSF_MANAGE'] },
    { token: ownerToken },
  );
  const key = made.data?.createApiKey?.key;
  assert.ok(key, JSON.stringify(made));
  const poll = await ssf('POST', '/ssf/stream', key, { aud: 'https://siem.e2e.test', description: 'SIEM', delivery: { method: 'urn:ietf:rfc:8936' } });
  assert.equal(poll.status, 201, JSON.stringify(poll.body));
  // The receiver answers 500 on /fail: RFC 8935 wants 202.
  const push = await ssf('POST', '/ssf/stream', key, { aud: 'https://app.e2e.test', delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: `${receiverUrl}/fail` } });
  assert.equal(push.status, 201, JSON.stringify(push.body));
  await revokeOne(DEMO.alice);

  const page = await openPage(browser);
  await signIn(page, DEMO.owner);
  await openWebhooks(page);
  const streams = page.locator('table.ssf-streams tbody tr');
  const polled = streams.filter({ hasText: 'https://siem.e2e.test' });
  const pushed = streams.filter({ hasText: 'https://app.e2e.test' });
  await polled.waitFor();
  assert.match(await polled.textContent(), /poll/);
  assert.match(await polled.textContent(), /SIEM/);
  assert.equal((await polled.getByTestId('stream-state').textContent()).trim(), 'enabled');
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.locator('table.ssf-streams').waitFor();
    assert.equal((await pushed.getByTestId('stream-state').textContent()).trim(), 'failing');
  });
  assert.notEqual((await pushed.getByTestId('stream-failures').textContent()).trim(), '0');
  await screenshot(page, 'ssf-streams');

  for (const made of [poll, push]) {
    const gone = await ssf('DELETE', `/ssf/stream?stream_id=${made.body.stream_id}`, key);
    assert.equal(gone.status, 204);
  }
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.locator('p.no-streams').waitFor();
  await page.assertClean();
  await page.closeAll();
});

test('admins and users see no Webhooks link, and the server refuses them', async () => {
  for (const who of [DEMO.admin, DEMO.alice]) {
    const page = await openPage(browser);
    await signIn(page, who);
    const token = await page.evaluate(() => sessionStorage.getItem('session-manager.token'));
    const can = await api('{ viewer { can { manageWebhooks } } }', {}, { token });
    assert.equal(can.data.viewer.can.manageWebhooks, false, `${who.name}: ${JSON.stringify(can)}`);
    assert.equal(await page.getByRole('link', { name: 'Webhooks' }).count(), 0, `${who.name}: no link`);
    await page.goto(`${BASE_URL}/#/webhooks`);
    await page.getByRole('heading', { level: 1, name: 'Page not found' }).waitFor();
    const refused = await api('{ webhookEndpoints { id } }', {}, { token });
    assert.equal(refused.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${who.name}: ${JSON.stringify(refused)}`);
    const made = await api('mutation($u: String!) { createWebhookEndpoint(url: $u) { secret } }', { u: `${receiverUrl}/ok` }, { token });
    assert.equal(made.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${who.name}: ${JSON.stringify(made)}`);
    await page.assertClean();
    await page.closeAll();
  }
});
