// The `anonymous_counts` example with raw `ws` clients that, like a counts-only page, keep
// totals by summing: state counts + Σ diff joins − Σ diff leaves. Every frame each client
// receives is recorded and checked for leaked ids. Run with `node --test` from tests/node
// after `cargo build --examples` (scripts/test does both).
//
// Every wait is event-driven and bounded; nothing sleeps to synchronize.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RawClient, TEST_OPTS, cleanup, server, startServer, stopServer } from "./support.mjs";

const TOPIC = "video:42";
const LEAKS = ["u1", "u2", "user_id", "phx_ref"];

/** Asserts `counts` is exactly {viewers: {count: n}, users: {count: m}} with integers ≥ 0. */
function assertCounts(counts, where) {
  const shown = `${where}: ${JSON.stringify(counts)}`;
  assert.ok(counts && typeof counts === "object", shown);
  assert.deepEqual(Object.keys(counts).sort(), ["users", "viewers"], shown);
  for (const key of ["users", "viewers"]) {
    assert.deepEqual(Object.keys(counts[key]), ["count"], shown);
    assert.ok(Number.isInteger(counts[key].count) && counts[key].count >= 0, shown);
  }
}

/** A raw client on `TOPIC` that sums the counts it receives into `totals`. */
async function counter(label, userId) {
  const client = await RawClient.connect(label, userId === undefined ? {} : { user_id: userId });
  client.totals = { viewers: 0, users: 0 };
  client.problems = []; // payloads that could not be summed (their shape is asserted at the end)
  client.ws.on("message", () => {
    // RawClient's own listener was registered first: the frame is the last one recorded.
    const { topic, event, payload } = client.frames.at(-1);
    if (topic !== TOPIC) return;
    try {
      if (event === "presence_state") {
        for (const key of ["viewers", "users"]) client.totals[key] += payload[key].count;
      } else if (event === "presence_diff") {
        for (const key of ["viewers", "users"]) client.totals[key] += payload.joins[key].count - payload.leaves[key].count;
      } else {
        return;
      }
    } catch (err) {
      client.problems.push(`${event} ${JSON.stringify(payload)}: ${err.message}`);
    }
    client.changed.notify();
  });
  return client;
}

/** Waits (bounded) until `client`'s totals are exactly `expected`. */
function converge(client, expected) {
  return client.changed.until(
    () => client.totals.viewers === expected.viewers && client.totals.users === expected.users,
    `${client.label}'s totals to be ${JSON.stringify(expected)}`,
    {
      show: () =>
        `${JSON.stringify(client.totals)} (problems: ${JSON.stringify(client.problems)}) from frames\n  ${client.texts.join("\n  ")}`,
    },
  );
}

before(() => startServer("anonymous_counts"));
afterEach(cleanup);
after(async () => {
  if (server.proc) await stopServer();
});

describe("anonymous_counts: only counts leave the server", () => {
  test("2 viewers + 2 users converge by summing; a user leaves; no id on the wire", TEST_OPTS, async () => {
    const clients = await Promise.all([
      counter("viewer1"),
      counter("viewer2"),
      counter("u1", "u1"),
      counter("u2", "u2"),
    ]);
    await Promise.all(clients.map((client) => client.join(TOPIC)));
    await Promise.all(clients.map((client) => converge(client, { viewers: 2, users: 2 })));

    const [viewer1, viewer2, u1, u2] = clients;
    await u1.leave(TOPIC);
    await Promise.all([viewer1, viewer2, u2].map((client) => converge(client, { viewers: 2, users: 1 })));

    for (const client of clients) {
      assert.deepEqual(client.problems, [], `${client.label}: unsummable payloads`);
      for (const text of client.texts) {
        for (const leak of LEAKS) assert.ok(!text.includes(leak), `${client.label} received "${leak}" in ${text}`);
      }
      const states = client.frames.filter((f) => f.event === "presence_state");
      assert.equal(states.length, 1, `${client.label}: one presence_state`);
      assertCounts(states[0].payload, `${client.label} presence_state`);
      for (const { payload } of client.frames.filter((f) => f.event === "presence_diff")) {
        assert.deepEqual(Object.keys(payload).sort(), ["joins", "leaves"], `${client.label} diff ${JSON.stringify(payload)}`);
        assertCounts(payload.joins, `${client.label} presence_diff joins`);
        assertCounts(payload.leaves, `${client.label} presence_diff leaves`);
      }
    }
  });
});
