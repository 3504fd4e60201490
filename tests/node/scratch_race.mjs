import { launchChromium, server, startServer, stopServer } from "./support.mjs";
const N = Number(process.env.N || 8);
await startServer("online_counter", {});
const browser = await launchChromium();
let bad = 0;
for (let round = 0; round < 5; round++) {
  const ctxs = await Promise.all(Array.from({ length: N }, () => browser.newContext()));
  const pages = await Promise.all(ctxs.map(async (c) => { const p = await c.newPage(); await p.goto(`http://127.0.0.1:${server.port}/`); return p; }));
  await Promise.all(pages.map((p) => p.waitForFunction(() => document.documentElement.dataset.tether === "connected")));
  // let things settle via live counter (server-driven, 250ms) reaching N
  await Promise.all(pages.map((p) => p.waitForFunction((n) => document.querySelector('[data-tether-count="users"]').textContent === String(n), N, { timeout: 5000 })));
  await pages[0].waitForTimeout(500);
  const shown = await Promise.all(pages.map((p) => p.evaluate(() => [document.querySelector("#number_of_users").textContent, document.querySelector("#number_of_connections").textContent].join("/"))));
  const wrong = shown.filter((s) => s !== `${N}/${N}`);
  console.log(`round ${round} open: ${shown.join(" ")}`);
  if (wrong.length) bad++;
  // concurrent close of half
  await Promise.all(ctxs.slice(0, N / 2).map((c) => c.close()));
  const rest = pages.slice(N / 2);
  await Promise.all(rest.map((p) => p.waitForFunction((n) => document.querySelector('[data-tether-count="users"]').textContent === String(n), N / 2, { timeout: 5000 })));
  await rest[0].waitForTimeout(500);
  const shown2 = await Promise.all(rest.map((p) => p.evaluate(() => [document.querySelector("#number_of_users").textContent, document.querySelector("#number_of_connections").textContent].join("/"))));
  console.log(`round ${round} after closing half: ${shown2.join(" ")}`);
  if (shown2.some((s) => s !== `${N / 2}/${N / 2}`)) bad++;
  await Promise.all(ctxs.slice(N / 2).map((c) => c.close()));
}
console.log("bad rounds", bad);
await browser.close();
await stopServer();
