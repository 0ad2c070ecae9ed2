// The GraphQL client: POST /graphql with a JSON body, the bearer token from
// the token store, and errors turned into ApiError with the server's
// `extensions.code`. Request-level errors come with HTTP 4xx (400, 401) and
// a GraphQL body, so the body is read whatever the status.

const ENDPOINT = '/graphql';

/** An error with the API's code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
 * BAD_USER_INPUT, RATE_LIMITED, INTERNAL, or NETWORK (no usable answer). */
export class ApiError extends Error {
  constructor(code, message, extensions = {}, status = 0) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.extensions = extensions;
    this.status = status;
  }
}

// ---------------------------------------------------------------- tokens
// Kept in sessionStorage (this tab only, gone when it closes) and never in
// localStorage or a cookie. When sessionStorage is unavailable (some
// privacy modes) they live in memory only.

const TOKEN = 'session-manager.token';
const ADMIN_TOKEN = 'session-manager.admin-token';
const memory = new Map();

function store() {
  try {
    const s = window.sessionStorage;
    s.setItem('session-manager.probe', '1');
    s.removeItem('session-manager.probe');
    return s;
  } catch {
    return null;
  }
}
const storage = store();

function read(key) {
  return storage ? storage.getItem(key) : memory.get(key) ?? null;
}
function write(key, value) {
  if (value === null || value === undefined) {
    if (storage) storage.removeItem(key);
    memory.delete(key);
  } else if (storage) {
    storage.setItem(key, value);
  } else {
    memory.set(key, value);
  }
}

export const tokens = {
  /** The token requests are sent with. */
  get current() {
    return read(TOKEN);
  },
  set current(value) {
    write(TOKEN, value);
  },
  /** While impersonating: the admin's own token, to return to. */
  get admin() {
    return read(ADMIN_TOKEN);
  },
  set admin(value) {
    write(ADMIN_TOKEN, value);
  },
  clear() {
    write(TOKEN, null);
    write(ADMIN_TOKEN, null);
  },
};

// ---------------------------------------------------------------- requests

let sessionEndedHandler = () => {};

/** Called once per token when the server says the token no longer works. */
export function onSessionEnded(handler) {
  sessionEndedHandler = handler;
}

/**
 * Runs a GraphQL operation and returns its `data`; throws ApiError.
 * `token` defaults to the current one; pass `null` for anonymous calls.
 */
export async function gql(query, variables = {}, { token = tokens.current } = {}) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json;q=0.9',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError('NETWORK', 'cannot reach the server');
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError('NETWORK', `the server answered HTTP ${response.status} without a GraphQL body`, {}, response.status);
  }
  const first = Array.isArray(body?.errors) ? body.errors[0] : null;
  if (first) {
    const extensions = first.extensions || {};
    const code = extensions.code || (response.status >= 500 ? 'INTERNAL' : 'BAD_USER_INPUT');
    const error = new ApiError(code, first.message || code, extensions, response.status);
    if (code === 'UNAUTHENTICATED' && token && token === tokens.current) {
      error.sessionEnded = true;
      sessionEndedHandler(error, token);
    }
    throw error;
  }
  if (!response.ok || !body || typeof body.data !== 'object' || body.data === null) {
    throw new ApiError('INTERNAL', `unexpected answer (HTTP ${response.status})`, {}, response.status);
  }
  return body.data;
}

// ---------------------------------------------------------------- messages

function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** A message for people, for any error the client may meet. */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return `Something went wrong in the page: ${sentence(error?.message || String(error))}`;
  }
  const ext = error.extensions || {};
  switch (error.code) {
    case 'UNAUTHENTICATED':
      return 'Your session has ended: it was signed out, revoked or has expired. Please sign in again.';
    case 'FORBIDDEN':
      return `You are not allowed to do that. ${sentence(error.message)}`;
    case 'NOT_FOUND':
      return `Not found. ${sentence(error.message)} It may have been removed in the meantime.`;
    case 'BAD_USER_INPUT':
      return `Please check your input. ${sentence(error.message)}`;
    case 'RATE_LIMITED': {
      const seconds = Number(ext.retryAfter);
      return Number.isFinite(seconds)
        ? `Too many attempts. Please wait ${formatWait(seconds)} before trying again.`
        : 'Too many attempts. Please wait a while before trying again.';
    }
    case 'INTERNAL':
      return ext.correlationId
        ? `Something went wrong on the server. If it keeps happening, give your administrator this reference: ${ext.correlationId}.`
        : 'Something went wrong on the server. Please try again.';
    case 'NETWORK':
      return `Cannot reach the server (${error.message}). Check your connection and try again.`;
    default:
      return sentence(error.message) || 'Something went wrong.';
  }
}

function formatWait(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} second${Math.round(seconds) === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}
