// A small client for the graphql-transport-ws protocol
// (github.com/enisdenjo/graphql-ws, PROTOCOL.md): connection_init with the
// bearer token in the payload (browsers cannot set Authorization on a
// WebSocket), connection_ack, subscribe / next / error / complete, and
// ping / pong. It reconnects with back-off, except when the server closes
// with 4401 or 4403 (bad credentials, or the session was revoked or
// expired): then `onAuthClosed` tells the page, which checks the session.

const PROTOCOL = 'graphql-transport-ws';
const ACK_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_MS = 60_000;

export class LiveClient {
  /**
   * @param {object} options
   * @param {() => string|null} options.token  the bearer token to use
   * @param {(status: 'connecting'|'live'|'offline') => void} [options.onStatus]
   * @param {(code: number, reason: string) => void} [options.onAuthClosed]
   */
  constructor({ token, onStatus = () => {}, onAuthClosed = () => {}, url } = {}) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url || `${scheme}//${location.host}/graphql/ws`;
    this.token = token;
    this.onStatus = onStatus;
    this.onAuthClosed = onAuthClosed;
    this.socket = null;
    this.acked = false;
    this.stopped = true;
    this.nextId = 1;
    this.subscriptions = new Map();
    this.retries = 0;
    this.timers = new Set();
    this.status = 'offline';
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      try {
        socket.close(1000, 'page left');
      } catch {
        // already closing
      }
    }
    this.setStatus('offline');
  }

  /**
   * Subscribes; `handlers.next(data)` per event, `handlers.error(errors)`
   * when the server refuses the operation. Returns an unsubscribe function.
   */
  subscribe(query, variables, handlers) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, handlers });
    if (this.acked) this.sendSubscribe(id);
    return () => {
      if (!this.subscriptions.delete(id)) return;
      if (this.acked) this.send({ id, type: 'complete' });
    };
  }

  // ------------------------------------------------------------ internals

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.onStatus(status);
  }

  later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  connect() {
    const token = this.token();
    if (this.stopped || !token) return;
    this.acked = false;
    this.setStatus('connecting');
    let socket;
    try {
      socket = new WebSocket(this.url, PROTOCOL);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    const ackTimer = this.later(() => {
      if (this.socket === socket && !this.acked) socket.close(4408, 'Connection initialisation timeout');
    }, ACK_TIMEOUT_MS);

    socket.addEventListener('open', () => {
      this.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    });
    socket.addEventListener('message', (event) => {
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        socket.close(4400, 'Invalid message');
        return;
      }
      this.receive(message, ackTimer);
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(ackTimer);
      this.timers.delete(ackTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.acked = false;
      this.setStatus('offline');
      if (this.stopped) return;
      if (event.code === 4401 || event.code === 4403) {
        // Not retried: the page checks whether the session still works.
        this.stopped = true;
        this.onAuthClosed(event.code, event.reason);
        return;
      }
      this.retry();
    });
    // 'error' is always followed by 'close'.
  }

  receive(message, ackTimer) {
    switch (message.type) {
      case 'connection_ack':
        clearTimeout(ackTimer);
        this.timers.delete(ackTimer);
        this.acked = true;
        this.retries = 0;
        this.setStatus('live');
        for (const id of this.subscriptions.keys()) this.sendSubscribe(id);
        break;
      case 'ping':
        this.send({ type: 'pong', payload: message.payload });
        break;
      case 'pong':
        break;
      case 'next': {
        const sub = this.subscriptions.get(message.id);
        if (!sub) break;
        if (message.payload?.errors?.length) sub.handlers.error?.(message.payload.errors);
        if (message.payload?.data) sub.handlers.next?.(message.payload.data);
        break;
      }
      case 'error': {
        const sub = this.subscriptions.get(message.id);
        this.subscriptions.delete(message.id);
        sub?.handlers.error?.(Array.isArray(message.payload) ? message.payload : [message.payload]);
        break;
      }
      case 'complete': {
        const sub = this.subscriptions.get(message.id);
        this.subscriptions.delete(message.id);
        sub?.handlers.complete?.();
        break;
      }
      default:
        this.socket?.close(4400, `Unexpected message type ${message.type}`);
    }
  }

  sendSubscribe(id) {
    const sub = this.subscriptions.get(id);
    if (!sub) return;
    this.send({ id, type: 'subscribe', payload: { query: sub.query, variables: sub.variables } });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  retry() {
    if (this.stopped) return;
    // 1 s, 2 s, 4 s … up to a minute, with jitter so tabs do not stampede.
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.retries);
    this.retries += 1;
    this.later(() => this.connect(), base / 2 + Math.random() * (base / 2));
  }
}
