import { RawClient, server, startServer, stopServer } from "./support.mjs";
await startServer("online_counter", {});
const html = await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
const token = /data-tether-token="([^"]*)"/.exec(html)[1].replaceAll("&quot;", '"');
const payload = { token, browser_id: null, store: null, onload: true, counters: [] };
const obs = await RawClient.connect("obs", {}, "/tether/socket");
await obs.join("tether:page:counter", payload);
let bad = 0;
for (let round = 0; round < 20; round++) {
  const N = 30;
  const cs = await Promise.all(Array.from({ length: N }, (_, i) => RawClient.connect(`c${i}`, {}, "/tether/socket")));
  await Promise.all(cs.map((c) => c.join("tether:page:counter", payload)));
  const last = () => { const u = obs.frames.filter((f) => f.event === "patch" && f.payload.sel === "#number_of_users").at(-1); const c = obs.frames.filter((f) => f.event === "patch" && f.payload.sel === "#number_of_connections").at(-1); return [u && JSON.stringify(u.payload), c && JSON.stringify(c.payload)]; };
  await new Promise((r) => setTimeout(r, 300));
  const a = last();
  for (const c of cs) c.ws.terminate();
  await new Promise((r) => setTimeout(r, 500));
  const b = last();
  console.log(round, a.join(" "), "|", b.join(" "));
  if (!a[0].includes('"31"') || !a[1].includes('"31"') || !b[0].includes('"1"') || !b[1].includes('"1"')) bad++;
}
console.log("bad", bad);
obs.ws.terminate();
await stopServer();
