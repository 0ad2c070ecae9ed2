// Small DOM helpers. Elements are built with createElement and text is set
// with textContent, never parsed as HTML: the page runs with Trusted Types
// enforced ('none'), so any HTML-parsing sink would throw anyway.

/**
 * h('button', { class: 'x', onclick: fn, 'aria-label': '…' }, 'text', child…)
 * Attributes whose value is null, undefined or false are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short',
});
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "12 Mar 2025, 14:03" in the reader's locale and time zone. */
export function formatDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

/** "5 minutes ago", "in 3 days". */
export function fromNow(iso) {
  if (!iso) return '';
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const steps = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Infinity, 'year'],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return '';
}

/** A <time> element showing the date, with the relative time beside it. */
export function timeEl(iso, { relativeToo = true } = {}) {
  if (!iso) return h('span', {}, '—');
  return h(
    'time',
    { datetime: iso, title: iso },
    formatDate(iso),
    relativeToo ? h('span', { class: 'muted' }, ` (${fromNow(iso)})`) : null,
  );
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))),
  );
}

let idCounter = 0;
/** A unique element id. */
export function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: label + control (+ optional hint). */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  let hintEl = null;
  if (hint) {
    const hintId = `${id}-hint`;
    hintEl = h('p', { class: 'hint', id: hintId }, hint);
    control.setAttribute('aria-describedby', hintId);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/**
 * Previous / next buttons and "1–20 of 57 users" for a page of `count`
 * items at `pagination` (the API's `Pagination`); `onPage(offset)` goes
 * to another page.
 */
export function pager({ pagination, count, onPage, noun }) {
  const { total, limit, offset, hasMore } = pagination;
  const first = total === 0 ? 0 : offset + 1;
  const last = offset + count;
  const prev = h('button', { type: 'button', disabled: offset === 0, onclick: () => onPage(Math.max(0, offset - limit)) }, '← Previous');
  const next = h('button', { type: 'button', disabled: !hasMore, onclick: () => onPage(offset + limit) }, 'Next →');
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    prev,
    h('span', { class: 'range', 'data-testid': 'range' }, total === 0 ? `No ${noun}` : `${first}–${last} of ${total} ${noun}`),
    next,
  );
}
