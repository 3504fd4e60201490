// backoff.mjs — how long to wait before the next reconnect or rejoin.
//
// For: the socket (reconnecting) and channels (rejoining), which share one schedule.
// Never: keeps no state and touches no timer, socket or DOM; it only computes a delay.

// Reconnect and rejoin backoff, with jitter so a server restart is not a thundering herd.
const BACKOFF_MS = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];

export function backoff(tries) {
  const base = BACKOFF_MS[Math.min(tries, BACKOFF_MS.length) - 1] || BACKOFF_MS[0];
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
