// latency.mjs — the latency simulator, a developer aid: `Tether.enableLatencySim(ms)` delays
// every frame a tether socket sends and every frame it receives by `ms` (a round trip then
// takes at least twice that), kept in sessionStorage so it lasts for the tab's session,
// reloads included; `Tether.disableLatencySim()` ends it. Phoenix LiveView's
// `liveSocket.enableLatencySim(ms)`.
//
// For: the socket (socket.mjs), which asks for the delay of each frame; index.mjs exposes
// enable/disable.
// Never: drops or reorders frames (every frame waits the same delay, in order), delays
// anything while it is off, or keeps anything but one number in sessionStorage.

const KEY = "tether_latency_sim";
// A delay beyond this is a typo, not a network.
const MAX_MS = 60_000;

function session() {
  try {
    return globalThis.sessionStorage || null;
  } catch (_) {
    return null; // storage blocked: the simulator is off
  }
}

// The simulated one-way delay in ms, or 0 when off.
export function latencyMs() {
  const storage = session();
  const ms = storage ? Number(storage.getItem(KEY)) : 0;
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_MS) : 0;
}

export function enableLatencySim(ms) {
  const delay = Math.min(Math.max(0, Math.round(Number(ms) || 0)), MAX_MS);
  const storage = session();
  if (!storage) return;
  if (delay > 0) {
    storage.setItem(KEY, String(delay));
    console.info(`tether: latency simulator on: ${delay} ms each way (Tether.disableLatencySim() ends it)`);
  } else {
    storage.removeItem(KEY);
  }
}

export function disableLatencySim() {
  const storage = session();
  if (storage) storage.removeItem(KEY);
}

// Runs `fn` now, or after the simulated delay.
export function delayed(fn) {
  const ms = latencyMs();
  if (ms === 0) fn();
  else setTimeout(fn, ms);
}
