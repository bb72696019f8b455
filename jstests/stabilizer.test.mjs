// Tests for asgi_ws_stabilizer/static/stabilizer.js. Run: node --test jstests/
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  StabilizedSocket, OfflineBuffer, backoffDelay, closeAction, isControlFrame, withResumeParams,
} from "../asgi_ws_stabilizer/static/stabilizer.js";

// ---------------------------------------------------------------- fakes

/** Manual clock: timers run only when advance() passes their due time. */
class FakeTimers {
  now = 0; nextId = 1; timers = new Map();
  setTimeout = (fn, ms) => { const id = this.nextId++; this.timers.set(id, { fn, at: this.now + ms, ms }); return id; };
  clearTimeout = (id) => { this.timers.delete(id); };
  /** Delays (ms) of the pending timers, in creation order. */
  pending() { return [...this.timers.values()].map((t) => t.ms); }
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
  }
}

/** A fake WebSocket class per test; instances are recorded in `FakeWS.sockets`. */
function fakeWebSocketClass() {
  return class FakeWS {
    static sockets = [];
    readyState = 0; binaryType = "blob"; sent = []; closedWith = null;
    onopen = null; onmessage = null; onclose = null; onerror = null;
    constructor(url, protocols) { this.url = url; this.protocols = protocols; FakeWS.sockets.push(this); }
    send(data) { if (this.readyState !== 1) throw new Error("not open"); this.sent.push(data); }
    close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }
    // server side
    open() { this.readyState = 1; this.onopen?.({}); }
    receive(data) { this.onmessage?.({ data }); }
    drop(code, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
    session(fields = {}) {
      this.receive(JSON.stringify({ $stabilizer: "session", session_id: "s1", token: "t1", resumed: false, replayed: 0, missed: 0, ...fields }));
    }
  };
}

/** Count the listeners currently attached to `target` (in `target.listeners`). */
function trackListeners(target) {
  const add = target.addEventListener.bind(target);
  const remove = target.removeEventListener.bind(target);
  target.listeners = 0;
  target.addEventListener = (...args) => { target.listeners++; add(...args); };
  target.removeEventListener = (...args) => { target.listeners--; remove(...args); };
  return target;
}

/** A StabilizedSocket wired to fakes; returns helpers and a log of emitted events. */
function setup(options = {}, url = "wss://example.test/ws") {
  const WS = fakeWebSocketClass();
  const timers = new FakeTimers();
  const win = trackListeners(new EventTarget());
  const doc = trackListeners(Object.assign(new EventTarget(), { visibilityState: "visible" }));
  const events = [];
  const sock = new StabilizedSocket(url, {
    WebSocket: WS, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout,
    random: () => 0.5, window: win, document: doc, ...options,
  });
  for (const name of ["open", "message", "close", "reconnecting", "resumed", "drop"]) {
    sock.addEventListener(name, (e) => events.push([name, e.detail]));
  }
  const last = () => WS.sockets[WS.sockets.length - 1];
  /** Open the latest socket and send the session frame. */
  const ready = (fields) => { last().open(); last().session(fields); return last(); };
  const named = (name) => events.filter(([n]) => n === name).map(([, d]) => d);
  return { sock, WS, timers, win, doc, events, last, ready, named };
}

const query = (url) => Object.fromEntries(new URL(url).searchParams);

// ---------------------------------------------------------------- pure helpers

describe("backoffDelay", () => {
  test("full jitter: random scales the whole capped window", () => {
    assert.equal(backoffDelay(0, { random: () => 0 }), 0);
    assert.equal(backoffDelay(0, { random: () => 0.5 }), 250);
    assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000); // 500 * 2^3 = 4000
    assert.equal(backoffDelay(2, { minDelay: 100, maxDelay: 1000, random: () => 0.25 }), 100);
  });
  test("bounded by min(maxDelay, minDelay * 2^attempt) and never negative", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(20000, 500 * 2 ** attempt);
      const hi = backoffDelay(attempt, { random: () => 0.999999 });
      assert.ok(hi < cap && hi >= cap - 1, `attempt ${attempt}: ${hi} vs cap ${cap}`);
      assert.equal(backoffDelay(attempt, { random: () => 0 }), 0);
    }
    assert.equal(backoffDelay(5000, { random: () => 0.5 }), 10000); // huge attempt: capped, no NaN
    assert.equal(backoffDelay(10, { minDelay: 100, maxDelay: 3000, random: () => 0.5 }), 1500);
  });
});

test("closeAction maps every contract code", () => {
  const expected = {
    1000: "stop", 4409: "stop", 4429: "reconnect-slow", 1012: "reconnect-hint", 1001: "reconnect-hint",
    1013: "reconnect", 4408: "reconnect", 1011: "reconnect", 1006: "reconnect", 1009: "reconnect", 4999: "reconnect",
  };
  for (const [code, action] of Object.entries(expected)) assert.equal(closeAction(Number(code)), action, `code ${code}`);
});

test("isControlFrame recognises only JSON objects with a top-level $stabilizer key", () => {
  assert.ok(isControlFrame('{"$stabilizer":"session","token":"x"}'));
  assert.ok(isControlFrame(' {"$stabilizer": "future-kind"}'));
  for (const data of ['{"a":{"$stabilizer":"x"}}', '["$stabilizer"]', '{"$stabilizer":', "ping",
    '"$stabilizer"', '{"stabilizer":1}', new TextEncoder().encode('{"$stabilizer":"session"}').buffer, null]) {
    assert.equal(isControlFrame(data), false, String(data));
  }
});

test("withResumeParams adds the opt-in, then token and seq, keeping the rest of the URL", () => {
  assert.equal(withResumeParams("ws://h/ws"), "ws://h/ws?_stabilizer=1");
  assert.equal(withResumeParams("ws://h/ws?room=a%20b&x", { token: "t/+=", seq: 7 }),
    "ws://h/ws?room=a%20b&x&_stabilizer=1&_stabilizer_token=t%2F%2B%3D&_stabilizer_seq=7");
  // stale parameters of ours are replaced, not duplicated
  const again = withResumeParams("ws://h/ws?_stabilizer=1&_stabilizer_token=old&_stabilizer_seq=3&k=v", { token: "new", seq: 0 });
  assert.deepEqual(query(again), { k: "v", _stabilizer: "1", _stabilizer_token: "new", _stabilizer_seq: "0" });
  assert.equal(again.split("_stabilizer_token").length, 2);
});

describe("OfflineBuffer", () => {
  test("bounded by count: drops the oldest, keeps order", () => {
    const buf = new OfflineBuffer({ maxMessages: 3 });
    for (const m of ["a", "b", "c"]) assert.deepEqual(buf.push(m), { queued: true, dropped: [] });
    assert.deepEqual(buf.push("d"), { queued: true, dropped: ["a"] });
    assert.deepEqual([buf.shift(), buf.shift(), buf.shift(), buf.shift()], ["b", "c", "d", undefined]);
  });
  test("bounded by UTF-8 bytes; binary counted by byteLength; oversize refused", () => {
    const buf = new OfflineBuffer({ maxMessages: 100, maxBytes: 10 });
    buf.push("é€"); // 2 + 3 bytes
    assert.equal(buf.bytes, 5);
    buf.push(new Uint8Array(4));
    assert.equal(buf.bytes, 9);
    assert.deepEqual(buf.push("😀").dropped, ["é€"]); // 4 bytes: 13 > 10, the oldest goes
    assert.equal(buf.bytes, 8);
    assert.deepEqual(buf.push("x".repeat(11)), { queued: false, dropped: ["x".repeat(11)] });
    assert.equal(buf.length, 2);
    assert.equal(new OfflineBuffer({ maxMessages: 0 }).push("a").queued, false);
  });
});

// ---------------------------------------------------------------- the socket

describe("StabilizedSocket", () => {
  test("first connect opts in; open waits for the session frame, which is not surfaced", () => {
    const { sock, last, named } = setup();
    assert.deepEqual(query(last().url), { _stabilizer: "1" });
    assert.equal(last().binaryType, "arraybuffer");
    last().open();
    assert.equal(sock.state, "connecting");
    last().session({ session_id: "abc", token: "tok" });
    assert.equal(sock.state, "open");
    assert.deepEqual(named("open"), [{ sessionId: "abc", resumed: false }]);
    assert.deepEqual(named("message"), []);
    assert.equal(sock.sessionId, "abc");
    assert.equal(sock.token, "tok");
  });

  test("ping is answered with pong and hidden; control frames hidden; binary counted", () => {
    const { sock, ready, named } = setup({ pingMessage: "hb?", pongMessage: "hb!" });
    const ws = ready();
    ws.receive("hb?");
    assert.deepEqual(ws.sent, ["hb!"]);
    ws.receive('{"$stabilizer":"something-new","x":1}');
    ws.receive("ping"); // not the configured heartbeat: data
    const bin = new Uint8Array([1, 2]).buffer;
    ws.receive(bin);
    ws.receive('{"hello":1}');
    assert.deepEqual(named("message").map((d) => d.data), ["ping", bin, '{"hello":1}']);
    assert.equal(sock.received, 3);
  });

  test("reconnect URL carries the latest token and the data count; resumed event", () => {
    const { sock, ready, last, timers, named } = setup();
    ready({ token: "t1" });
    last().receive("a"); last().receive("ping"); last().receive("b");
    last().receive('{"$stabilizer":"other","token":"t2"}'); // a newer token, whatever the kind
    last().drop(1006);
    assert.equal(sock.state, "reconnecting");
    timers.advance(250);
    assert.deepEqual(query(last().url), { _stabilizer: "1", _stabilizer_token: "t2", _stabilizer_seq: "2" });
    last().open();
    last().session({ resumed: true, replayed: 1, missed: 4, token: "t3", session_id: "s1" });
    last().receive("c"); // replayed: counts on from 2
    assert.equal(sock.received, 3);
    assert.equal(sock.token, "t3");
    assert.deepEqual(named("resumed"), [{ replayed: 1, missed: 4, sessionId: "s1" }]);
    assert.deepEqual(named("open").map((d) => d.resumed), [false, true]);
  });

  test("a non-resumed session frame resets the data count", () => {
    const { sock, ready, last, timers, named } = setup();
    ready();
    last().receive("a"); last().receive("b");
    last().drop(4408);
    timers.advance(20000);
    assert.equal(query(last().url)._stabilizer_seq, "2");
    last().open();
    last().session({ resumed: false, session_id: "s2", token: "n1" });
    assert.equal(sock.received, 0);
    last().receive("fresh");
    assert.equal(sock.received, 1);
    assert.equal(named("resumed").length, 0);
    assert.equal(sock.sessionId, "s2");
  });

  test("offline buffer: queued until the session frame, flushed in order before new sends", () => {
    const { sock, ready, last, timers, named } = setup({ maxBufferedMessages: 3 });
    assert.equal(sock.send("early"), true);
    last().open();
    assert.equal(sock.send("before-session"), true);
    assert.deepEqual(last().sent, []);
    last().session();
    assert.deepEqual(last().sent, ["early", "before-session"]);
    last().drop(1013);
    for (const m of ["m1", "m2", "m3", "m4", "m5"]) assert.equal(sock.send(m), true);
    assert.equal(sock.dropped, 2);
    assert.deepEqual(named("drop"), [{ data: "m1", dropped: 1 }, { data: "m2", dropped: 2 }]);
    timers.advance(20000);
    const ws = ready();
    assert.deepEqual(ws.sent, ["m3", "m4", "m5"]);
    sock.send("new");
    assert.deepEqual(ws.sent, ["m3", "m4", "m5", "new"]);
    assert.equal(sock.buffered, 0);
  });

  test("messages are flushed before the app's open handler can send", () => {
    const { sock, last, timers } = setup();
    sock.on("open", () => sock.send("hello"));
    sock.send("queued");
    last().open(); last().session();
    assert.deepEqual(last().sent, ["queued", "hello"]);
    last().drop(1006);
    timers.advance(20000);
    assert.equal(sock.send("while-down"), true);
    last().open(); last().session({ resumed: true });
    assert.deepEqual(last().sent, ["while-down", "hello"]);
  });

  test("1009: reconnects with backoff and does not resend the message already sent", () => {
    const { sock, ready, last, timers, named } = setup();
    ready();
    sock.send("huge");
    last().drop(1009);
    assert.deepEqual(named("reconnecting"), [{ attempt: 1, delay: 250, code: 1009 }]);
    timers.advance(250);
    ready();
    assert.deepEqual(last().sent, []);
  });

  test("drain: reconnects after exactly retry_after_ms, with the drain token, no random", () => {
    const { sock, ready, last, timers, named, WS } = setup({ random: () => { throw new Error("jitter used"); } });
    ready({ token: "t1" });
    last().receive('{"$stabilizer":"drain","retry_after_ms":1234,"token":"drain-tok"}');
    last().drop(1012, "restart");
    assert.deepEqual(named("close").at(-1), { code: 1012, reason: "restart", willReconnect: true });
    assert.deepEqual(named("reconnecting"), [{ attempt: 1, delay: 1234, code: 1012 }]);
    timers.advance(1233);
    assert.equal(WS.sockets.length, 1);
    timers.advance(1);
    assert.equal(WS.sockets.length, 2);
    assert.equal(query(last().url)._stabilizer_token, "drain-tok");
    assert.equal(sock.state, "reconnecting");
  });

  test("a drain is not a failure: the backoff attempt count restarts", () => {
    const { ready, last, timers, named } = setup();
    last().drop(1006);
    timers.advance(250);
    last().drop(1006);
    timers.advance(500);
    ready().receive('{"$stabilizer":"drain","retry_after_ms":100,"token":"d"}');
    last().drop(1012);
    timers.advance(100);
    last().drop(1006);
    assert.deepEqual(named("reconnecting").map((d) => [d.attempt, d.delay]), [[1, 250], [2, 500], [1, 100], [2, 500]]);
  });

  test("drain close without a hint falls back to backoff", () => {
    const { last, ready, named } = setup();
    ready();
    last().drop(1001);
    assert.deepEqual(named("reconnecting"), [{ attempt: 1, delay: 250, code: 1001 }]);
  });

  for (const code of [1000, 4409]) {
    test(`no reconnect after ${code}`, () => {
      const t = setup();
      const { sock, ready, last, timers, named, WS } = t;
      ready();
      last().drop(code, "bye");
      assert.equal(sock.state, "closed");
      assert.deepEqual(named("close"), [{ code, reason: "bye", willReconnect: false }]);
      assert.deepEqual(timers.pending(), []);
      timers.advance(60000);
      assert.equal(WS.sockets.length, 1);
      assert.equal(sock.send("x"), false);
      assert.deepEqual([t.win.listeners, t.doc.listeners], [0, 0]);
    });
  }

  test("4429: slow backoff of at least 5 s, jittered above the floor", () => {
    const { ready, last, named } = setup({ random: () => 0 });
    ready();
    last().drop(4429);
    assert.equal(named("reconnecting")[0].delay, 5000);
    const t = setup({ random: () => 0.5 });
    t.ready();
    t.last().drop(4429);
    assert.equal(t.named("reconnecting")[0].delay, 5000 + 1000); // 5 s + half of 4 * 500
    assert.equal(t.sock.state, "reconnecting");
  });

  test("backoff grows across failures and resets once a connection stayed open", () => {
    const { last, timers, named, ready } = setup({ random: () => 0.5, stableAfter: 1000 });
    last().drop(1006);          // never opened: attempt 0
    timers.advance(250);
    last().drop(1006);          // attempt 1
    timers.advance(500);
    ready();
    last().drop(1011);          // opened but not stable yet: attempt 2
    timers.advance(1000);
    ready();
    timers.advance(1000);       // stable
    last().drop(1011);
    assert.deepEqual(named("reconnecting").map((d) => [d.attempt, d.delay]), [[1, 250], [2, 500], [3, 1000], [1, 250]]);
  });

  test("connect timeout: a socket that never delivers the session frame is abandoned", () => {
    const { sock, last, timers, named, WS } = setup({ connectTimeout: 3000 });
    last().open();
    timers.advance(2999);
    assert.equal(WS.sockets.length, 1);
    timers.advance(1);
    assert.notEqual(WS.sockets[0].closedWith, null);
    assert.deepEqual(named("close"), [{ code: 1006, reason: "connect timeout", willReconnect: true }]);
    assert.equal(sock.state, "reconnecting");
  });

  test("offline: waits instead of reconnecting; online reconnects at once", () => {
    const { sock, ready, last, timers, win, WS } = setup();
    ready();
    win.dispatchEvent(new Event("offline"));
    last().drop(1006);
    timers.advance(60000);
    assert.equal(WS.sockets.length, 1);
    assert.equal(sock.state, "reconnecting");
    win.dispatchEvent(new Event("online"));
    assert.equal(WS.sockets.length, 2);
    // online while a backoff timer is pending cuts it short
    ready();
    last().drop(1006); // second failure in a row (never stable): cap 1000, random 0.5
    assert.deepEqual(timers.pending(), [500]);
    win.dispatchEvent(new Event("online"));
    assert.equal(WS.sockets.length, 3);
    assert.deepEqual(timers.pending(), [10000]); // only the new socket's connect timeout
  });

  test("visibilitychange to visible reconnects at once when not open, except on a drain hint", () => {
    const { ready, last, doc, WS } = setup({ random: () => 0.99 });
    ready();
    doc.visibilityState = "visible";
    doc.dispatchEvent(new Event("visibilitychange"));
    assert.equal(WS.sockets.length, 1); // open: nothing to do
    last().drop(1006);
    doc.visibilityState = "hidden";
    doc.dispatchEvent(new Event("visibilitychange"));
    assert.equal(WS.sockets.length, 1);
    doc.visibilityState = "visible";
    doc.dispatchEvent(new Event("visibilitychange"));
    assert.equal(WS.sockets.length, 2);
    ready();
    last().receive('{"$stabilizer":"drain","retry_after_ms":9000,"token":"d"}');
    last().drop(1012);
    doc.dispatchEvent(new Event("visibilitychange"));
    assert.equal(WS.sockets.length, 2); // the server's schedule wins
  });

  test("close(): stops for good, removes environment listeners, on() unsubscribes", () => {
    const { sock, ready, last, timers, win, doc, WS, named } = setup();
    assert.deepEqual([win.listeners, doc.listeners], [2, 1]);
    const seen = [];
    const off = sock.on("message", (detail) => seen.push(detail.data));
    const ws = ready();
    ws.receive("one");
    off();
    ws.receive("two");
    assert.deepEqual(seen, ["one"]);
    sock.close(4000, "done");
    assert.deepEqual(ws.closedWith, { code: 4000, reason: "done" });
    assert.deepEqual(named("close"), [{ code: 4000, reason: "done", willReconnect: false }]);
    assert.deepEqual([win.listeners, doc.listeners], [0, 0]);
    assert.equal(sock.state, "closed");
    assert.equal(sock.send("x"), false);
    win.dispatchEvent(new Event("online"));
    timers.advance(60000);
    assert.equal(WS.sockets.length, 1);
    assert.equal(last().onclose, null);
  });

  test("resume: false is a plain client: no parameters, open on open, JSON frames are data", () => {
    const { sock, last, named } = setup({ resume: false, protocols: ["v1"] }, "ws://h/ws?a=1");
    assert.equal(last().url, "ws://h/ws?a=1");
    assert.deepEqual(last().protocols, ["v1"]);
    sock.send("q");
    last().open();
    assert.equal(sock.state, "open");
    assert.deepEqual(last().sent, ["q"]);
    last().receive("ping");
    last().receive('{"$stabilizer":"session"}');
    assert.deepEqual(named("message"), [{ data: '{"$stabilizer":"session"}' }]);
    assert.deepEqual(last().sent, ["q", "pong"]);
  });

  test("works without window/document (Node defaults)", () => {
    const WS = fakeWebSocketClass();
    const timers = new FakeTimers();
    const sock = new StabilizedSocket("ws://h/", { WebSocket: WS, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout });
    assert.equal(WS.sockets.length, 1);
    sock.close();
    assert.equal(sock.state, "closed");
  });
});
