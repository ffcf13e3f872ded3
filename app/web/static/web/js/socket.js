// A WebSocket that reconnects by itself, politely.
//
// - Exponential backoff with full jitter, capped, reset once a connection has stayed up for a while:
//   a server restart does not bring every open tab back in the same millisecond.
// - While the tab is hidden it does not reconnect at all; it reconnects at once when the tab shows again.
// - A ping every `pingEvery` ms; no frame at all within `deadAfter` ms of a ping means the connection
//   is half-open (a laptop lid, a dropped NAT entry), so it is closed and reopened.
// - Close codes 4400/4401/4403/4404/4416 are final: retrying cannot help, so the state becomes "offline".
//
// The caller builds the URL each time (the deploy page puts the last seq it has in `after=`).

const FINAL_CODES = new Set([4400, 4401, 4403, 4404, 4416]);

export class ResilientSocket {
  /**
   * @param {() => string} urlFor  path + query of the socket, e.g. () => `/ws/deploys/7/?after=${seq}`
   * @param {object} handlers      onFrame(frame), onState(state, detail), onOpen()
   */
  constructor(urlFor, handlers, options = {}) {
    this.urlFor = urlFor;
    this.handlers = handlers;
    this.baseDelay = options.baseDelay ?? 500;
    // 15 s: long enough that a restarted server is not stampeded, short enough that nobody reloads.
    this.maxDelay = options.maxDelay ?? 15000;
    this.pingEvery = options.pingEvery ?? 25000;
    this.deadAfter = options.deadAfter ?? 10000;
    this.attempt = 0;
    this.ws = null;
    this.state = "connecting";
    this.stopped = false;
    this.timers = {};
    this.nextId = 1;
    this.openedAt = []; // when each connection attempt started (last 50): makes the backoff visible
    this.onVisibility = () => {
      if (!document.hidden && !this.ws && !this.stopped && this.state !== "offline") this.connect();
    };
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("online", this.onVisibility);
    window.addEventListener("offline", () => this.ws || this.setState("offline", "the browser is offline"));
  }

  setState(state, detail = "") {
    this.state = state;
    this.handlers.onState?.(state, detail);
  }

  clear(name) {
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  connect() {
    this.clear("retry");
    if (this.stopped || this.ws) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    this.openedAt = [...this.openedAt.slice(-49), Date.now()];
    let ws;
    try {
      ws = new WebSocket(scheme + location.host + this.urlFor());
    } catch (err) {
      this.scheduleRetry(`could not open the socket: ${err.message}`);
      return;
    }
    this.ws = ws;
    this.setState(this.attempt ? "reconnecting" : "connecting");
    ws.addEventListener("open", () => {
      // Only a connection that lasts resets the backoff; one that dies at once keeps growing it.
      this.timers.stable = setTimeout(() => { this.attempt = 0; }, 10000);
      this.schedulePing();
      this.handlers.onOpen?.();
    });
    ws.addEventListener("message", (event) => {
      this.clear("dead");
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handlers.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      ["stable", "ping", "dead"].forEach((t) => this.clear(t));
      if (this.stopped) return;
      if (FINAL_CODES.has(event.code)) {
        const why = {
          4400: "the page asked for something the server does not understand — reload",
          4401: "signed out — reload to sign in",
          4403: "not allowed",
          4404: "no such deploy",
          4416: "the server has fewer events than this page — reload",
        };
        this.setState("offline", why[event.code]);
        return;
      }
      this.scheduleRetry(event.code === 1000 ? "" : `closed (${event.code})`);
    });
  }

  scheduleRetry(detail) {
    if (this.stopped) return;
    this.attempt += 1;
    if (!navigator.onLine) {
      this.setState("offline", "the browser is offline");
      return; // the "online" event reconnects
    }
    if (document.hidden) {
      this.setState("reconnecting", "paused while the tab is hidden");
      return; // visibilitychange reconnects
    }
    const ceiling = Math.min(this.maxDelay, this.baseDelay * 2 ** Math.min(this.attempt - 1, 16));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.retryAt = Date.now() + delay;
    this.setState("reconnecting", detail);
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  schedulePing() {
    this.clear("ping");
    this.timers.ping = setTimeout(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.send({ action: "ping" });
      this.timers.dead = setTimeout(() => this.ws?.close(4000, "no answer to ping"), this.deadAfter);
      this.schedulePing();
    }, this.pingEvery);
  }

  /** Sends an action frame; returns its id, or null when the socket is not open. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    const id = frame.id ?? this.nextId++;
    this.ws.send(JSON.stringify({ ...frame, id }));
    return id;
  }

  /** Closes the current connection and reconnects at once (used after a detected gap). */
  reopen() {
    if (this.ws) this.ws.close(4000, "reopen");
  }

  stop() {
    this.stopped = true;
    Object.keys(this.timers).forEach((t) => this.clear(t));
    this.ws?.close(1000, "bye");
    this.ws = null;
  }
}

/** Fills a connection indicator element (dot + text) for a socket state. */
export function showConnection(el, state, detail) {
  const labels = { connecting: "Connecting…", catching_up: "Catching up…", live: "Live",
    reconnecting: "Reconnecting…", offline: "Offline" };
  el.dataset.state = state;
  el.querySelector(".conn-text").textContent = labels[state] ?? state;
  el.querySelector(".conn-detail").textContent = detail ? ` — ${detail}` : "";
}
