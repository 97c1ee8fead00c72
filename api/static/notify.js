// notify.js: the browser client of notify (SPEC section 7). One dependency-free ES module.
//
//   import { Notify } from "https://gateway/notify.js";
//   const n = new Notify({ url: "https://gateway", getToken: async () => token });
//   const off = n.subscribe("orders.*", (event) => { ... });
//   const { id } = await n.publish("orders.eu", "order.created", { order: 17 });
//
// All tabs of one origin share one server connection per gateway and transport: a Web
// Lock elects the leading tab, which holds the connection and fans events out over a
// BroadcastChannel; the other tabs tell it which patterns they follow. Every tab keeps
// the stream position it last heard of, so a tab that takes the lead resumes exactly
// where the previous leader stopped; event ids already seen are dropped, so a
// handover repeats nothing either. Nothing here touches the DOM.

// ---- pure helpers --------------------------------------------------------------

/** Whether `pattern` (segments, `*` one segment, trailing `>` one or more) matches `channel`. */
export function matches(pattern, channel) {
  const p = pattern.split(".");
  const c = channel.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return i === p.length - 1 && c.length > i;
    if (i >= c.length) return false;
    if (p[i] !== "*" && p[i] !== c[i]) return false;
  }
  return p.length === c.length;
}

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter
 * in [half, full] so that tabs and browsers cut together do not come back together. */
export function backoff(attempt, base = 500, cap = 15000, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** The `exp` claim of a JWT in milliseconds, or null. The token is not verified here:
 * the time only decides when to ask `getToken` for a fresh one. */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** When to renew a token that runs out at `expiry` (ms): a fifth of its remaining life
 * early, at least one second and at most a minute before. */
export function renewDelay(expiry, now = Date.now()) {
  const left = expiry - now;
  return Math.max(0, left - Math.min(60000, Math.max(1000, left / 5)));
}

/** Incremental text/event-stream parser. `push` text chunks; `onFrame` receives
 * `{id, event, data}` per blank-line-terminated frame (`id`/`data` undefined when absent). */
export class SseParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buffer = "";
    this.reset();
  }
  reset() {
    this.frame = { id: undefined, event: undefined, data: undefined };
  }
  push(chunk) {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      let line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      this.line(line);
    }
  }
  line(line) {
    if (line === "") {
      const f = this.frame;
      this.reset();
      if (f.id !== undefined || f.data !== undefined) this.onFrame(f);
      return;
    }
    if (line.startsWith(":")) return; // comment: keepalive
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "id" && !value.includes("\0")) this.frame.id = value;
    else if (name === "event") this.frame.event = value;
    else if (name === "data") {
      this.frame.data = this.frame.data === undefined ? value : this.frame.data + "\n" + value;
    }
  }
}

/** Event ids recently seen, bounded: drops repeats after a resume or a change of leader. */
class Seen {
  constructor(size = 4096) {
    this.size = size;
    this.ids = new Set();
  }
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.size) this.ids.delete(this.ids.values().next().value);
    return true;
  }
}

function randomId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An error answered by the gateway, with its problem+json body. */
export class NotifyError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = "NotifyError";
    this.status = status;
    this.problem = problem || null;
  }
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = new NotifyError(response.status, body);
  const retry = Number(response.headers.get("Retry-After"));
  if (retry > 0) error.retryAfter = retry * 1000;
  return error;
}

const FATAL = new Set([400, 401, 403, 404, 413, 422]);
const IDLE_MS = 45000; // three missed keepalives: the connection is dead without saying so
const PING_MS = 20000;

// ---- connections (one of them, in the leading tab) --------------------------------

/** One Server-Sent Events request, read with fetch so that the token travels in the
 * Authorization header (never in a URL) and the resume cursor in Last-Event-ID. */
class SseConnection {
  constructor(url, token, patterns, cursor, sink, idleMs) {
    this.sink = sink;
    this.idleMs = idleMs;
    this.abort = new AbortController();
    this.run(url, token, patterns, cursor);
  }
  async run(url, token, patterns, cursor) {
    const query = patterns.map((p) => "channel=" + encodeURIComponent(p)).join("&");
    const headers = { Accept: "text/event-stream", Authorization: "Bearer " + token };
    if (cursor) headers["Last-Event-ID"] = cursor;
    let idle = null;
    const alive = () => {
      clearTimeout(idle);
      idle = setTimeout(() => this.abort.abort(), this.idleMs);
    };
    try {
      const response = await fetch(`${url}/v1/stream?${query}`, {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: this.abort.signal,
      });
      if (!response.ok) throw await failure(response);
      this.sink.opened();
      alive();
      const parser = new SseParser((f) => this.frame(f));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        alive();
        parser.push(value);
      }
      this.sink.ended(null);
    } catch (error) {
      this.sink.ended(this.abort.signal.aborted && !this.closed ? null : error);
    } finally {
      clearTimeout(idle);
    }
  }
  frame(f) {
    if (this.closed) return;
    if (f.event === "gap") {
      this.sink.gap(JSON.parse(f.data || "{}"));
      return;
    }
    if (f.event === undefined && f.data !== undefined) {
      const event = JSON.parse(f.data);
      this.sink.event(event, f.id !== undefined ? f.id : event.id);
    } else if (f.id !== undefined) {
      this.sink.position(f.id);
    }
  }
  update() {
    return false; // a new set of patterns needs a new request
  }
  close() {
    this.closed = true;
    this.abort.abort();
  }
}

/** One WebSocket; the set of patterns is changed in place with subscribe/unsubscribe. */
class WsConnection {
  constructor(url, token, patterns, cursor, sink) {
    this.sink = sink;
    this.patterns = new Set(patterns);
    this.ref = 0;
    this.first = null;
    const ws = new WebSocket(url.replace(/^http/, "ws") + "/v1/ws?token=" + encodeURIComponent(token));
    this.ws = ws;
    ws.onopen = () => {
      this.first = this.send({ op: "subscribe", channels: [...this.patterns], ...(cursor ? { last_event_id: cursor } : {}) });
      this.pinger = setInterval(() => this.ping(), PING_MS);
    };
    ws.onmessage = (message) => this.message(JSON.parse(message.data));
    ws.onclose = (close) => {
      clearInterval(this.pinger);
      clearTimeout(this.pongTimer);
      if (this.closed) return;
      const fatal = close.code === 1008 && close.reason !== "token_expired" && close.reason !== "too_many_errors";
      this.sink.ended(fatal ? new NotifyError(403, { detail: close.reason || "refused" }) : null);
    };
  }
  send(frame) {
    const ref = String(++this.ref);
    this.ws.send(JSON.stringify({ ...frame, ref }));
    return ref;
  }
  ping() {
    this.send({ op: "ping" });
    this.pongTimer = setTimeout(() => this.ws.close(), 10000);
  }
  message(frame) {
    if (frame.op === "event") {
      this.sink.event(frame.event, frame.cursor || frame.event.id);
    } else if (frame.op === "pong") {
      clearTimeout(this.pongTimer);
    } else if (frame.op === "ok" && frame.ref === this.first) {
      this.sink.opened();
      if (frame.position) this.sink.position(frame.position);
    } else if (frame.op === "gap") {
      this.sink.gap({ reason: frame.reason });
    } else if (frame.op === "error" && frame.ref === this.first) {
      this.closed = true;
      this.ws.close();
      this.sink.ended(new NotifyError(frame.status, frame));
    }
  }
  update(patterns) {
    if (this.ws.readyState !== WebSocket.OPEN || this.first === null) return false;
    const next = new Set(patterns);
    const added = [...next].filter((p) => !this.patterns.has(p));
    const removed = [...this.patterns].filter((p) => !next.has(p));
    if (added.length) this.send({ op: "subscribe", channels: added });
    if (removed.length) this.send({ op: "unsubscribe", channels: removed });
    this.patterns = next;
    return true;
  }
  close() {
    this.closed = true;
    clearInterval(this.pinger);
    clearTimeout(this.pongTimer);
    this.ws.close();
  }
}

// ---- the client ------------------------------------------------------------------

/** A notify client. Events: "state" (detail: the new state), "gap" (detail: the server's
 * reason), "error" (detail: a NotifyError that stopped the connection).
 *
 * Option `idleMs` (default 45000, three missed keepalives at the gateway's default
 * `NOTIFY_KEEPALIVE_SECONDS` of 15): an SSE stream that sends nothing for this long is
 * taken as dead without saying so (a proxy or NAT that dropped it) and is replaced by a
 * new request resuming from the last id. Keep it above the gateway's keepalive interval,
 * or a quiet channel reconnects for nothing. The leading tab's value applies, as it holds
 * the connection; a WebSocket is checked by ping instead. */
export class Notify extends EventTarget {
  constructor({ url, token, getToken, transport = "sse", share = true, origin, idleMs = IDLE_MS } = {}) {
    super();
    if (!url) throw new TypeError("Notify: url is required");
    if (!token && !getToken) throw new TypeError("Notify: give token or getToken");
    if (transport !== "sse" && transport !== "ws") throw new TypeError('transport is "sse" or "ws"');
    if (!(Number.isFinite(idleMs) && idleMs > 0 && idleMs <= 2 ** 31 - 1)) {
      throw new TypeError("idleMs is a number of milliseconds above 0");
    }
    this.idleMs = idleMs;
    this.url = String(url).replace(/\/+$/, "");
    this.transport = transport;
    this.origin = origin || "tab-" + randomId();
    this.tab = this.origin;
    this._token = token || null;
    this._getToken = getToken || null;
    this._state = "connecting";
    this._subs = new Set(); // {pattern, callback}
    this._seen = new Seen();
    this._pos = null; // the last stream position this tab heard of
    this._leading = false;
    this._tabs = new Map(); // leader only: tab -> its patterns
    this._attempt = 0;
    this._conn = null;
    this._closed = false;
    const name = `notify:${transport}:${this.url}`;
    const canShare = share && globalThis.BroadcastChannel && globalThis.navigator && navigator.locks;
    if (canShare) {
      this._bc = new BroadcastChannel(name);
      this._bc.onmessage = (m) => this._heard(m.data);
      this._lockAbort = new AbortController();
      navigator.locks
        .request(name, { signal: this._lockAbort.signal }, () => this._lead())
        .catch(() => {}); // aborted by close() while waiting
      this._post({ t: "hello", tab: this.tab });
      this._goodbye = () => this.close();
      globalThis.addEventListener?.("pagehide", this._goodbye);
    } else {
      this._bc = null;
      this._lead();
    }
  }

  /** "connecting" | "open" | "closed" */
  get state() {
    return this._state;
  }

  /** Whether this tab holds the server connection for every tab of its origin. */
  get leading() {
    return this._leading;
  }

  /** Calls `callback(event)` for each event on a channel matching `pattern`; returns
   * the function that stops it. */
  subscribe(pattern, callback) {
    if (typeof pattern !== "string" || !pattern) throw new TypeError("pattern must be a string");
    if (typeof callback !== "function") throw new TypeError("callback must be a function");
    const sub = { pattern, callback };
    this._subs.add(sub);
    this._announce();
    return () => {
      if (this._subs.delete(sub)) this._announce();
    };
  }

  /** Publishes one event; resolves to the gateway's answer `{id, channel}`. */
  async publish(channel, type, data, { idempotencyKey } = {}) {
    const token = await this._currentToken();
    const headers = { "Content-Type": "application/json", Authorization: "Bearer " + token };
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    const response = await fetch(this.url + "/v1/events", {
      method: "POST",
      headers,
      credentials: "omit",
      body: JSON.stringify({ channel, type, data: data === undefined ? null : data, origin: this.origin }),
    });
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._retry);
    clearTimeout(this._renew);
    clearTimeout(this._debounce);
    globalThis.removeEventListener?.("pagehide", this._goodbye);
    if (this._conn) this._conn.close();
    this._conn = null;
    if (this._bc) {
      this._post({ t: "bye", tab: this.tab });
      this._bc.close();
      this._lockAbort.abort();
    }
    if (this._release) this._release();
    this._setState("closed", false);
  }

  // ---- between tabs ----

  _post(message) {
    if (this._bc && !this._closed) this._bc.postMessage(message);
  }

  _patterns() {
    return [...new Set([...this._subs].map((s) => s.pattern))].sort();
  }

  _announce() {
    if (this._leading) this._changed(this.tab, this._patterns());
    else this._post({ t: "subs", tab: this.tab, patterns: this._patterns() });
  }

  _heard(m) {
    if (this._closed) return;
    switch (m.t) {
      case "event":
        this._pos = m.pos;
        this._dispatch(m.event);
        break;
      case "pos":
        this._pos = m.pos;
        break;
      case "state":
        if (!this._leading) this._setState(m.state, false);
        if (m.pos && !this._pos) this._pos = m.pos;
        break;
      case "gap":
        this.dispatchEvent(new CustomEvent("gap", { detail: m.detail }));
        break;
      case "leader":
        this._post({ t: "subs", tab: this.tab, patterns: this._patterns() });
        break;
      case "hello":
        if (this._leading) this._post({ t: "state", state: this._state, pos: this._pos });
        break;
      case "subs":
        if (this._leading) this._changed(m.tab, m.patterns);
        break;
      case "bye":
        if (this._leading) this._changed(m.tab, []);
        break;
    }
  }

  _dispatch(event) {
    if (!this._seen.add(event.id)) return;
    if (event.origin === this.origin) return; // our own echo
    for (const sub of [...this._subs]) {
      if (!matches(sub.pattern, event.channel)) continue;
      try {
        sub.callback(event);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  _setState(state, broadcast = true) {
    if (this._state === state || (this._closed && state !== "closed")) return;
    this._state = state;
    if (broadcast && this._leading) this._post({ t: "state", state, pos: this._pos });
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  // ---- the leading tab ----

  _lead() {
    if (this._closed) return undefined;
    this._leading = true;
    this._tabs.set(this.tab, this._patterns());
    this._post({ t: "leader", tab: this.tab });
    // the other tabs answer with their patterns; connect once most have
    this._debounce = setTimeout(() => this._connect(), this._bc ? 60 : 0);
    return new Promise((resolve) => {
      this._release = resolve;
    });
  }

  _changed(tab, patterns) {
    if (patterns.length) this._tabs.set(tab, patterns);
    else this._tabs.delete(tab);
    const union = this._union();
    if (this._conn && union.join("\n") === this._connPatterns.join("\n")) return;
    clearTimeout(this._debounce);
    this._debounce = setTimeout(() => {
      const next = this._union();
      if (this._conn && next.length && this._conn.update(next)) this._connPatterns = next;
      else this._connect();
    }, 30);
  }

  _union() {
    const all = new Set();
    for (const patterns of this._tabs.values()) for (const p of patterns) all.add(p);
    return [...all].sort();
  }

  async _currentToken(force = false) {
    if (this._getToken) {
      const expiry = this._token ? tokenExpiry(this._token) : null;
      if (force || !this._token || (expiry !== null && renewDelay(expiry) <= 0)) {
        this._token = await this._getToken();
      }
    }
    return this._token;
  }

  async _connect() {
    clearTimeout(this._retry);
    clearTimeout(this._renew);
    if (this._conn) this._conn.close();
    this._conn = null;
    const generation = (this._generation = (this._generation || 0) + 1);
    if (this._closed || !this._leading) return;
    const patterns = this._union();
    if (!patterns.length) return; // nothing to follow: no connection
    this._setState("connecting");
    let token;
    try {
      token = await this._currentToken();
    } catch (error) {
      this._ended(null, error);
      return;
    }
    if (this._closed || generation !== this._generation) return; // a newer call won
    const Connection = this.transport === "ws" ? WsConnection : SseConnection;
    const conn = new Connection(this.url, token, patterns, this._pos, this._sinkFor(() => conn), this.idleMs);
    this._conn = conn;
    this._connPatterns = patterns;
    const expiry = this._getToken ? tokenExpiry(token) : null;
    if (expiry !== null) {
      // a fresh token and a resumed connection before the server cuts this one at exp
      this._renew = setTimeout(async () => {
        try {
          await this._currentToken(true);
        } catch {
          return; // keep the current one; the server's cut will retry
        }
        if (this._conn === conn) this._connect();
      }, Math.min(renewDelay(expiry), 2 ** 31 - 1));
    }
  }

  _sinkFor(current) {
    const live = () => !this._closed && this._conn === current();
    return {
      opened: () => {
        if (!live()) return;
        this._attempt = 0;
        this._setState("open");
      },
      event: (event, pos) => {
        if (!live()) return;
        this._pos = pos;
        this._post({ t: "event", event, pos });
        this._dispatch(event);
      },
      position: (pos) => {
        if (!live()) return;
        this._pos = pos;
        this._post({ t: "pos", pos });
      },
      gap: (detail) => {
        if (!live()) return;
        this._post({ t: "gap", detail });
        this.dispatchEvent(new CustomEvent("gap", { detail }));
      },
      ended: (error) => {
        if (live()) this._ended(current(), error);
      },
    };
  }

  _ended(conn, error) {
    if (conn && this._conn !== conn) return;
    this._conn = null;
    clearTimeout(this._renew);
    if (error && FATAL.has(error.status)) {
      if (error.status === 401 && this._getToken && this._attempt < 3) {
        this._token = null; // ask for a fresh one and try again
      } else {
        this.dispatchEvent(new CustomEvent("error", { detail: error }));
        this._setState("closed");
        return;
      }
    }
    this._setState("connecting");
    const delay = Math.max(backoff(this._attempt), (error && error.retryAfter) || 0);
    this._attempt += 1;
    this._retry = setTimeout(() => this._connect(), delay);
  }
}

export default Notify;
