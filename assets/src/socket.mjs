// socket.mjs — the WebSocket speaking Phoenix Channels V2 JSON: connect, reconnect with
// jittered backoff, heartbeats, refs, and routing each frame to its channel and its pending
// push.
//
// For: `Tether.Socket`, the transport of any app (`new Tether.Socket("/socket", {params})`)
// and of a commander's page; wire-compatible with phoenix.js's Socket.
// The latency simulator (latency.mjs) delays frames both ways when a developer turned it on.
//
// Never: interprets a channel's events (patches, presence, round trips are for the modules
// above it), touches the DOM, or imports anything of the page part.

import { backoff } from "./backoff.mjs";
import { Channel } from "./channel.mjs";
import { delayed } from "./latency.mjs";

const VSN = "2.0.0";
const HEARTBEAT_MS = 30000;

export class Socket {
  constructor(endpoint, options = {}) {
    this.endpoint = endpoint;
    this.params = options.params || {};
    this.heartbeatMs = options.heartbeatIntervalMs || HEARTBEAT_MS;
    this.channels = [];
    this.pending = new Map();
    this.ref = 0;
    this.conn = null;
    this.tries = 0;
    this.closedByUser = false;
    this.heartbeatTimer = null;
    this.heartbeatRef = null;
    this.reconnectTimer = null;
    this.callbacks = { open: [], close: [], error: [], message: [] };
  }

  onOpen(callback) { this.callbacks.open.push(callback); }
  onClose(callback) { this.callbacks.close.push(callback); }
  onError(callback) { this.callbacks.error.push(callback); }
  onMessage(callback) { this.callbacks.message.push(callback); }

  url() {
    const base = this.endpoint.startsWith("ws")
      ? this.endpoint
      : `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${this.endpoint}`;
    const params = typeof this.params === "function" ? this.params() : this.params;
    const query = new URLSearchParams({ ...params, vsn: VSN });
    return `${base}/websocket?${query}`;
  }

  makeRef() {
    this.ref += 1;
    return String(this.ref);
  }

  isConnected() {
    return this.conn !== null && this.conn.readyState === WebSocket.OPEN;
  }

  connect() {
    this.closedByUser = false;
    if (this.conn) return;
    const conn = new WebSocket(this.url());
    this.conn = conn;
    conn.onopen = () => {
      this.tries = 0;
      this.startHeartbeat();
      for (const cb of this.callbacks.open) cb();
      for (const channel of this.channels) channel.socketOpened();
    };
    conn.onerror = (error) => {
      for (const cb of this.callbacks.error) cb(error);
    };
    // The latency simulator (latency.mjs) may hold each frame; one of a closed connection
    // is dropped.
    conn.onmessage = (event) => delayed(() => {
      if (this.conn === conn) this.receive(event.data);
    });
    conn.onclose = (event) => this.closed(conn, event);
  }

  disconnect(code = 1000) {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    if (this.conn) this.conn.close(code);
  }

  closed(conn, event) {
    if (conn !== this.conn) return;
    this.conn = null;
    clearInterval(this.heartbeatTimer);
    this.heartbeatRef = null;
    for (const push of [...this.pending.values()]) push.cancel();
    for (const channel of this.channels) channel.socketLost();
    for (const cb of this.callbacks.close) cb(event);
    // 1000 is a deliberate close; anything else means "come back".
    if (!this.closedByUser && event.code !== 1000) {
      this.tries += 1;
      this.reconnectTimer = setTimeout(() => this.connect(), backoff(this.tries));
    }
  }

  startHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (this.heartbeatRef) {
        // The previous heartbeat was never answered: the connection is dead.
        this.heartbeatRef = null;
        if (this.conn) this.conn.close(4000, "heartbeat timeout");
        return;
      }
      this.heartbeatRef = this.makeRef();
      this.send([null, this.heartbeatRef, "phoenix", "heartbeat", {}]);
    }, this.heartbeatMs);
  }

  send(frame) {
    if (!this.isConnected()) return;
    const conn = this.conn;
    const text = JSON.stringify(frame);
    delayed(() => {
      if (this.conn === conn && this.isConnected()) conn.send(text);
    });
  }

  channel(topic, params) {
    const channel = new Channel(this, topic, params);
    this.channels.push(channel);
    return channel;
  }

  remove(channel) {
    this.channels = this.channels.filter((c) => c !== channel);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!Array.isArray(frame) || frame.length !== 5) return;
    const [joinRef, ref, topic, event, payload] = frame;
    for (const cb of this.callbacks.message) cb({ join_ref: joinRef, ref, topic, event, payload });
    if (event === "phx_reply") {
      if (topic === "phoenix" && ref === this.heartbeatRef) this.heartbeatRef = null;
      const push = ref && this.pending.get(ref);
      if (push) push.settle(payload.status, payload.response);
    }
    for (const channel of this.channels) {
      if (channel.topic === topic) channel.dispatch(joinRef, event, payload);
    }
  }
}
