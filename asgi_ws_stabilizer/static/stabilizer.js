// Browser client for asgi_ws_stabilizer: reconnects with full-jitter backoff, resumes the
// session (so the server replays what was missed), answers the heartbeat and buffers sends
// while offline. ES2020 module, no dependencies, no build step.

const OPEN = 1; // WebSocket.OPEN

/**
 * Full-jitter exponential backoff: a random delay in [0, min(maxDelay, minDelay * 2^attempt)).
 * @param {number} attempt 0 for the first retry.
 * @param {{minDelay?: number, maxDelay?: number, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, { minDelay = 500, maxDelay = 20000, random = Math.random } = {}) {
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.max(0, attempt));
  return Math.floor(random() * cap);
}

/**
 * What the client does after the socket closed with `code`.
 * @param {number} code
 * @returns {"stop" | "reconnect" | "reconnect-slow" | "reconnect-hint"}
 */
export function closeAction(code) {
  switch (code) {
    case 1000: // the app ended the conversation
    case 4409: // replaced: the same session resumed on a newer socket
      return "stop";
    case 4429: // rate limited
      return "reconnect-slow";
    case 1001: // drain ("going away")
    case 1012: // drain before restart
      return "reconnect-hint";
    default: // 1006, 1009, 1011, 1013, 4408 and anything unknown
      return "reconnect";
  }
}

/**
 * Parse a control frame: a JSON text object with the key "$stabilizer"; null for anything else.
 * @param {unknown} data
 * @returns {Record<string, unknown> | null}
 */
function parseControlFrame(data) {
  if (typeof data !== "string" || !data.trimStart().startsWith("{") || !data.includes('"$stabilizer"')) {
    return null;
  }
  try {
    const frame = JSON.parse(data);
    return frame && typeof frame === "object" && !Array.isArray(frame) &&
      Object.prototype.hasOwnProperty.call(frame, "$stabilizer") ? frame : null;
  } catch {
    return null;
  }
}

/**
 * True if `data` is a `$stabilizer` control frame (never counted as data, never surfaced).
 * @param {unknown} data
 * @returns {boolean}
 */
export function isControlFrame(data) {
  return parseControlFrame(data) !== null;
}

const OWN_PARAM = /^_stabilizer(?:_token|_seq)?(?:=|$)/;

/**
 * Add the opt-in parameter, and the resume parameters when a token is known, to `url`.
 * The rest of the query string is kept verbatim; stale `_stabilizer*` parameters are replaced.
 * @param {string | URL} url
 * @param {{token?: string | null, seq?: number}} [resume]
 * @returns {string}
 */
export function withResumeParams(url, { token = null, seq = 0 } = {}) {
  let rest = String(url);
  let hash = "";
  const hashAt = rest.indexOf("#");
  if (hashAt >= 0) [rest, hash] = [rest.slice(0, hashAt), rest.slice(hashAt)];
  const queryAt = rest.indexOf("?");
  const base = queryAt >= 0 ? rest.slice(0, queryAt) : rest;
  const params = queryAt >= 0 ? rest.slice(queryAt + 1).split("&").filter((p) => p && !OWN_PARAM.test(p)) : [];
  params.push("_stabilizer=1");
  if (token != null) {
    params.push(`_stabilizer_token=${encodeURIComponent(token)}`, `_stabilizer_seq=${Math.max(0, Math.floor(Number(seq) || 0))}`);
  }
  return `${base}?${params.join("&")}${hash}`;
}

/** UTF-8 size of a string, or the size of binary data, in bytes. */
function byteSize(data) {
  if (typeof data === "string") {
    let n = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c < 0xdc00 && (data.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
  return byteSize(String(data));
}

/** A FIFO of outgoing messages bounded by count and bytes; when full the oldest are dropped. */
export class OfflineBuffer {
  /** @param {{maxMessages?: number, maxBytes?: number}} [limits] */
  constructor({ maxMessages = 100, maxBytes = 1024 * 1024 } = {}) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
    /** @type {{data: any, size: number}[]} */
    this._items = [];
    this._bytes = 0;
  }

  get length() { return this._items.length; }
  get bytes() { return this._bytes; }

  /**
   * Queue `data`, dropping the oldest messages to make room. A message that can never fit
   * (over maxBytes, or maxMessages is 0) is not queued and is reported as dropped itself.
   * @returns {{queued: boolean, dropped: any[]}} dropped: oldest first
   */
  push(data) {
    const size = byteSize(data);
    if (this.maxMessages < 1 || size > this.maxBytes) return { queued: false, dropped: [data] };
    const dropped = [];
    while (this._items.length >= this.maxMessages || this._bytes + size > this.maxBytes) {
      dropped.push(this.shift());
    }
    this._items.push({ data, size });
    this._bytes += size;
    return { queued: true, dropped };
  }

  /** Remove and return the oldest message (undefined when empty). */
  shift() {
    const item = this._items.shift();
    if (!item) return undefined;
    this._bytes -= item.size;
    return item.data;
  }

  clear() { this._items = []; this._bytes = 0; }
}

/**
 * A WebSocket that stays connected. Opted in (`resume`, the default) it waits for the server's
 * session frame before it counts as open, resumes with the latest token and the number of data
 * messages received, and follows the server's close codes and drain hints.
 * Events (CustomEvent, payload in `detail`): open, message, close, reconnecting, resumed, drop.
 */
export class StabilizedSocket extends EventTarget {
  /**
   * @param {string | URL} url
   * @param {import("./stabilizer").StabilizedSocketOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    // Members starting with "_" are internal (plain properties keep this ES2020).
    /** @type {"connecting" | "open" | "reconnecting" | "closed"} */
    this._state = "connecting";
    this._ws = null; this._sessionReady = false; this._token = null; this._sessionId = null;
    this._received = 0; this._dropped = 0; this._attempt = 0; this._drainHint = null;
    this._timer = null; this._timerIsHint = false; this._connectTimer = null; this._stableTimer = null;
    this._offline = false; this._env = [];
    const g = globalThis;
    this._url = String(url);
    this._opts = {
      resume: true, minDelay: 500, maxDelay: 20000, rateLimitDelay: 5000, stableAfter: 5000,
      connectTimeout: 10000, maxBufferedMessages: 100, maxBufferedBytes: 1024 * 1024,
      pingMessage: "ping", pongMessage: "pong", protocols: undefined,
      WebSocket: g.WebSocket, random: Math.random,
      setTimeout: g.setTimeout.bind(g), clearTimeout: g.clearTimeout.bind(g),
      window: g.window, document: g.document,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    };
    if (typeof this._opts.WebSocket !== "function") throw new TypeError("no WebSocket implementation");
    this._buffer = new OfflineBuffer({
      maxMessages: this._opts.maxBufferedMessages, maxBytes: this._opts.maxBufferedBytes,
    });
    this._listenToEnvironment();
    this._connect();
  }

  /** @returns {"connecting" | "open" | "reconnecting" | "closed"} */
  get state() { return this._state; }
  get sessionId() { return this._sessionId; }
  get token() { return this._token; }
  /** Data messages received in the current session (the `_stabilizer_seq` sent on resume). */
  get received() { return this._received; }
  /** Outgoing messages dropped from (or refused by) the offline buffer so far. */
  get dropped() { return this._dropped; }
  /** Outgoing messages waiting in the offline buffer. */
  get buffered() { return this._buffer.length; }

  /**
   * Send now if open, else queue in the offline buffer (flushed in order after reconnecting).
   * @param {string | ArrayBuffer | ArrayBufferView | Blob} data
   * @returns {boolean} true if sent or queued
   */
  send(data) {
    if (this._state === "closed") return false;
    if (this._state === "open" && this._ws && this._ws.readyState === OPEN) {
      this._ws.send(data);
      return true;
    }
    const { queued, dropped } = this._buffer.push(data);
    for (const item of dropped) {
      this._dropped++;
      this._emit("drop", { data: item, dropped: this._dropped });
    }
    return queued;
  }

  /** Close for good: no reconnect, the offline buffer is discarded. */
  close(code = 1000, reason = "") {
    if (this._state === "closed") return;
    this._state = "closed";
    this._clearTimers();
    this._unlistenToEnvironment();
    this._buffer.clear();
    const ws = this._detach();
    if (ws) {
      try { ws.close(code, reason); } catch { ws.close(); }
    }
    this._emit("close", { code, reason, willReconnect: false });
  }

  /**
   * Convenience listener: `fn(detail, event)`. Returns a function that removes it.
   * @returns {() => void}
   */
  on(name, fn) {
    const listener = (event) => fn(event.detail, event);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _connect() {
    const o = this._opts;
    const url = o.resume ? withResumeParams(this._url, { token: this._token, seq: this._received }) : this._url;
    const ws = o.protocols === undefined ? new o.WebSocket(url) : new o.WebSocket(url, o.protocols);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    this._sessionReady = false;
    this._drainHint = null;
    ws.onopen = () => { if (!o.resume) this._becomeOpen(); };
    ws.onmessage = (event) => this._onMessage(ws, event.data);
    ws.onclose = (event) => this._onClose(event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows
    this._connectTimer = o.setTimeout(() => {
      this._connectTimer = null;
      const stale = this._detach();
      try { stale.close(); } catch { /* already closing */ }
      this._onClose(1006, "connect timeout");
    }, o.connectTimeout);
  }

  /** Stop listening to the current socket and forget it. */
  _detach() {
    const ws = this._ws;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this._ws = null;
    return ws;
  }

  _becomeOpen(session = null) {
    const o = this._opts;
    this._sessionReady = true;
    o.clearTimeout(this._connectTimer);
    this._connectTimer = null;
    // Flush before anything else can send, so buffered messages keep their order.
    while (this._buffer.length && this._ws && this._ws.readyState === OPEN) this._ws.send(this._buffer.shift());
    this._state = "open";
    this._stableTimer = o.setTimeout(() => { this._stableTimer = null; this._attempt = 0; }, o.stableAfter);
    this._emit("open", { sessionId: this._sessionId, resumed: Boolean(session && session.resumed) });
    if (session && session.resumed) {
      this._emit("resumed", { replayed: session.replayed ?? 0, missed: session.missed ?? 0, sessionId: this._sessionId });
    }
  }

  _onMessage(ws, data) {
    const o = this._opts;
    if (o.pingMessage != null && data === o.pingMessage) {
      if (ws.readyState === OPEN) ws.send(o.pongMessage);
      return;
    }
    const frame = o.resume ? parseControlFrame(data) : null;
    if (frame) return this._onControl(frame);
    // Data before the session frame: the server did not opt this socket in; carry on as plain.
    if (!this._sessionReady) this._becomeOpen();
    this._received++;
    this._emit("message", { data });
  }

  _onControl(frame) {
    if (typeof frame.token === "string") this._token = frame.token;
    if (frame.$stabilizer === "session") {
      if (frame.session_id != null) this._sessionId = String(frame.session_id);
      if (!frame.resumed) this._received = 0; // a new session: count from zero
      if (!this._sessionReady) this._becomeOpen(frame);
    } else if (frame.$stabilizer === "drain") {
      const hint = frame.retry_after_ms;
      this._drainHint = typeof hint === "number" && Number.isFinite(hint) && hint >= 0 ? hint : null;
    } // any other kind: ignored (forward-compatible)
  }

  _onClose(code, reason = "") {
    this._detach();
    this._clearTimers();
    const action = closeAction(code);
    if (action === "stop") {
      this._state = "closed";
      this._unlistenToEnvironment();
      this._emit("close", { code, reason, willReconnect: false });
      return;
    }
    const o = this._opts;
    const hint = this._drainHint;
    this._drainHint = null;
    let delay;
    if (hint != null) {
      this._attempt = 0; // a drain is not a failure
      delay = hint;
    } else if (action === "reconnect-slow") {
      const jitter = backoffDelay(this._attempt, { minDelay: o.minDelay * 4, maxDelay: o.maxDelay, random: o.random });
      delay = Math.max(o.rateLimitDelay, o.minDelay * 4) + jitter;
    } else {
      delay = backoffDelay(this._attempt, { minDelay: o.minDelay, maxDelay: o.maxDelay, random: o.random });
    }
    this._attempt++;
    this._state = "reconnecting";
    this._emit("close", { code, reason, willReconnect: true });
    if (this._state !== "reconnecting") return; // a listener called close()
    this._emit("reconnecting", { attempt: this._attempt, delay, code });
    if (this._state !== "reconnecting" || this._ws) return; // a listener reconnected
    this._timerIsHint = hint != null;
    this._timer = o.setTimeout(() => {
      this._timer = null;
      if (!this._offline) this._connect(); // offline: wait for the `online` event
    }, delay);
  }

  /** Reconnect at once if waiting on a backoff timer (not on a server drain hint) or on `online`. */
  _reconnectNow() {
    if (this._state !== "reconnecting" || this._ws || this._offline) return;
    if (this._timer && this._timerIsHint) return;
    this._opts.clearTimeout(this._timer);
    this._timer = null;
    this._connect();
  }

  _clearTimers() {
    const { clearTimeout } = this._opts;
    for (const t of [this._timer, this._connectTimer, this._stableTimer]) if (t != null) clearTimeout(t);
    this._timer = this._connectTimer = this._stableTimer = null;
  }

  _listenToEnvironment() {
    const { window: win, document: doc } = this._opts;
    const add = (target, name, fn) => {
      if (target && typeof target.addEventListener === "function") {
        target.addEventListener(name, fn);
        this._env.push(() => target.removeEventListener(name, fn));
      }
    };
    add(win, "offline", () => { this._offline = true; });
    add(win, "online", () => { this._offline = false; this._reconnectNow(); });
    add(doc, "visibilitychange", () => { if (doc.visibilityState === "visible") this._reconnectNow(); });
  }

  _unlistenToEnvironment() {
    for (const remove of this._env.splice(0)) remove();
  }
}
