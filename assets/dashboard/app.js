// The dashboard: sign-in, the shell (navigation, impersonation banner,
// messages) and a hash router over the views in sessions.js, admin.js,
// audit.js and webhooks.js. Every view has render(), refresh() and destroy().

import { ApiError, describeError, gql, onSessionEnded, tokens } from './api.js';
import { h, mount, field } from './dom.js';
import { sessionsView } from './sessions.js';
import { usersView, userView } from './admin.js';
import { auditView } from './audit.js';
import { webhooksView, webhookView } from './webhooks.js';

const VIEWER = `query Viewer {
  viewer {
    user { id email name role }
    session { id expires }
    impersonator { id email name role }
    can { listUsers readAllAudit verifyAuditChain revokeSessions manageUsers grantableRoles manageWebhooks }
  }
}`;

const root = document.getElementById('app');
const state = {
  viewer: null,
  view: null,
  ending: false,
};

// ---------------------------------------------------------------- messages

const messages = document.getElementById('messages');

/** Shows a message; `kind` is 'info', 'success' or 'error'. */
function notify(text, kind = 'info') {
  const close = h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message' }, '×');
  const box = h(
    'div',
    { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', {}, text),
    close,
  );
  close.addEventListener('click', () => box.remove());
  mount(messages, box);
}

function clearMessages() {
  messages.replaceChildren();
}

/** Shows an error unless it already led to "your session ended". */
function reportError(error) {
  if (error?.sessionEnded) return;
  if (!(error instanceof ApiError)) console.error(error);
  notify(describeError(error), 'error');
}

// ---------------------------------------------------------------- session

function isImpersonating() {
  return Boolean(state.viewer?.impersonator);
}

/**
 * What the server allows this viewer (`Viewer.can`: listUsers,
 * readAllAudit, verifyAuditChain, revokeSessions, manageUsers,
 * manageWebhooks), asked rather than
 * worked out from the role, so the rules live only on the server.
 */
function can(right) {
  return Boolean(state.viewer?.can?.[right]);
}

async function loadViewer() {
  const data = await gql(VIEWER);
  state.viewer = data.viewer;
  return state.viewer;
}

// When a token stops working (revoked elsewhere, expired, signed out in
// another tab): an impersonation session falls back to the admin's own
// session; anything else returns to sign-in, saying why.
onSessionEnded(async () => {
  if (state.ending) return;
  state.ending = true;
  try {
    stopView();
    const admin = tokens.admin;
    if (admin && tokens.current !== admin) {
      tokens.current = admin;
      tokens.admin = null;
      try {
        await loadViewer();
        renderShell();
        navigate('#/users', { keepMessages: true });
        notify('The impersonation session has ended (it expired or was revoked). You are back in your own session.', 'info');
        return;
      } catch {
        // the admin's session has ended too: sign in again
      }
    }
    tokens.clear();
    state.viewer = null;
    showSignIn('Your session has ended: it was signed out, revoked or has expired. Please sign in again.');
  } finally {
    state.ending = false;
  }
});

// ---------------------------------------------------------------- sign-in

function showSignIn(reason) {
  stopView();
  state.viewer = null;
  if (location.hash !== '#/signin') history.replaceState(null, '', '#/signin');
  document.title = 'Sign in · Session manager';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, maxlength: 320 });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, maxlength: 256 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card signin', 'aria-labelledby': 'signin-title', novalidate: false },
    h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Manage the devices signed in to your account.'),
    field('Email', email),
    field('Password', password),
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const data = await gql(
        `mutation SignIn($email: String!, $password: String!) {
          signIn(email: $email, password: $password) { token }
        }`,
        { email: email.value, password: password.value },
        { token: null },
      );
      tokens.clear();
      tokens.current = data.signIn.token;
      password.value = '';
      clearMessages();
      await start('#/sessions');
    } catch (error) {
      if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') {
        notify('The email or password is incorrect.', 'error');
      } else {
        reportError(error);
      }
      password.focus();
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  mount(root, h('main', { id: 'main', class: 'narrow' }, form));
  mount(document.getElementById('banner'));
  if (reason) notify(reason, 'info');
  else clearMessages();
  email.focus();
}

async function signOut() {
  try {
    await gql('mutation SignOut { signOut }');
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'UNAUTHENTICATED')) {
      reportError(error);
      return;
    }
  }
  tokens.clear();
  showSignIn('You have signed out.');
}

// ---------------------------------------------------------------- impersonation

/** Switches to an impersonation session opened by `startImpersonation`. */
async function beginImpersonation(token) {
  stopView();
  tokens.admin = tokens.current;
  tokens.current = token;
  await loadViewer();
  renderShell();
  navigate('#/sessions', { keepMessages: true });
  notify(`You are now acting as ${state.viewer.user.name}. Everything you do is recorded with your name.`, 'info');
}

async function stopImpersonation() {
  const target = state.viewer?.user;
  try {
    await gql('mutation StopImpersonation { stopImpersonation }');
  } catch (error) {
    // An impersonation session that has already ended needs no stopping.
    if (!(error instanceof ApiError && error.code === 'UNAUTHENTICATED')) {
      reportError(error);
      return;
    }
    if (error.sessionEnded) return; // handled: back to the admin's session
  }
  stopView();
  const admin = tokens.admin;
  tokens.admin = null;
  tokens.current = admin;
  try {
    await loadViewer();
  } catch (error) {
    if (!error.sessionEnded) reportError(error);
    return;
  }
  renderShell();
  navigate(target ? `#/users/${target.id}` : '#/users', { keepMessages: true });
  notify(target ? `Impersonation of ${target.name} stopped.` : 'Impersonation stopped.', 'success');
}

function renderBanner() {
  const banner = document.getElementById('banner');
  const viewer = state.viewer;
  if (!viewer?.impersonator) {
    mount(banner);
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  const stop = h('button', { type: 'button', class: 'stop' }, 'Stop impersonating');
  stop.addEventListener('click', stopImpersonation);
  mount(
    banner,
    h(
      'div',
      { class: 'impersonation-banner', role: 'region', 'aria-label': 'Impersonation' },
      h(
        'p',
        {},
        h('strong', {}, 'Impersonating '),
        h('span', { 'data-testid': 'impersonated' }, `${viewer.user.name} (${viewer.user.email})`),
        ' — you are ',
        h('strong', { 'data-testid': 'impersonator' }, `${viewer.impersonator.name} (${viewer.impersonator.email})`),
        '. Actions are audited in your name.',
      ),
      stop,
    ),
  );
}

// ---------------------------------------------------------------- shell

function renderShell() {
  const viewer = state.viewer;
  const links = [['#/sessions', 'Your sessions']];
  if (can('listUsers')) links.push(['#/users', 'Users']);
  links.push(['#/audit', 'Audit log']);
  if (can('manageWebhooks')) links.push(['#/webhooks', 'Webhooks']);
  const signOutButton = isImpersonating()
    ? null
    : h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out');
  mount(
    root,
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/sessions' }, 'Session manager'),
      h(
        'nav',
        { 'aria-label': 'Main' },
        h('ul', {}, links.map(([href, label]) => h('li', {}, h('a', { href, dataset: { route: href } }, label)))),
      ),
      h(
        'div',
        { class: 'who' },
        h('span', { 'data-testid': 'whoami' }, `${viewer.user.name} · ${viewer.user.email}`),
        h('span', { class: `badge role-${viewer.user.role.toLowerCase()}` }, viewer.user.role.toLowerCase()),
        signOutButton,
      ),
    ),
    h('main', { id: 'main' }),
  );
  renderBanner();
}

function markCurrentLink(path) {
  for (const a of root.querySelectorAll('nav a')) {
    const link = a.dataset.route;
    const active = path === link || ((link === '#/users' || link === '#/webhooks') && path.startsWith(`${link}/`));
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------- router

function stopView() {
  if (state.view) {
    state.view.destroy?.();
    state.view = null;
  }
}

/** Goes to `hash`; `keepMessages` keeps what notify() just said. */
function navigate(hash, { keepMessages = false } = {}) {
  if (location.hash === hash) {
    route();
  } else {
    state.keepMessages = keepMessages;
    location.hash = hash;
  }
}

function parseHash() {
  const raw = location.hash || '#/sessions';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

const context = {
  get viewer() {
    return state.viewer;
  },
  can,
  isImpersonating,
  notify,
  clearMessages,
  reportError,
  navigate,
  beginImpersonation,
};

function route() {
  if (!state.viewer) return;
  const { path, params } = parseHash();
  stopView();
  const main = document.getElementById('main');
  if (!main) return;
  let view;
  const userMatch = path.match(/^#\/users\/([0-9a-fA-F-]{36})$/);
  const webhookMatch = path.match(/^#\/webhooks\/([0-9a-fA-F-]{36})$/);
  if (path === '#/sessions' || path === '#/' || path === '#/signin' || path === '') {
    view = sessionsView(context);
  } else if (path === '#/users' && can('listUsers')) {
    view = usersView(context, params);
  } else if (userMatch && can('listUsers')) {
    view = userView(context, userMatch[1], params);
  } else if (path === '#/audit') {
    view = auditView(context, params);
  } else if (path === '#/webhooks' && can('manageWebhooks')) {
    view = webhooksView(context);
  } else if (webhookMatch && can('manageWebhooks')) {
    view = webhookView(context, webhookMatch[1], params);
  } else {
    mount(
      main,
      h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', {}, 'There is nothing here for your account. ', h('a', { href: '#/sessions' }, 'Go to your sessions'), '.'),
    );
    main.querySelector('h1').focus();
    return;
  }
  state.view = view;
  markCurrentLink(path);
  view.render(main);
  // Move focus to the new page's heading, for keyboard and screen readers.
  main.querySelector('h1')?.focus({ preventScroll: true });
  document.title = `${main.querySelector('h1')?.textContent || 'Dashboard'} · Session manager`;
}

window.addEventListener('hashchange', () => {
  if (!state.keepMessages) clearMessages();
  state.keepMessages = false;
  route();
});

// Coming back to the tab: show what changed meanwhile (and find out at
// once if the session has ended).
// A view whose reads are audited says how with onReturn().
function onReturn() {
  const view = state.view;
  if (view?.onReturn) view.onReturn();
  else view?.refresh?.();
}
window.addEventListener('focus', onReturn);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') onReturn();
});

// ---------------------------------------------------------------- start

async function start(hash) {
  try {
    await loadViewer();
  } catch (error) {
    if (error.sessionEnded) return; // the handler shows sign-in
    showSignIn(describeError(error));
    return;
  }
  renderShell();
  if (hash) navigate(hash);
  else route();
}

if (tokens.current) {
  start(location.hash && location.hash !== '#/signin' ? null : '#/sessions');
} else {
  showSignIn();
}
