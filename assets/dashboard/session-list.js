// Showing a list of sessions, for every view that has one (your sessions,
// a user's sessions): the fields to ask for, one session as a card, its
// revocation, and keeping the list fresh through the `sessionEvents`
// subscription (or polling when the server does not offer it).

import { gql, tokens } from './api.js';
import { h, facts, timeEl } from './dom.js';
import { LiveClient } from './live.js';

export const SESSION_FIELDS = `
  id sessionToken device userAgent ipAddress createdAt lastActiveAt expires
  revokedAt isActive isCurrent canRevoke impersonationReason
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

/**
 * One session as a card; `onRevoke(session)` when revoking is offered:
 * on an active session other than this one, when the server says the
 * viewer may revoke it (`canRevoke`).
 */
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
  if (onRevoke && session.isActive && !session.isCurrent && session.canRevoke) {
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

const REVOKE = 'mutation Revoke($id: UUID!) { revokeSession(id: $id) { id revokedAt } }';

/**
 * Revokes `session` from its card's `button` (disabled meanwhile): on
 * success tells the viewer `message` and runs `then()` (refresh the
 * list), on failure re-enables the button and reports the error.
 */
export async function revokeSession(ctx, session, button, { message, then }) {
  button.disabled = true;
  try {
    await gql(REVOKE, { id: session.id });
    ctx.notify(message, 'success');
    await then();
  } catch (error) {
    button.disabled = false;
    ctx.reportError(error);
  }
}
