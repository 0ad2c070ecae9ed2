// "Your sessions": the devices signed in to the account, live through the
// `sessionEvents` subscription when the server offers it, and otherwise
// refreshed every 5 seconds and whenever the tab regains focus.

import { gql } from './api.js';
import { h, mount } from './dom.js';
import { SESSION_FIELDS, keepFresh, liveIndicator, revokeSession, sessionCard } from './session-list.js';

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
    // The server says whether this session may end others in bulk.
    bulk.hidden = others === 0 || !ctx.can('revokeSessions');
    mount(
      list,
      result.sessions.length
        ? result.sessions.map((s) => sessionCard(s, { onRevoke: revoke }))
        : h('li', { class: 'empty' }, 'No active sessions.'),
    );
  }

  function revoke(session, button) {
    return revokeSession(ctx, session, button, {
      message: `Signed out ${session.device || 'the device'}.`,
      then: async () => {
        await refresh();
        list.focus();
      },
    });
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
