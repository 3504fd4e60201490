// Presence of the `presence_chat` example as the official phoenix.js `Presence` sees it, plus
// raw-frame checks of what a joiner receives. Run with `node --test` from tests/node after
// `cargo build --examples` (scripts/test does both).
//
// Every wait is event-driven and bounded; nothing sleeps to synchronize.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Presence } from "phoenix";
import {
  RawClient,
  Signal,
  TEST_OPTS,
  cleanup,
  disconnect,
  join,
  leave,
  phxSocket,
  pushEvent,
  replyOf,
  server,
  startServer,
  stopServer,
} from "./support.mjs";

/**
 * A phoenix.js Presence on `topic` of `socket` (channel not joined yet). Records every
 * onJoin/onLeave as `{key, metas (after the change), refs (joined or left)}` and notifies
 * `synced` on every onSync.
 */
function presenceView(socket, topic, label) {
  const channel = socket.channel(topic);
  const presence = new Presence(channel);
  const view = { label, channel, presence, joins: [], leaves: [], synced: new Signal() };
  presence.onJoin((key, current, joined) =>
    view.joins.push({ key, refs: joined.metas.map((m) => m.phx_ref) }),
  );
  presence.onLeave((key, current, left) =>
    view.leaves.push({ key, metas: current.metas.length, refs: left.metas.map((m) => m.phx_ref) }),
  );
  presence.onSync(() => view.synced.notify());
  /** The Presence guide's rendering, sorted: "Alice (count: 2)". */
  view.lines = () => presence.list((id, { metas }) => `${id} (count: ${metas.length})`).sort();
  /** The metas of `key` ([] when absent). */
  view.metas = (key) => presence.list((id, { metas }) => (id === key ? metas : null)).find(Boolean) ?? [];
  /** Waits (bounded) until the rendering is exactly `expected` (in any order). */
  view.converge = (expected) =>
    view.synced.until(
      () => JSON.stringify(view.lines()) === JSON.stringify([...expected].sort()),
      `${label} to list ${JSON.stringify(expected)}`,
      { show: () => JSON.stringify(view.lines()) },
    );
  return view;
}

/** A joined presence view for `userId` on `topic`. */
async function joinedView(userId, topic, label = userId) {
  const socket = await phxSocket(userId);
  const view = presenceView(socket, topic, label);
  view.socket = socket;
  assert.deepEqual(await join(view.channel), { status: "ok", response: {} }, `${label} join`);
  return view;
}

const keysOf = (events) => [...new Set(events.map((e) => e.key))].sort();

before(() => startServer("presence_chat"));
afterEach(cleanup);
after(async () => {
  if (server.proc) await stopServer();
});

describe("presence_chat presence with the official phoenix client", () => {
  test("a. the Presence guide: Alice in two sockets, Bob in one", TEST_OPTS, async () => {
    const topic = "room:guide";
    const alice1 = await joinedView("Alice", topic, "Alice#1");
    await alice1.converge(["Alice (count: 1)"]);
    const alice1Ref = alice1.metas("Alice")[0].phx_ref;

    const bob = await joinedView("Bob", topic);
    const alice2 = await joinedView("Alice", topic, "Alice#2");
    const views = [alice1, alice2, bob];
    for (const view of views) await view.converge(["Alice (count: 2)", "Bob (count: 1)"]);

    const aliceRefs = alice2.metas("Alice").map((m) => m.phx_ref);
    assert.ok(aliceRefs.includes(alice1Ref), `Alice#2 sees Alice#1's ref ${alice1Ref}: ${aliceRefs}`);
    const alice2Ref = aliceRefs.find((ref) => ref !== alice1Ref);
    const bobRef = bob.metas("Bob")[0].phx_ref;
    for (const view of views) {
      assert.deepEqual(keysOf(view.joins), ["Alice", "Bob"], `${view.label} onJoin keys`);
      assert.deepEqual(view.leaves, [], `${view.label} onLeave before anyone left`);
    }

    // One Alice socket closes: the others see Alice's count drop, with that socket's ref.
    await disconnect(alice2.socket);
    for (const view of [alice1, bob]) {
      await view.converge(["Alice (count: 1)", "Bob (count: 1)"]);
      assert.deepEqual(view.leaves, [{ key: "Alice", metas: 1, refs: [alice2Ref] }], `${view.label} onLeave`);
      assert.deepEqual(view.metas("Alice").map((m) => m.phx_ref), [alice1Ref], `${view.label}: Alice#1's meta stays`);
    }

    // Bob leaves the channel: only Alice remains.
    assert.equal((await leave(bob.channel)).status, "ok");
    await alice1.converge(["Alice (count: 1)"]);
    assert.deepEqual(
      alice1.leaves,
      [
        { key: "Alice", metas: 1, refs: [alice2Ref] },
        { key: "Bob", metas: 0, refs: [bobRef] },
      ],
      "Alice#1 onLeave",
    );
  });

  test("b. update_status: one meta with the status and phx_ref_prev", TEST_OPTS, async () => {
    const topic = "room:status";
    const alice = await joinedView("Alice", topic);
    const bob = await joinedView("Bob", topic);
    for (const view of [alice, bob]) await view.converge(["Alice (count: 1)", "Bob (count: 1)"]);
    const [old] = alice.metas("Bob");
    const marks = [alice, bob].map((view) => ({ joins: view.joins.length, leaves: view.leaves.length }));

    const reply = await replyOf(pushEvent(bob.channel, "update_status", { status: "away" }), "update_status reply");
    assert.deepEqual(reply, { status: "ok", response: {} });

    for (const [i, view] of [alice, bob].entries()) {
      await view.synced.until(
        () => view.metas("Bob").some((m) => m.status === "away"),
        `${view.label} to see Bob away`,
        { show: () => JSON.stringify(view.metas("Bob")) },
      );
      const metas = view.metas("Bob");
      assert.equal(metas.length, 1, `${view.label}: Bob has one meta: ${JSON.stringify(metas)}`);
      const [meta] = metas;
      assert.equal(meta.phx_ref_prev, old.phx_ref, `${view.label}: phx_ref_prev is Bob's previous phx_ref`);
      assert.notEqual(meta.phx_ref, old.phx_ref, `${view.label}: the update has a new phx_ref`);
      assert.equal(meta.online_at, old.online_at, `${view.label}: online_at is kept`);
      assert.deepEqual(view.lines(), ["Alice (count: 1)", "Bob (count: 1)"]);
      // One diff: the new meta joined and the old one left, both for Bob.
      assert.deepEqual(view.joins.slice(marks[i].joins), [{ key: "Bob", refs: [meta.phx_ref] }], `${view.label} onJoin`);
      assert.deepEqual(
        view.leaves.slice(marks[i].leaves),
        [{ key: "Bob", metas: 1, refs: [old.phx_ref] }],
        `${view.label} onLeave`,
      );
    }
  });

  test("c. a joiner's presence_state holds its own key and no diff repeats its join", TEST_OPTS, async () => {
    const topic = "room:own";
    const names = ["Carol", "Dave", "Erin"];
    const clients = [];
    for (const [i, name] of names.entries()) {
      const client = await RawClient.connect(name, { user_id: name });
      const joinRef = await client.join(topic);
      const state = await client.next((f) => f.event === "presence_state" && f.topic === topic, "presence_state");
      assert.equal(state.join_ref, joinRef, "presence_state is a push of this join");
      assert.equal(state.ref, null, "presence_state is a push (ref null)");
      assert.deepEqual(Object.keys(state.payload).sort(), names.slice(0, i + 1).sort(), `${name}'s state keys`);
      const own = state.payload[name].metas;
      assert.equal(own.length, 1, `${name}'s own metas: ${JSON.stringify(own)}`);
      client.ownRef = own[0].phx_ref;
      assert.equal(typeof client.ownRef, "string");
      clients.push(client);

      // The previous joiner learns of this one by a diff: every diff it got until then
      // (before or after its state) must be free of its own ref.
      const prev = clients[i - 1];
      if (!prev) continue;
      const announce = await prev.next(
        (f) => f.event === "presence_diff" && f.topic === topic && f.payload.joins && name in f.payload.joins,
        `the diff announcing ${name}`,
      );
      assert.equal(announce.join_ref, null);
      assert.equal(announce.ref, null);
      assert.deepEqual(announce.payload.joins[name].metas.map((m) => m.phx_ref), [client.ownRef]);
      const seen = prev.frames.slice(0, prev.cursor).filter((f) => f.event === "presence_diff");
      const echoes = seen.filter((f) => JSON.stringify(f.payload).includes(JSON.stringify(prev.ownRef)));
      assert.deepEqual(echoes, [], `${prev.label} got a diff with its own phx_ref ${prev.ownRef}`);
    }
  });

  test("d. ten clients joining at once all converge to ten keys", TEST_OPTS, async (t) => {
    const topic = "room:crowd";
    const ids = Array.from({ length: 10 }, (_, i) => `crowd${i}`);
    const sockets = await Promise.all(ids.map((id) => phxSocket(id)));
    const views = sockets.map((socket, i) => presenceView(socket, topic, ids[i]));
    // Diffs that arrive before the client's state are buffered by phoenix.js: count them.
    let diffsBeforeState = 0;
    for (const socket of sockets) {
      let stated = false;
      socket.onMessage(({ topic: tp, event }) => {
        if (tp !== topic) return;
        if (event === "presence_state") stated = true;
        if (event === "presence_diff" && !stated) diffsBeforeState += 1;
      });
    }
    const replies = await Promise.all(views.map((view) => join(view.channel)));
    for (const reply of replies) assert.deepEqual(reply, { status: "ok", response: {} });
    const expected = ids.map((id) => `${id} (count: 1)`);
    await Promise.all(views.map((view) => view.converge(expected)));
    t.diagnostic(`presence_diff frames received before a client's presence_state: ${diffsBeforeState}`);
  });
});
