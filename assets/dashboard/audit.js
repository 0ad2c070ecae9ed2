// The audit log: filters, paging and, for owners, the hash chain's status.
// Filters and the page live in the address (#/audit?eventType=…&offset=…),
// so a view can be bookmarked and Back works.

import { gql } from './api.js';
import { h, mount, field, formatDate, pager } from './dom.js';

const PAGE_SIZES = [10, 25, 50, 100];
const UUID_FILTERS = [
  ['userId', 'User ID', 'Events about this user'],
  ['actorId', 'Actor ID', 'Events done by this user'],
  ['sessionId', 'Session ID', null],
];

/** `2025-03-12T14:03` (local, as a datetime-local input holds it) from ISO. */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function shortId(id) {
  return id ? h('code', { title: id }, `${id.slice(0, 8)}…`) : '—';
}

/**
 * A person named by an event: name and email, the id on hover. `href`
 * (for those who may filter by people) makes it a link that filters the
 * log by them. An account that is gone, or that the viewer may not see,
 * shows as its short id.
 */
function personCell(person, id, href) {
  if (!person) return shortId(id);
  const label = [h('span', { class: 'person-name' }, person.name), h('span', { class: 'person-email' }, person.email)];
  const title = `${person.name} <${person.email}>\n${person.id}`;
  return href
    ? h('a', { class: 'person', href, title, 'data-person-id': person.id }, label)
    : h('span', { class: 'person', title, 'data-person-id': person.id }, label);
}

export function auditView(ctx, params) {
  let destroyed = false;
  let results;
  let chain;
  // The server says who reads (and so filters by) everyone, and who may
  // check the chain (`Viewer.can`).
  const readsAll = ctx.can('readAllAudit');
  const checksChain = ctx.can('verifyAuditChain');
  const limit = PAGE_SIZES.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 25;
  const offset = Math.max(0, Number(params.get('offset')) || 0);

  function filterFromParams() {
    const filter = {};
    for (const key of ['eventType', 'status', 'since', 'until', 'sessionId', ...(readsAll ? ['userId', 'actorId'] : [])]) {
      const value = params.get(key);
      if (value) filter[key] = value;
    }
    return filter;
  }
  const filter = filterFromParams();

  function go(newFilter, newLimit, newOffset) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(newFilter)) if (value) q.set(key, value);
    if (newLimit !== 25) q.set('limit', String(newLimit));
    if (newOffset) q.set('offset', String(newOffset));
    const s = q.toString();
    ctx.navigate(s ? `#/audit?${s}` : '#/audit');
  }

  async function refresh() {
    try {
      const data = await gql(
        `query Audit($filter: AuditFilter, $limit: Int!, $offset: Int!) {
          sessionAudit(filter: $filter, limit: $limit, offset: $offset) {
            logs {
              id eventType status message createdAt actorId userId sessionId ipAddress metadata
              actor { id name email }
              user { id name email }
            }
            pagination { total limit offset hasMore }
          }
        }`,
        { filter, limit, offset },
      );
      if (!destroyed) show(data.sessionAudit);
    } catch (error) {
      if (!destroyed) {
        mount(results, h('p', { class: 'empty' }, 'The audit log could not be loaded.'));
        ctx.reportError(error);
      }
    }
  }

  async function checkChain(button) {
    if (button) button.disabled = true;
    mount(chain, h('p', {}, 'Checking the hash chain…'));
    try {
      const data = await gql('query Chain { auditChain { intact checked firstBrokenId problem } }');
      if (destroyed) return;
      const c = data.auditChain;
      const again = h('button', { type: 'button', onclick: (e) => checkChain(e.currentTarget) }, 'Check again');
      mount(
        chain,
        c.intact
          ? h('p', { class: 'chain ok', 'data-testid': 'chain' }, h('strong', {}, 'Chain intact'), ` — ${c.checked} events checked; none edited, deleted or reordered.`)
          : h(
              'p',
              { class: 'chain broken', 'data-testid': 'chain' },
              h('strong', {}, 'Chain broken'),
              ` after ${c.checked} events: ${c.problem || 'an event does not fit the chain'}`,
              c.firstBrokenId ? [' (first broken event ', h('code', {}, c.firstBrokenId), ')'] : null,
              '.',
            ),
        again,
      );
    } catch (error) {
      if (!destroyed) {
        mount(chain, h('p', {}, 'The chain status could not be checked.'));
        ctx.reportError(error);
      }
    }
  }

  async function loadEventTypes(datalist) {
    try {
      const data = await gql('query EventTypes { auditEventTypes }');
      if (!destroyed) mount(datalist, data.auditEventTypes.map((t) => h('option', { value: t })));
    } catch (error) {
      // Only suggestions: the log's own request reports what went wrong.
      console.info('event types not loaded:', error?.message);
    }
  }

  /** The address of this view filtered by `key` = `id` (page 1). */
  function filteredBy(key, id) {
    if (!readsAll || !id) return null;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filter, [key]: id })) if (v) q.set(k, v);
    if (limit !== 25) q.set('limit', String(limit));
    return `#/audit?${q}`;
  }

  function show(page) {
    const rows = page.logs.map((log) =>
      h(
        'tr',
        { class: log.status === 'FAILED' ? 'failed' : null },
        h('td', { 'data-label': 'Time' }, h('time', { datetime: log.createdAt }, formatDate(log.createdAt))),
        h('td', { 'data-label': 'Event' }, h('code', {}, log.eventType)),
        h('td', { 'data-label': 'Status' }, h('span', { class: `badge status-${log.status.toLowerCase()}` }, log.status.toLowerCase())),
        h('td', { 'data-label': 'Message', class: 'message-cell' }, log.message),
        h('td', { 'data-label': 'Actor' }, personCell(log.actor, log.actorId, filteredBy('actorId', log.actorId))),
        h('td', { 'data-label': 'User' }, personCell(log.user, log.userId, filteredBy('userId', log.userId))),
        h('td', { 'data-label': 'IP' }, log.ipAddress || '—'),
      ),
    );
    mount(
      results,
      rows.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'audit' },
              h('caption', { class: 'visually-hidden' }, 'Audit events, newest first'),
              h('thead', {}, h('tr', {}, ['Time', 'Event', 'Status', 'Message', 'Actor', 'User', 'IP'].map((t) => h('th', { scope: 'col' }, t)))),
              h('tbody', {}, rows),
            ),
          )
        : h('p', { class: 'empty' }, 'No events match these filters.'),
      pager({ pagination: page.pagination, count: page.logs.length, noun: 'events', onPage: (o) => go(filter, limit, o) }),
    );
  }

  function filterForm() {
    const controls = {};
    controls.eventType = h('input', { name: 'eventType', list: 'event-types', value: filter.eventType || '', maxlength: 64, autocomplete: 'off' });
    controls.status = h(
      'select',
      { name: 'status' },
      h('option', { value: '' }, 'Any'),
      h('option', { value: 'SUCCESS', selected: filter.status === 'SUCCESS' }, 'Success'),
      h('option', { value: 'FAILED', selected: filter.status === 'FAILED' }, 'Failed'),
    );
    for (const [key] of UUID_FILTERS) {
      controls[key] = h('input', { name: key, value: filter[key] || '', spellcheck: 'false', autocomplete: 'off', maxlength: 36 });
    }
    controls.since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(filter.since) });
    controls.until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(filter.until) });
    // The types the server records, as it lists them (filled in when
    // they arrive; any type may still be typed in).
    const eventTypes = h('datalist', { id: 'event-types' });
    loadEventTypes(eventTypes);
    const size = h('select', { name: 'limit' }, PAGE_SIZES.map((n) => h('option', { value: String(n), selected: n === limit }, String(n))));

    const form = h(
      'form',
      { class: 'filters card', 'aria-label': 'Audit filters' },
      eventTypes,
      h(
        'div',
        { class: 'grid' },
        field('Event type', controls.eventType),
        field('Status', controls.status),
        UUID_FILTERS.filter(([key]) => readsAll || key === 'sessionId').map(([key, label, hint]) => field(label, controls[key], hint)),
        field('Since', controls.since),
        field('Until', controls.until),
        field('Per page', size),
      ),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
        h('button', { type: 'button', onclick: () => go({}, limit, 0) }, 'Clear'),
      ),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const next = {
        eventType: controls.eventType.value.trim(),
        status: controls.status.value,
        since: controls.since.value ? new Date(controls.since.value).toISOString() : '',
        until: controls.until.value ? new Date(controls.until.value).toISOString() : '',
      };
      for (const [key] of UUID_FILTERS) if (controls[key].isConnected) next[key] = controls[key].value.trim();
      go(next, Number(size.value), 0);
    });
    return form;
  }

  return {
    render(main) {
      results = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
      chain = h('section', { class: 'card chain-box', 'aria-label': 'Audit chain status' });
      mount(
        main,
        h('h1', { tabindex: '-1' }, 'Audit log'),
        h('p', { class: 'muted' }, readsAll ? 'Every session event, newest first.' : 'Events about your account, newest first.'),
        checksChain ? chain : null,
        filterForm(),
        results,
      );
      refresh();
      if (checksChain) checkChain();
    },
    refresh,
    destroy() {
      destroyed = true;
    },
  };
}
