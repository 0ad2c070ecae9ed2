// "Your sessions": the devices signed in to the account, live through the
// `sessionEvents` subscription when the server offers it, and otherwise
// refreshed every 5 seconds and whenever the tab regains focus.

import { gql, tokens } from './api.js';
import { h, mount, facts, timeEl } from './dom.js';
import { LiveClient } from './live.js';

export const SESSION_FIELDS = `
  id sessionToken device userAgent ipAddress createdAt lastActiveAt expires
  revokedAt isActive isCurrent impersonationReason
  impersonator { id name email }
  endReason endedAt revokedBy { id name email }
`;

/** How a session ended, as the server names it (`Session.endReason`). */
const END_REASONS = {
  SIGN_OUT: 'signed out',
  REVOKED: 'revoked',
  REVOKED_BULK: 'revoked with the other sessions',
  PASSWORD_CHANGED: 'password changed',
  SESSION_LIMIT: 'session limit reached',
  IMPERSONATION_STOPPED: 'impersonation stopped',
  IMPERSONATOR_ENDED: "the admin's session ended",
  IDLE_TIMEOUT: 'unused for too long',
  EXPIRED: 'expired',
  OTHER: 'ended',
};

/** "Ended by Adam Admin — revoked", or "Ended by the server — expired". */
function endedNote(session) {
  if (session.isActive || !session.endReason) return null;
  const why = END_REASONS[session.endReason] || 'ended';
  const who = session.revokedBy
    ? h('strong', { title: session.revokedBy.email }, session.revokedBy.name)
    : 'the server';
  return h('p', { class: 'ended-note', 'data-testid': 'ended' }, 'Ended by ', who, ` — ${why}`);
}

const POLL_MS = 5000;

/** One session as a card; `onRevoke(session)` when revoking is offered. */
export function sessionCard(session, { onRevoke } = {}) {
  const label = session.device || 'Unknown device';
  const titleId = `session-${session.id}`;
  const badges = [];
  if (session.isCurrent) badges.push(h('span', { class: 'badge current' }, 'This device'));
  if (session.impersonator) badges.push(h('span', { class: 'badge impersonation' }, 'Impersonation'));
  if (!session.isActive) badges.push(h('span', { class: 'badge ended' }, session.revokedAt ? 'Revoked' : 'Expired'));
  const ended = endedNote(session);
  const impersonation = session.impersonator
    ? h(
        'p',
        { class: 'impersonation-note' },
        'Opened by ',
        h('strong', {}, `${session.impersonator.name} (${session.impersonator.email})`),
        ' acting as this user. Reason: ',
        h('q', {}, session.impersonationReason || '—'),
      )
    : null;
  const actions = [];
  if (onRevoke && session.isActive && !session.isCurrent) {
    actions.push(
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          'aria-label': `Revoke the session on ${label}${session.ipAddress ? ` from ${session.ipAddress}` : ''}`,
          onclick: (event) => onRevoke(session, event.currentTarget),
        },
        'Revoke',
      ),
    );
  }
  return h(
    'li',
    { class: 'session card', 'aria-labelledby': titleId, dataset: { sessionId: session.id } },
    h('div', { class: 'session-head' }, h('h3', { id: titleId, title: session.userAgent || null }, label), badges),
    facts([
      ['IP address', session.ipAddress || 'unknown'],
      ['Signed in', timeEl(session.createdAt)],
      ['Last active', timeEl(session.lastActiveAt)],
      [session.isActive ? 'Expires' : 'Ended', timeEl(session.isActive ? session.expires : session.endedAt || session.expires)],
      ['Token', h('code', {}, session.sessionToken)],
    ]),
    impersonation,
    ended,
    actions.length ? h('div', { class: 'actions' }, actions) : null,
  );
}

/**
 * The audit events that change what a session list shows: sign-ins,
 * revocations (one, bulk, or by the session limit), expiry, and
 * impersonation starting or stopping. Reads (`sessions.viewed`) are not
 * among them: an admin's read of a user's sessions is itself audited, so
 * refreshing on it would refresh forever.
 */
export const LIST_CHANGING_EVENTS = new Set([
  'auth.sign_in',
  'session.revoked',
  'session.expired',
  'impersonation.started',
  'impersonation.stopped',
]);

/** Whether a live event can change the list (refused attempts change nothing). */
export function changesList(event) {
  return Boolean(event) && event.status === 'SUCCESS' && LIST_CHANGING_EVENTS.has(event.eventType);
}

/**
 * Keeps the session list of `userId` fresh: live events about that user
 * when the subscription works (only those that change the list, see
 * `changesList`), polling (every `pollMs`, 0 for none) when it does not.
 * Returns `{ stop, isLive }`.
 */
export function keepFresh({ ctx, refresh, userId, pollMs = POLL_MS, onLive = () => {} }) {
  let timer = null;
  let pending = null;
  let subscribed = false;
  let wasLive = false;
  const live = new LiveClient({
    token: () => tokens.current,
    onStatus: (status) => {
      subscribed = status === 'live';
      // Back after a drop: events may have been missed meanwhile. (Not on
      // the first connection: the page has just loaded the list.)
      if (subscribed && wasLive) refresh();
      if (subscribed) wasLive = true;
      onLive(status);
    },
    // Closed for bad or ended credentials: a request tells which.
    onAuthClosed: () => refresh(),
  });
  live.subscribe(
    `subscription SessionEvents($userId: UUID) {
      sessionEvents(userId: $userId) { id eventType status sessionId userId }
    }`,
    // Always one user's events: without a userId an admin would get
    // everyone's, and refresh on every event in the system.
    { userId },
    {
      next: (data) => {
        if (!changesList(data?.sessionEvents)) return;
        // Events come in bursts (a bulk revocation): refresh once.
        clearTimeout(pending);
        pending = setTimeout(refresh, 150);
      },
      error: (errors) => {
        // The session was revoked or expired (the server says why, then
        // closes with 4403), or the server refused the subscription:
        // polling takes over, and a request at once tells which.
        console.info('live updates stopped:', errors?.[0]?.message);
        subscribed = false;
        live.stop();
        refresh();
      },
    },
  );
  live.start();
  if (pollMs > 0) {
    timer = setInterval(() => {
      if (!subscribed && document.visibilityState === 'visible') refresh();
    }, pollMs);
  }
  return {
    stop() {
      clearInterval(timer);
      clearTimeout(pending);
      live.stop();
    },
    isLive: () => subscribed,
  };
}

/** "Live" while the subscription runs, `offline` text otherwise. */
export function liveIndicator(offline = 'Refreshing every 5 s') {
  const el = h('span', { class: 'live-status', 'data-testid': 'live-status' }, offline);
  return {
    el,
    set(status) {
      el.classList.toggle('on', status === 'live');
      el.textContent = status === 'live' ? 'Live' : offline;
    },
  };
}

export function sessionsView(ctx) {
  let list;
  let summary;
  let bulk;
  let fresh = null;
  let busy = false;
  let destroyed = false;
  const indicator = liveIndicator();

  async function refresh() {
    if (busy || destroyed) return;
    busy = true;
    try {
      const data = await gql(`query MySessions { sessions { count activeCount sessions { ${SESSION_FIELDS} } } }`);
      if (!destroyed) show(data.sessions);
    } catch (error) {
      if (!destroyed) ctx.reportError(error);
    } finally {
      busy = false;
    }
  }

  function show(result) {
    const others = result.sessions.filter((s) => !s.isCurrent).length;
    summary.textContent =
      result.activeCount === 1 ? '1 active session' : `${result.activeCount} active sessions`;
    bulk.hidden = others === 0 || ctx.isImpersonating();
    mount(
      list,
      result.sessions.length
        ? result.sessions.map((s) => sessionCard(s, { onRevoke: revoke }))
        : h('li', { class: 'empty' }, 'No active sessions.'),
    );
  }

  async function revoke(session, button) {
    button.disabled = true;
    try {
      await gql('mutation Revoke($id: UUID!) { revokeSession(id: $id) { id revokedAt } }', { id: session.id });
      ctx.notify(`Signed out ${session.device || 'the device'}.`, 'success');
      await refresh();
      list.focus();
    } catch (error) {
      button.disabled = false;
      ctx.reportError(error);
    }
  }

  async function revokeOthers() {
    bulk.disabled = true;
    try {
      const data = await gql('mutation RevokeOthers { revokeSessions(exceptCurrent: true) }');
      const n = data.revokeSessions;
      ctx.notify(n === 1 ? 'Signed out 1 other session.' : `Signed out ${n} other sessions.`, 'success');
      await refresh();
    } catch (error) {
      ctx.reportError(error);
    } finally {
      bulk.disabled = false;
    }
  }

  return {
    render(main) {
      summary = h('p', { class: 'summary', 'aria-live': 'polite' }, 'Loading…');
      bulk = h('button', { type: 'button', class: 'danger', hidden: true, onclick: revokeOthers }, 'Sign out all other sessions');
      list = h('ul', { class: 'sessions', tabindex: '-1', 'aria-label': 'Sessions' });
      const who = ctx.viewer.user;
      mount(
        main,
        h(
          'div',
          { class: 'page-head' },
          h('h1', { tabindex: '-1' }, ctx.isImpersonating() ? `Sessions of ${who.name}` : 'Your sessions'),
          indicator.el,
        ),
        h('div', { class: 'toolbar' }, summary, h('div', { class: 'buttons' }, bulk, h('button', { type: 'button', onclick: refresh }, 'Refresh'))),
        list,
      );
      refresh();
      fresh = keepFresh({ ctx, refresh, userId: who.id, onLive: (s) => indicator.set(s) });
    },
    refresh,
    destroy() {
      destroyed = true;
      fresh?.stop();
    },
  };
}
