// Admin pages: find a user by email or name or make an account, see and
// manage their account, see and revoke their sessions, and start an
// impersonation with a reason.

import { gql } from './api.js';
import { h, mount, field, pager, timeEl } from './dom.js';
import { USER_FIELDS, newUserForm, showAccount, statusBadge } from './account.js';
import { SESSION_FIELDS, keepFresh, liveIndicator, revokeSession, sessionCard } from './session-list.js';

const PAGE_SIZE = 20;
// Users seen in search results, so a user's page can show their name
// (and, at once, whether the viewer may impersonate them). Kept per
// viewer's session: `canImpersonate` is the server's answer to that
// viewer.
const known = new Map();
const knownKey = (ctx, id) => `${ctx.viewer.session.id}/${id}`;

export function usersView(ctx, params) {
  let results;
  let destroyed = false;
  const search = params.get('search') || '';
  const offset = Math.max(0, Number(params.get('offset')) || 0);

  function go(searchText, newOffset) {
    const q = new URLSearchParams();
    if (searchText) q.set('search', searchText);
    if (newOffset) q.set('offset', String(newOffset));
    const s = q.toString();
    ctx.navigate(s ? `#/users?${s}` : '#/users');
  }

  async function refresh() {
    try {
      const data = await gql(
        `query Users($search: String, $limit: Int!, $offset: Int!) {
          users(search: $search, limit: $limit, offset: $offset) {
            users { id email name role status createdAt canImpersonate }
            pagination { total limit offset hasMore }
          }
        }`,
        { search: search || null, limit: PAGE_SIZE, offset },
      );
      if (!destroyed) show(data.users);
    } catch (error) {
      if (!destroyed) ctx.reportError(error);
    }
  }

  function show(page) {
    for (const user of page.users) known.set(knownKey(ctx, user.id), user);
    mount(
      results,
      page.users.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              {},
              h('caption', { class: 'visually-hidden' }, 'Users'),
              h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role', 'Status', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                {},
                page.users.map((u) =>
                  h(
                    'tr',
                    {},
                    h('td', { 'data-label': 'Name' }, h('a', { href: `#/users/${u.id}` }, u.name)),
                    h('td', { 'data-label': 'Email' }, u.email),
                    h('td', { 'data-label': 'Role' }, h('span', { class: `badge role-${u.role.toLowerCase()}` }, u.role.toLowerCase())),
                    h('td', { 'data-label': 'Status' }, statusBadge(u)),
                    h('td', { 'data-label': 'Created' }, timeEl(u.createdAt, { relativeToo: false })),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'empty' }, search ? `No user matches “${search}”.` : 'No users.'),
      pager({ pagination: page.pagination, count: page.users.length, noun: 'users', onPage: (o) => go(search, o) }),
    );
  }

  return {
    render(main) {
      const input = h('input', { type: 'search', name: 'search', value: search, maxlength: 320, autocomplete: 'off' });
      const form = h(
        'form',
        { role: 'search', class: 'inline-form' },
        field('Find a user by email or name', input),
        h('button', { type: 'submit', class: 'primary' }, 'Search'),
      );
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        go(input.value.trim(), 0);
      });
      results = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
      // Offered when the server lets the viewer make accounts.
      const create = ctx.can('manageUsers')
        ? newUserForm(ctx, { onCreated: (user) => ctx.navigate(`#/users/${user.id}`, { keepMessages: true }) })
        : null;
      mount(main, h('h1', { tabindex: '-1' }, 'Users'), form, results, create);
      refresh();
    },
    refresh,
    destroy() {
      destroyed = true;
    },
  };
}

export function userView(ctx, userId, params) {
  let destroyed = false;
  let list;
  let heading;
  let subtitle;
  let impersonateBox;
  let account;
  let fresh = null;
  let busy = false;
  const includeEnded = params.get('ended') === '1';
  let user = known.get(knownKey(ctx, userId)) || null;
  const indicator = liveIndicator('Refreshes on focus');

  function describe() {
    heading.textContent = user ? user.name : 'User';
    mount(
      subtitle,
      user
        ? [user.email, ' ', h('span', { class: `badge role-${user.role.toLowerCase()}` }, user.role.toLowerCase()), ' ', statusBadge(user)]
        : `User ${userId}`,
    );
    // The server says whom the viewer may impersonate (`canImpersonate`).
    impersonateBox.hidden = !user?.canImpersonate;
    // Only once the account is read (search results lack the rights).
    if (user?.canUpdate !== undefined) {
      showAccount(account, ctx, user, {
        onChanged: async (changed) => {
          remember(changed);
          describe();
          await refresh();
        },
        onDeleted: () => ctx.navigate('#/users', { keepMessages: true }),
      });
    }
  }

  function remember(found) {
    user = found;
    known.set(knownKey(ctx, found.id), found);
  }

  // The account itself (`user`): its facts and the viewer's rights on it.
  async function loadAccount() {
    const data = await gql(`query UserAccount($id: UUID!) { user(id: $id) { ${USER_FIELDS} } }`, { id: userId });
    if (destroyed) return;
    remember(data.user);
    describe();
  }

  async function refresh() {
    if (busy || destroyed) return;
    busy = true;
    try {
      await loadAccount();
      if (destroyed) return;
      const data = await gql(
        `query UserSessions($userId: UUID!, $all: Boolean!) {
          sessions(userId: $userId, includeExpired: $all) {
            count activeCount sessions { ${SESSION_FIELDS} }
          }
        }`,
        { userId, all: includeEnded },
      );
      if (destroyed) return;
      mount(
        list,
        data.sessions.sessions.length
          ? data.sessions.sessions.map((s) => sessionCard(s, { onRevoke: revoke }))
          : h('li', { class: 'empty' }, includeEnded ? 'No sessions.' : 'No active sessions.'),
      );
    } catch (error) {
      if (!destroyed) ctx.reportError(error);
    } finally {
      busy = false;
    }
  }

  function revoke(session, button) {
    return revokeSession(ctx, session, button, {
      message: `Revoked the session on ${session.device || 'an unknown device'}.`,
      then: async () => {
        await refresh();
        list.focus();
      },
    });
  }

  async function revokeAll(event) {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const data = await gql('mutation RevokeAll($userId: UUID!) { revokeSessions(userId: $userId, exceptCurrent: false) }', { userId });
      const n = data.revokeSessions;
      ctx.notify(n === 1 ? 'Revoked 1 session.' : `Revoked ${n} sessions.`, 'success');
      await refresh();
    } catch (error) {
      ctx.reportError(error);
    } finally {
      button.disabled = false;
    }
  }

  function impersonationForm() {
    const reason = h('textarea', { name: 'reason', required: true, maxlength: 500, rows: 2 });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Start impersonation');
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'impersonate-title' },
      h('h2', { id: 'impersonate-title' }, 'Impersonate'),
      h('p', { class: 'muted' }, 'Opens a short-lived session as this user, with their rights only. The user sees it in their sessions with your name and the reason; everything you do is audited.'),
      field('Reason (shown to the user)', reason, '1 to 500 characters, e.g. a support ticket number.'),
      submit,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        ctx.notify('Please give a reason for the impersonation.', 'error');
        reason.focus();
        return;
      }
      submit.disabled = true;
      try {
        const data = await gql(
          `mutation Impersonate($userId: UUID!, $reason: String!) {
            startImpersonation(userId: $userId, reason: $reason) { token }
          }`,
          { userId, reason: reason.value.trim() },
        );
        await ctx.beginImpersonation(data.startImpersonation.token);
      } catch (error) {
        submit.disabled = false;
        ctx.reportError(error);
      }
    });
    return form;
  }

  return {
    render(main) {
      heading = h('h1', { tabindex: '-1' }, 'User');
      subtitle = h('p', { class: 'subtitle' });
      list = h('ul', { class: 'sessions', tabindex: '-1', 'aria-label': 'Sessions' });
      impersonateBox = h('div', { hidden: true }, impersonationForm());
      account = h('div', { 'data-testid': 'account' });
      const toggle = h('input', { type: 'checkbox', id: 'show-ended', checked: includeEnded });
      toggle.addEventListener('change', () => ctx.navigate(`#/users/${userId}${toggle.checked ? '?ended=1' : ''}`));
      mount(
        main,
        h('p', { class: 'crumbs' }, h('a', { href: '#/users' }, '← Users')),
        h('div', { class: 'page-head' }, heading, indicator.el),
        subtitle,
        account,
        h('section', { 'aria-labelledby': 'user-sessions-title' },
          h(
            'div',
            { class: 'toolbar' },
            h('h2', { id: 'user-sessions-title' }, 'Sessions'),
            h(
              'div',
              { class: 'buttons' },
              h('label', { class: 'check', for: 'show-ended' }, toggle, ' Show ended sessions'),
              h('button', { type: 'button', class: 'danger', onclick: revokeAll }, 'Revoke all sessions'),
              h('button', { type: 'button', onclick: refresh }, 'Refresh'),
            ),
          ),
          list,
        ),
        impersonateBox,
      );
      describe();
      refresh();
      // Every read of another user's sessions is audited, so no polling
      // here, and no refresh on read events (each refresh is one): the
      // events that change this user's sessions, the Refresh button, and
      // focus while live updates are off keep it current.
      fresh = keepFresh({ ctx, refresh, userId, pollMs: 0, onLive: (s) => indicator.set(s) });
    },
    refresh,
    // Coming back to the tab: live updates already kept the list current.
    onReturn() {
      if (!fresh?.isLive()) refresh();
    },
    destroy() {
      destroyed = true;
      fresh?.stop();
    },
  };
}
