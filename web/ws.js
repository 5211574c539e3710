// One WebSocket to the UI API's event stream (WS_PATH) on this host. Reconnects with exponential
// backoff + jitter (capped), pings every 25 s, drops a connection that stays
// silent after a ping, and dispatches JSON events by `type` to subscribers.

import { sessionEnded, sessionToken, WS_PATH } from './api.js';

// A browser's WebSocket sends no header of the page's, so the page token travels as a
// subprotocol the server does not echo (docs/UI_API.md, "Rules").
const PROTOCOL = 'flame';
const SESSION_ENDED = 4401; // the server closed the feed because the session ended

export class LiveSocket {
  constructor({
    path = WS_PATH,
    pingIntervalMs = 25000,
    pongTimeoutMs = 10000,
    baseDelayMs = 500,
    maxDelayMs = 10000,
  } = {}) {
    this.path = path;
    this.pingIntervalMs = pingIntervalMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.ws = null;
    this.status = 'idle'; // idle | connecting | open | closed
    this.running = false;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.subscribers = new Map();
    this.statusListeners = new Set();
    this._onOnline = () => this.reconnectNow();
    this._onVisible = () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    };
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}${this.path}`;
  }

  /** subscribe('message', fn) — '*' receives every event. Returns an unsubscribe fn. */
  subscribe(type, fn) {
    if (!this.subscribers.has(type)) this.subscribers.set(type, new Set());
    this.subscribers.get(type).add(fn);
    return () => this.subscribers.get(type)?.delete(fn);
  }

  /** fn(status, info) with status connecting|open|closed; info = {wasOpen, code}. */
  onStatus(fn) {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    window.addEventListener('online', this._onOnline);
    document.addEventListener('visibilitychange', this._onVisible);
    this._connect();
  }

  stop() {
    this.running = false;
    window.removeEventListener('online', this._onOnline);
    document.removeEventListener('visibilitychange', this._onVisible);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this._stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
    this._setStatus('idle', { wasOpen: false });
  }

  /** Skip the remaining backoff wait (e.g. the network came back). */
  reconnectNow() {
    if (!this.running || this.ws || !this.reconnectTimer) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this._connect();
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  _setStatus(status, info = {}) {
    this.status = status;
    for (const fn of this.statusListeners) {
      try {
        fn(status, info);
      } catch (e) {
        console.error(e);
      }
    }
  }

  _connect() {
    this.reconnectTimer = null;
    if (!this.running) return;
    let ws;
    try {
      ws = new WebSocket(this.url(), [PROTOCOL, `flame-token.${sessionToken()}`]);
    } catch (e) {
      console.error(e);
      this._scheduleReconnect({ wasOpen: false, code: 0 });
      return;
    }
    this.ws = ws;
    let opened = false;
    this._setStatus('connecting');
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this._setStatus('open', { wasOpen: true });
      this._startPing();
    };
    ws.onmessage = (ev) => {
      this._gotTraffic();
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this._dispatch(msg);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (ev.code === SESSION_ENDED) {
        this.stop();
        sessionEnded();
        return;
      }
      this._lost(ws, { wasOpen: opened, code: ev.code });
    };
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  _lost(ws, info) {
    this._stopPing();
    this._detach(ws);
    if (this.ws === ws) this.ws = null;
    this._scheduleReconnect(info);
  }

  _scheduleReconnect(info) {
    this._setStatus('closed', info);
    if (!this.running || this.reconnectTimer) return;
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter"
    this.attempt = Math.min(this.attempt + 1, 16);
    this.reconnectTimer = setTimeout(() => this._connect(), delay);
  }

  _dispatch(msg) {
    for (const key of [msg.type, '*']) {
      const subs = this.subscribers.get(key);
      if (!subs) continue;
      for (const fn of [...subs]) {
        try {
          fn(msg);
        } catch (e) {
          console.error(e);
        }
      }
    }
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: 'ping' })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        // No answer at all: the connection is dead even if the socket says otherwise.
        const ws = this.ws;
        if (!ws) return;
        try {
          ws.close(4000, 'ping timeout');
        } catch {
          /* ignore */
        }
        this._lost(ws, { wasOpen: true, code: 4000 });
      }, this.pongTimeoutMs);
    }, this.pingIntervalMs);
  }

  _gotTraffic() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }
}

/** Tell the daemon the user is active (a key, a click, a scroll, the page shown again), at most
 * every 15 s, while `authed()` (docs/UI_API.md, `activity`). */
export function reportActivity(socket, authed) {
  let last = 0;
  const report = () => {
    const now = Date.now();
    if (!authed() || now - last < 15000) return;
    if (socket.send({ type: 'activity' })) last = now;
  };
  for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart']) {
    window.addEventListener(type, report, { passive: true, capture: true });
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') report();
  });
}
