// Shared set-up for the dashboard's end-to-end tests: one headless Chromium
// per test file, a fresh browser context per test, and a GraphQL client
// for arranging things "from another device".

import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const BASE_URL = process.env.BASE_URL;
if (!BASE_URL) throw new Error('BASE_URL is not set: run the tests through e2e/run.sh');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR;

export const DEMO = {
  owner: { email: 'owner@example.com', password: 'owner-password-1', name: 'Olivia Owner' },
  admin: { email: 'admin@example.com', password: 'admin-password-1', name: 'Adam Admin' },
  alice: { email: 'alice@example.com', password: 'alice-password-1', name: 'Alice User' },
  bob: { email: 'bob@example.com', password: 'bob-password-1', name: 'Bob User' },
};

export const FIREFOX_ON_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0';
export const SAFARI_ON_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * A new page in its own context (its own sessionStorage). Collects CSP
 * violations and uncaught errors; `page.assertClean()` fails on any.
 */
export async function openPage(browser, { viewport = { width: 1280, height: 860 }, ...options } = {}) {
  const context = await browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    const text = message.text();
    if (/Content[- ]Security[- ]Policy|Trusted Type/i.test(text)) problems.push(`console: ${text}`);
  });
  if (process.env.E2E_DEBUG) page.on('console', (m) => console.log('CONSOLE', m.type(), m.text()));
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // Runs before the page's own scripts (added by the browser, not subject
  // to the page's CSP): records every violation report.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__cspViolations.push(`${event.violatedDirective}: ${event.blockedURI}`);
    });
  });
  page.assertClean = async () => {
    const violations = await page.evaluate(() => window.__cspViolations || []).catch(() => []);
    assert.deepEqual([...problems, ...violations], [], 'no CSP violation or uncaught error');
  };
  page.closeAll = () => context.close();
  return page;
}

export async function screenshot(page, name) {
  if (!SCREENSHOT_DIR) return;
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: false });
}

/** A GraphQL call from outside the browser (another device). */
export async function api(query, variables = {}, { token, userAgent = 'e2e-node' } = {}) {
  const headers = { 'content-type': 'application/json', 'user-agent': userAgent };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${BASE_URL}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

/** Signs in through the API; returns { token, sessionId }. */
export async function signInApi(user, userAgent = FIREFOX_ON_LINUX) {
  const body = await api(
    'mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token session { id } } }',
    { e: user.email, p: user.password },
    { userAgent },
  );
  assert.ok(body.data?.signIn, `sign-in failed: ${JSON.stringify(body)}`);
  return { token: body.data.signIn.token, sessionId: body.data.signIn.session.id };
}

/** Signs in through the dashboard's form, with the keyboard. */
export async function signIn(page, user) {
  await page.goto(`${BASE_URL}/`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Your sessions' }).waitFor();
  await page.locator('li.session').first().waitFor();
}

export function sessionCards(page) {
  return page.locator('ul.sessions > li.session');
}

/** Retries `check` (which throws until satisfied) for up to `timeout` ms. */
export async function eventually(check, { timeout = 10_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
}
