// Owner pages for webhook endpoints and Shared Signals streams: the list
// of endpoints with each one's health, the streams with theirs (read-only:
// receivers manage their streams over the SSF API),
// making one (its signing secret shown once), and one endpoint's page:
// enable or disable it, rotate its secret (shown once), delete it (two
// steps), replay from an audit `seq`, and its recent delivery attempts,
// paged with `after`. Shown to viewers the server lets manage webhooks
// (`Viewer.can.manageWebhooks`); the server refuses everyone else anyway.

import { gql } from './api.js';
import { facts, field, h, mount, timeEl, uid } from './dom.js';

const ENDPOINT_FIELDS = `id url description eventTypes enabled disabledAt disabledReason cursorSeq
  failures failingSince nextAttemptAt lastSuccessAt lastFailureAt previousSecretUntil createdAt updatedAt lag`;
const PAGE_SIZE = 20;
const UUID = /^[0-9a-fA-F-]{36}$/;

/** "enabled" or "disabled" (and, while failing, "failing"). */
function stateBadge(endpoint) {
  if (!endpoint.enabled) return h('span', { class: 'badge status-disabled', 'data-testid': 'state' }, 'disabled');
  if (endpoint.failures > 0) return h('span', { class: 'badge status-failed', 'data-testid': 'state' }, 'failing');
  return h('span', { class: 'badge status-active', 'data-testid': 'state' }, 'enabled');
}

function eventTypesText(endpoint) {
  return endpoint.eventTypes ? endpoint.eventTypes.join(', ') : 'every event type';
}

/** The endpoint's health, as a list of facts. */
function healthFacts(endpoint) {
  return facts([
    ['State', stateBadge(endpoint)],
    ['Disabled', endpoint.disabledAt ? timeEl(endpoint.disabledAt) : null],
    ['Why', endpoint.disabledReason || null],
    ['Last success', endpoint.lastSuccessAt ? timeEl(endpoint.lastSuccessAt) : 'none yet'],
    ['Failures', h('span', { 'data-testid': 'failures' }, String(endpoint.failures))],
    ['Failing since', endpoint.failingSince ? timeEl(endpoint.failingSince) : null],
    ['Next attempt', endpoint.nextAttemptAt ? timeEl(endpoint.nextAttemptAt) : null],
    ['Last failure', endpoint.lastFailureAt ? timeEl(endpoint.lastFailureAt) : null],
    ['Old secret signs until', endpoint.previousSecretUntil ? h('span', { 'data-testid': 'previous-secret-until' }, timeEl(endpoint.previousSecretUntil)) : null],
    ['Lag', h('span', { 'data-testid': 'lag' }, `${endpoint.lag} event${endpoint.lag === 1 ? '' : 's'} (delivered up to seq ${endpoint.cursorSeq})`)],
    ['Events', eventTypesText(endpoint)],
    ['Created', timeEl(endpoint.createdAt, { relativeToo: false })],
  ]);
}

/**
 * The signing secret, shown once: the value, a copy button and what to do
 * with it. Gone once the viewer leaves the page.
 */
function secretBox(ctx, secret, title) {
  const value = h('code', { class: 'secret', 'data-testid': 'secret', tabindex: '0' }, secret);
  const copy = h('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(secret);
      ctx.notify('Copied the secret to the clipboard.', 'success');
    } catch {
      // No clipboard (an insecure origin, a refused permission): select
      // it for the viewer to copy.
      const range = document.createRange();
      range.selectNodeContents(value);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      ctx.notify('Select and copy the secret yourself (it is selected).', 'info');
    }
  });
  return h(
    'section',
    { class: 'card secret-box', role: 'region', 'aria-label': 'Signing secret' },
    h('h2', {}, title),
    h('p', {}, 'Copy it into your receiver’s configuration now: it is shown this once and cannot be read again (rotate it to get a new one). Receivers verify ', h('code', {}, 'webhook-signature'), ' with it.'),
    h('div', { class: 'buttons' }, value, copy),
  );
}

/** Runs `work` from `button` (disabled meanwhile); reports a failure. */
async function act(ctx, button, work) {
  button.disabled = true;
  try {
    await work();
    return true;
  } catch (error) {
    ctx.reportError(error);
    return false;
  } finally {
    button.disabled = false;
  }
}

/** A button that asks once more before `work` (its label then `confirmLabel`). */
function twoStep(ctx, label, confirmLabel, hint, work, { danger = true } = {}) {
  const hintId = uid('hint');
  const button = h('button', { type: 'button', class: danger ? 'danger' : null }, label);
  let armed = false;
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.setAttribute('aria-describedby', hintId);
      return;
    }
    await act(ctx, button, work);
    armed = false;
    button.textContent = label;
  });
  return h('div', { class: 'stack' }, h('p', { class: 'hint', id: hintId }, hint), h('div', { class: 'buttons' }, button));
}

// ---------------------------------------------------------------- streams

const STREAM_FIELDS = `id audience description delivery endpointUrl eventsDelivered status statusReason
  subjectsRestricted cursorSeq failures failingSince lastSuccessAt lastFailureAt createdAt lag`;

function streamBadge(stream) {
  const failing = stream.status === 'enabled' && stream.failures > 0;
  const label = failing ? 'failing' : stream.status;
  const tone = { enabled: 'status-active', paused: 'status-disabled', disabled: 'status-disabled', failing: 'status-failed' }[label] || 'status-disabled';
  return h('span', { class: `badge ${tone}`, 'data-testid': 'stream-state' }, label);
}

/** The streams and their health; `slot` is filled (and refilled). */
async function loadStreams(ctx, slot, isDestroyed) {
  try {
    const data = await gql(`query Streams { ssfStreams { ${STREAM_FIELDS} } }`);
    if (isDestroyed()) return;
    const streams = data.ssfStreams;
    mount(
      slot,
      streams.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'ssf-streams' },
              h('caption', { class: 'visually-hidden' }, 'Shared Signals streams, oldest first'),
              h('thead', {}, h('tr', {}, ['Receiver', 'Delivery', 'State', 'Last success', 'Failures', 'Lag'].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                {},
                streams.map((s) =>
                  h(
                    'tr',
                    { class: s.status === 'enabled' && s.failures === 0 ? null : 'failed', 'data-stream-id': s.id },
                    h(
                      'td',
                      { 'data-label': 'Receiver' },
                      h('code', { class: 'endpoint-url' }, s.audience),
                      s.description ? h('div', { class: 'muted' }, s.description) : null,
                      h('div', { class: 'hint' }, s.eventsDelivered.length ? s.eventsDelivered.map((t) => t.split('/').pop()).join(', ') : 'no event types'),
                      s.subjectsRestricted ? h('div', { class: 'hint' }, 'listed subjects only') : null,
                    ),
                    h('td', { 'data-label': 'Delivery' }, s.delivery, h('div', { class: 'hint endpoint-url' }, s.endpointUrl)),
                    h('td', { 'data-label': 'State' }, streamBadge(s), s.statusReason ? h('div', { class: 'hint' }, s.statusReason) : null),
                    h('td', { 'data-label': 'Last success' }, s.lastSuccessAt ? timeEl(s.lastSuccessAt) : 'none yet'),
                    h('td', { 'data-label': 'Failures', 'data-testid': 'stream-failures' }, String(s.failures)),
                    h('td', { 'data-label': 'Lag', 'data-testid': 'stream-lag' }, String(s.lag)),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'hint no-streams' }, 'No Shared Signals streams: receivers make them with an API key scoped SSF_MANAGE.'),
    );
  } catch (error) {
    if (!isDestroyed()) {
      mount(slot, h('p', { class: 'hint' }, 'The Shared Signals streams could not be loaded.'));
      ctx.reportError(error);
    }
  }
}

// ---------------------------------------------------------------- list

export function webhooksView(ctx) {
  let destroyed = false;
  let results;
  let secretSlot;
  let streams;

  async function refresh() {
    loadStreams(ctx, streams, () => destroyed);
    try {
      const data = await gql(`query Webhooks { webhookEndpoints { ${ENDPOINT_FIELDS} } }`);
      if (!destroyed) show(data.webhookEndpoints);
    } catch (error) {
      if (!destroyed) {
        mount(results, h('p', { class: 'empty' }, 'The webhook endpoints could not be loaded.'));
        ctx.reportError(error);
      }
    }
  }

  function show(endpoints) {
    mount(
      results,
      endpoints.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'webhooks' },
              h('caption', { class: 'visually-hidden' }, 'Webhook endpoints, newest first'),
              h('thead', {}, h('tr', {}, ['Endpoint', 'State', 'Last success', 'Failures', 'Failing since', 'Next attempt', 'Lag'].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                {},
                endpoints.map((e) =>
                  h(
                    'tr',
                    { class: e.enabled && e.failures === 0 ? null : 'failed', 'data-endpoint-id': e.id },
                    h(
                      'td',
                      { 'data-label': 'Endpoint' },
                      h('a', { href: `#/webhooks/${e.id}`, class: 'endpoint-url' }, e.url),
                      e.description ? h('div', { class: 'muted' }, e.description) : null,
                      h('div', { class: 'hint' }, eventTypesText(e)),
                    ),
                    h('td', { 'data-label': 'State' }, stateBadge(e), e.disabledReason ? h('div', { class: 'hint' }, e.disabledReason) : null),
                    h('td', { 'data-label': 'Last success' }, e.lastSuccessAt ? timeEl(e.lastSuccessAt) : 'none yet'),
                    h('td', { 'data-label': 'Failures', 'data-testid': 'failures' }, String(e.failures)),
                    h('td', { 'data-label': 'Failing since' }, e.failingSince ? timeEl(e.failingSince) : '—'),
                    h('td', { 'data-label': 'Next attempt' }, e.nextAttemptAt ? timeEl(e.nextAttemptAt) : '—'),
                    h('td', { 'data-label': 'Lag', 'data-testid': 'lag' }, String(e.lag)),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'empty' }, 'No webhook endpoints yet.'),
    );
  }

  async function loadEventTypes(box) {
    try {
      const data = await gql('query EventTypes { auditEventTypes }');
      if (destroyed) return;
      mount(
        box,
        data.auditEventTypes.map((t) =>
          h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'eventType', value: t }), ' ', h('code', {}, t)),
        ),
      );
    } catch (error) {
      if (!destroyed) {
        mount(box, h('p', { class: 'hint' }, 'The event types could not be loaded: the endpoint will receive every type.'));
        ctx.reportError(error);
      }
    }
  }

  function createForm() {
    const url = h('input', { type: 'url', name: 'url', required: true, maxlength: 2048, autocomplete: 'off', spellcheck: 'false', placeholder: 'https://app.example.com/hooks/sessions' });
    const description = h('input', { type: 'text', name: 'description', maxlength: 256, autocomplete: 'off' });
    const types = h('div', { class: 'event-types' }, h('p', {}, 'Loading the event types…'));
    loadEventTypes(types);
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create endpoint');
    const form = h(
      'form',
      { class: 'card new-endpoint', 'aria-labelledby': 'new-webhook-title' },
      h('h2', { id: 'new-webhook-title' }, 'New endpoint'),
      field('URL', url, 'http or https; it must resolve to public addresses. Each audit event is POSTed to it, signed (Standard Webhooks).'),
      h(
        'fieldset',
        { class: 'field' },
        h('legend', {}, 'Event types'),
        h('p', { class: 'hint' }, 'None ticked: every type, those added later too.'),
        types,
      ),
      field('Description (optional)', description, 'What it is for, at most 256 characters.'),
      submit,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const picked = [...types.querySelectorAll('input[name="eventType"]:checked')].map((box) => box.value);
      await act(ctx, submit, async () => {
        const data = await gql(
          `mutation CreateWebhook($url: String!, $types: [String!], $description: String) {
            createWebhookEndpoint(url: $url, eventTypes: $types, description: $description) {
              secret endpoint { ${ENDPOINT_FIELDS} }
            }
          }`,
          { url: url.value.trim(), types: picked.length ? picked : null, description: description.value.trim() || null },
        );
        if (destroyed) return;
        const made = data.createWebhookEndpoint;
        form.reset();
        ctx.notify(`Created the endpoint ${made.endpoint.url}.`, 'success');
        mount(secretSlot, secretBox(ctx, made.secret, `Signing secret of ${made.endpoint.url}`));
        secretSlot.querySelector('[data-testid="secret"]').focus();
        await refresh();
      });
    });
    return form;
  }

  return {
    render(main) {
      results = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
      secretSlot = h('div', {});
      streams = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
      mount(
        main,
        h('div', { class: 'toolbar' }, h('h1', { tabindex: '-1' }, 'Webhooks'), h('button', { type: 'button', onclick: refresh }, 'Refresh')),
        h('p', { class: 'muted' }, 'Endpoints that receive the audit events as they are committed, signed as Standard Webhooks define, at least once and in order.'),
        secretSlot,
        results,
        createForm(),
        h(
          'section',
          { class: 'ssf', 'aria-labelledby': 'ssf-title' },
          h('h2', { id: 'ssf-title' }, 'Shared Signals streams'),
          h('p', { class: 'muted' }, 'OpenID Shared Signals receivers: CAEP session-revoked and credential-change events, signed (ES256), pushed or polled. Receivers manage their own streams.'),
          streams,
        ),
      );
      refresh();
    },
    refresh,
    destroy() {
      destroyed = true;
    },
  };
}

// ---------------------------------------------------------------- one endpoint

export function webhookView(ctx, endpointId, params) {
  let destroyed = false;
  let endpoint = null;
  let heading;
  let subtitle;
  let health;
  let actions;
  let secretSlot;
  let deliveries;
  let timer = null;
  const after = UUID.test(params.get('after') || '') ? params.get('after') : null;

  function go(newAfter) {
    ctx.navigate(newAfter ? `#/webhooks/${endpointId}?after=${newAfter}` : `#/webhooks/${endpointId}`);
  }

  async function loadEndpoint() {
    const data = await gql(`query Webhooks { webhookEndpoints { ${ENDPOINT_FIELDS} } }`);
    return data.webhookEndpoints.find((e) => e.id === endpointId) || null;
  }

  async function loadDeliveries() {
    const data = await gql(
      `query Deliveries($id: UUID!, $limit: Int!, $after: UUID) {
        webhookDeliveries(endpointId: $id, limit: $limit, after: $after) {
          id eventId eventSeq eventType attempt status responseCode latencyMs error createdAt
        }
      }`,
      { id: endpointId, limit: PAGE_SIZE + 1, after },
    );
    return data.webhookDeliveries;
  }

  async function refresh() {
    try {
      const found = await loadEndpoint();
      if (destroyed) return;
      if (!found) {
        stopPolling();
        mount(health, h('p', { class: 'empty' }, 'This endpoint does not exist (any more).'));
        mount(actions);
        mount(deliveries);
        return;
      }
      const rebuild = !endpoint || endpoint.enabled !== found.enabled;
      endpoint = found;
      describe(rebuild);
      const page = await loadDeliveries();
      if (!destroyed) showDeliveries(page);
    } catch (error) {
      if (!destroyed) ctx.reportError(error);
    }
  }

  function describe(rebuildActions) {
    heading.textContent = endpoint.url;
    mount(subtitle, endpoint.description || 'No description');
    mount(health, healthFacts(endpoint));
    // The forms only when what they depend on changed: a refresh keeps
    // what the viewer is typing.
    if (rebuildActions) mount(actions, actionForms());
  }

  function changed(updated) {
    endpoint = updated;
    describe(true);
  }

  function actionForms() {
    const toggle = endpoint.enabled
      ? h('button', { type: 'button' }, 'Disable')
      : h('button', { type: 'button', class: 'primary' }, 'Enable');
    toggle.addEventListener('click', () =>
      act(ctx, toggle, async () => {
        const enabled = !endpoint.enabled;
        const data = await gql(
          `mutation SetEnabled($id: UUID!, $enabled: Boolean!) {
            updateWebhookEndpoint(id: $id, enabled: $enabled) { ${ENDPOINT_FIELDS} }
          }`,
          { id: endpointId, enabled },
        );
        ctx.notify(enabled ? 'Enabled the endpoint: delivery resumes where it stopped.' : 'Disabled the endpoint: nothing is sent until it is enabled again.', 'success');
        changed(data.updateWebhookEndpoint);
      }));

    const rotate = twoStep(
      ctx,
      'Rotate secret…',
      'Rotate now',
      'A new secret signs every delivery from now on. The old one keeps signing beside it for 24 hours (each delivery carries both signatures), so give the receiver the new secret within that time.',
      async () => {
        const data = await gql(
          `mutation Rotate($id: UUID!) { rotateWebhookSecret(id: $id) { secret endpoint { ${ENDPOINT_FIELDS} } } }`,
          { id: endpointId },
        );
        const made = data.rotateWebhookSecret;
        ctx.notify('Rotated the signing secret.', 'success');
        changed(made.endpoint);
        mount(secretSlot, secretBox(ctx, made.secret, 'New signing secret'));
        secretSlot.querySelector('[data-testid="secret"]').focus();
      },
      { danger: false },
    );

    const fromSeq = h('input', { type: 'number', name: 'from-seq', required: true, min: 1, step: 1, value: String(Math.max(1, endpoint.cursorSeq)) });
    const replay = h('button', { type: 'submit' }, 'Replay');
    const replayForm = h(
      'form',
      { class: 'inline-form', 'aria-label': 'Replay events' },
      field('Send again from audit seq', fromSeq, 'Events from this seq on are sent again, in order, with their webhook-id as before.'),
      replay,
    );
    replayForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const seq = Number(fromSeq.value);
      if (!Number.isInteger(seq) || seq < 1) {
        ctx.notify('Please give the seq of an audit event (a whole number from 1).', 'error');
        fromSeq.focus();
        return;
      }
      await act(ctx, replay, async () => {
        const data = await gql(
          `mutation Replay($id: UUID!, $seq: Int!) { replayWebhook(endpointId: $id, fromSeq: $seq) { ${ENDPOINT_FIELDS} } }`,
          { id: endpointId, seq },
        );
        ctx.notify(`Events from seq ${seq} on are being sent again.`, 'success');
        changed(data.replayWebhook);
      });
    });

    const remove = twoStep(
      ctx,
      'Delete endpoint…',
      `Delete ${endpoint.url} for good`,
      'Deleting stops its deliveries and removes its delivery log; its audit events stay.',
      async () => {
        await gql('mutation Delete($id: UUID!) { deleteWebhookEndpoint(id: $id) }', { id: endpointId });
        ctx.notify(`Deleted the endpoint ${endpoint.url}.`, 'success');
        ctx.navigate('#/webhooks', { keepMessages: true });
      },
    );

    return [h('div', { class: 'buttons' }, toggle), rotate, replayForm, remove];
  }

  function showDeliveries(page) {
    const more = page.length > PAGE_SIZE;
    const shown = page.slice(0, PAGE_SIZE);
    const older = h('button', { type: 'button', disabled: !more, onclick: () => go(shown[shown.length - 1].id) }, 'Older →');
    const newest = h('button', { type: 'button', disabled: !after, onclick: () => go(null) }, '← Newest');
    mount(
      deliveries,
      shown.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'deliveries' },
              h('caption', { class: 'visually-hidden' }, 'Delivery attempts, newest first'),
              h('thead', {}, h('tr', {}, ['Time', 'Event', 'Attempt', 'Status', 'Response', 'Latency', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                {},
                shown.map((d) =>
                  h(
                    'tr',
                    { class: d.status === 'FAILED' ? 'failed' : null, 'data-delivery-id': d.id },
                    h('td', { 'data-label': 'Time' }, timeEl(d.createdAt)),
                    h('td', { 'data-label': 'Event' }, h('code', {}, d.eventType), h('div', { class: 'hint', title: d.eventId }, `seq ${d.eventSeq}`)),
                    h('td', { 'data-label': 'Attempt' }, String(d.attempt)),
                    h('td', { 'data-label': 'Status' }, h('span', { class: `badge status-${d.status.toLowerCase()}` }, d.status.toLowerCase())),
                    h('td', { 'data-label': 'Response', 'data-testid': 'response-code' }, d.responseCode === null ? '—' : String(d.responseCode)),
                    h('td', { 'data-label': 'Latency' }, `${d.latencyMs} ms`),
                    h('td', { 'data-label': 'Error', class: 'message-cell' }, d.error || '—'),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'empty' }, after ? 'No older attempts.' : 'No delivery attempts yet.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages' }, newest, h('span', { class: 'range' }, after ? 'Older attempts' : 'Newest attempts'), older),
    );
  }

  // Health and attempts change as deliveries go out: read again every
  // 5 s while the tab is shown (these reads are not audited).
  function startPolling() {
    timer = setInterval(() => {
      if (document.visibilityState === 'visible') refresh();
    }, 5000);
  }
  function stopPolling() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  return {
    render(main) {
      heading = h('h1', { tabindex: '-1', class: 'endpoint-url' }, 'Webhook endpoint');
      subtitle = h('p', { class: 'subtitle' });
      health = h('div', { 'data-testid': 'health' }, h('p', {}, 'Loading…'));
      actions = h('div', { class: 'account' });
      secretSlot = h('div', {});
      deliveries = h('div', { 'aria-live': 'polite' });
      mount(
        main,
        h('p', { class: 'crumbs' }, h('a', { href: '#/webhooks' }, '← Webhooks')),
        heading,
        subtitle,
        secretSlot,
        h('section', { class: 'card', 'aria-labelledby': 'health-title' }, h('h2', { id: 'health-title' }, 'Health'), health, actions),
        h(
          'section',
          { 'aria-labelledby': 'deliveries-title' },
          h('div', { class: 'toolbar' }, h('h2', { id: 'deliveries-title' }, 'Deliveries'), h('button', { type: 'button', onclick: refresh }, 'Refresh')),
          deliveries,
        ),
      );
      refresh();
      startPolling();
    },
    refresh,
    destroy() {
      destroyed = true;
      stopPolling();
    },
  };
}
