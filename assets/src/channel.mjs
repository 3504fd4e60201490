// channel.mjs — one topic on a socket: join (and rejoin with backoff), push with replies
// (`Push`), leave, and the events of that topic for whoever bound them.
//
// For: `Tether.Channel`, made by `socket.channel(topic, params)`; the same semantics as
// phoenix.js's Channel (join refs, frames of an older join dropped, phx_error rejoins).
// Never: opens or reads a WebSocket itself (it sends through its socket and is fed by the
// socket's `dispatch`), imports the socket module (it holds the socket it was given), or
// knows anything of pages, presence or the DOM.

import { backoff } from "./backoff.mjs";

const PUSH_TIMEOUT_MS = 10000;

// A push waiting for its reply.
class Push {
  constructor(channel, event, payload, timeout) {
    this.channel = channel;
    this.event = event;
    this.payload = payload;
    this.timeout = timeout;
    this.ref = null;
    this.reply = null;
    this.hooks = [];
    this.timer = null;
  }

  receive(status, callback) {
    if (this.reply && this.reply.status === status) callback(this.reply.response);
    this.hooks.push({ status, callback });
    return this;
  }

  send() {
    this.reply = null;
    this.ref = this.channel.socket.makeRef();
    // A join's ref is the channel's join ref from now on.
    if (this.event === "phx_join") this.channel.joinRef = this.ref;
    this.channel.socket.pending.set(this.ref, this);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.settle("timeout", {}), this.timeout);
    this.channel.socket.send([this.channel.joinRef, this.ref, this.channel.topic, this.event, this.payload]);
  }

  settle(status, response) {
    clearTimeout(this.timer);
    this.channel.socket.pending.delete(this.ref);
    this.reply = { status, response };
    for (const hook of this.hooks) if (hook.status === status) hook.callback(response);
  }

  cancel() {
    clearTimeout(this.timer);
    this.channel.socket.pending.delete(this.ref);
  }
}

export class Channel {
  constructor(socket, topic, params) {
    this.socket = socket;
    this.topic = topic;
    this.params = params || {};  // an object, or a function returning one
    this.state = "closed"; // closed | joining | joined | errored | leaving
    this.joinRef = null;
    this.bindings = [];
    this.joinPush = null;
    this.rejoinTries = 0;
    this.rejoinTimer = null;
  }

  // Joins (once); the returned push resolves with "ok", "error" or "timeout".
  join(timeout = PUSH_TIMEOUT_MS) {
    if (this.joinPush) throw new Error("tether: join() may be called once per channel");
    this.joinPush = new Push(this, "phx_join", this.params, timeout);
    this.joinPush.receive("ok", () => {
      this.state = "joined";
      this.rejoinTries = 0;
    });
    this.joinPush.receive("error", () => this.scheduleRejoin());
    this.joinPush.receive("timeout", () => this.scheduleRejoin());
    this.sendJoin();
    return this.joinPush;
  }

  sendJoin() {
    clearTimeout(this.rejoinTimer);
    if (!this.socket.isConnected()) {
      this.state = "errored"; // joined when the socket opens
      return;
    }
    this.state = "joining";
    // Params may be a function, evaluated at every (re)join.
    this.joinPush.payload = typeof this.params === "function" ? this.params() : this.params;
    this.joinPush.send();
  }

  scheduleRejoin() {
    if (this.state === "leaving" || this.state === "closed") return;
    this.state = "errored";
    this.rejoinTries += 1;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = setTimeout(() => this.sendJoin(), backoff(this.rejoinTries));
  }

  on(event, callback) {
    this.bindings.push({ event, callback });
  }

  off(event) {
    this.bindings = this.bindings.filter((b) => b.event !== event);
  }

  push(event, payload, timeout = PUSH_TIMEOUT_MS) {
    if (this.state !== "joined") throw new Error(`tether: push "${event}" before joining ${this.topic}`);
    const push = new Push(this, event, payload || {}, timeout);
    push.send();
    return push;
  }

  leave(timeout = PUSH_TIMEOUT_MS) {
    clearTimeout(this.rejoinTimer);
    this.state = "leaving";
    const push = new Push(this, "phx_leave", {}, timeout);
    const close = () => {
      this.state = "closed";
      this.trigger("phx_close", {});
      this.socket.remove(this);
    };
    push.receive("ok", close).receive("timeout", close);
    if (this.socket.isConnected()) push.send();
    else close();
    return push;
  }

  // A frame for this topic arrived; frames of an older join are dropped.
  dispatch(joinRef, event, payload) {
    if (joinRef && joinRef !== this.joinRef) return;
    if (event === "phx_close") {
      // The server ended this join for good.
      clearTimeout(this.rejoinTimer);
      this.state = "closed";
      this.socket.remove(this);
    } else if (event === "phx_error") {
      this.scheduleRejoin();
    }
    this.trigger(event, payload);
  }

  trigger(event, payload) {
    for (const binding of this.bindings) if (binding.event === event) binding.callback(payload);
  }

  // The socket dropped: joined channels rejoin when it comes back.
  socketLost() {
    if (this.state === "joined" || this.state === "joining") this.state = "errored";
    if (this.joinPush && this.joinPush.ref) this.joinPush.cancel();
  }

  socketOpened() {
    if (this.joinPush && this.state === "errored") {
      this.rejoinTries = 0;
      this.sendJoin();
    }
  }
}
