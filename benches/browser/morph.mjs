// How long a `morph` patch takes in Chromium on a 1,000-item keyed list, three ways on the
// same markup: tether's morph (`Tether.morph`, what a `morph` patch does: its keyed path here),
// idiomorph alone over the whole list with the same options and callbacks (`Idiomorph.morph`
// with `morphOptions` of assets/src/morph.mjs, what a morph patch did before the keyed path;
// loaded as a module beside the bundle, since window.Tether does not export it), and innerHTML.
// Each run is timed with performance.now() around the call plus a forced layout
// (offsetHeight), in Debian's Chromium driven by playwright-core.
//
// Run: node benches/browser/morph.mjs   (after `npm ci` in tests/node; needs /usr/bin/chromium)
// Every case runs 41 times, alternating two renders so that each run changes something; the
// report gives the median and the 90th percentile in milliseconds, then the medians of the
// two parts of a run: the call itself and the forced layout after it (style and layout of
// what the call changed). After each run the list must serialize to the markup applied (no
// one edits it here), or the bench fails.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { CHROMIUM, CHROMIUM_ARGS } from "../../tests/node/support.mjs";

const require = createRequire(new URL("../../tests/node/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const asset = (path) => readFileSync(new URL(`../../assets/${path}`, import.meta.url), "utf8");
const bundle = `${asset("vendor/idiomorph.js")}\n${asset("tether.js")}`; // what /tether.js serves

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: false, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  // A stand-in origin: "/" is the page, /src/<name>.mjs the modules of assets/src.
  await page.route("http://tether.bench/**", (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === "/") return route.fulfill({ contentType: "text/html", body: "<!doctype html><html><body><ul id=list></ul></body></html>" });
    if (/^\/src\/[a-z_]+\.mjs$/.test(path)) return route.fulfill({ contentType: "text/javascript", body: asset(path.slice(1)) });
    return route.fulfill({ status: 404, body: "" });
  });
  await page.goto("http://tether.bench/");
  await page.addScriptTag({ content: bundle });
  await page.addScriptTag({ type: "module", content: 'import { morphOptions } from "/src/morph.mjs"; window.morphOptions = morphOptions;' });
  await page.waitForFunction(() => typeof window.morphOptions === "function");
  const report = await page.evaluate(() => {
    const N = 1000;
    const RUNS = 41;
    const item = (id, text, checked) =>
      `<li id="i${id}" class="item"><input type="checkbox" class="done"${checked ? " checked" : ""}> ` +
      `<span class="text">${text}</span> <button class="remove">Remove</button></li>`;
    const render = (ids, edit = () => null) =>
      ids.map((id) => edit(id) ?? item(id, `item number ${id}`, id % 7 === 0)).join("");
    const ids = Array.from({ length: N }, (_, i) => i + 1);
    const swapped = ids.slice();
    [swapped[9], swapped[989]] = [swapped[989], swapped[9]];
    const cases = {
      "no change": [render(ids), render(ids)],
      "one item's text changed": [render(ids), render(ids, (id) => (id === 500 ? item(id, "edited", false) : null))],
      "one item added at the end": [render(ids), render(ids.concat([N + 1]))],
      "one item removed": [render(ids), render(ids.filter((id) => id !== 500))],
      "two items swapped": [render(ids), render(swapped)],
      "whole list reversed": [render(ids), render(ids.slice().reverse())],
      "every item's text changed": [render(ids), render(ids, (id) => item(id, `renamed ${id}`, id % 7 === 0))],
    };
    const list = document.querySelector("#list");
    const stats = (times) => {
      const sorted = times.slice().sort((a, b) => a - b);
      return { median: sorted[Math.floor(sorted.length / 2)], p90: sorted[Math.floor(sorted.length * 0.9)] };
    };
    const wrong = [];
    const serialized = (html) => {
      const template = document.createElement("template");
      template.innerHTML = html;
      return template.innerHTML; // `checked` reads back as `checked=""`
    };
    const time = (name, way, apply, [a, b]) => {
      const want = { [a]: serialized(a), [b]: serialized(b) };
      apply(a);
      void list.offsetHeight;
      const times = [];
      const calls = [];
      const layouts = [];
      for (let run = 0; run < RUNS; run++) {
        const html = run % 2 === 0 ? b : a;
        const t0 = performance.now();
        apply(html);
        const t1 = performance.now();
        void list.offsetHeight; // include style and layout
        const t2 = performance.now();
        times.push(t2 - t0);
        calls.push(t1 - t0);
        layouts.push(t2 - t1);
        if (list.innerHTML !== want[html]) wrong.push(`${way}, ${name}, run ${run}`);
      }
      return { ...stats(times), call: stats(calls).median, layout: stats(layouts).median };
    };
    const out = {};
    for (const [name, renders] of Object.entries(cases)) {
      out[name] = {
        tether: time(name, "tether", (html) => Tether.morph(list, html), renders),
        idiomorph: time(name, "idiomorph", (html) => Idiomorph.morph(list, html, morphOptions(list, "innerHTML")), renders),
        innerHTML: time(name, "innerHTML", (html) => { list.innerHTML = html; }, renders),
      };
    }
    return { userAgent: navigator.userAgent, out, wrong };
  });
  console.log(`Chromium: ${report.userAgent}`);
  const cell = ({ median, p90 }) => `${median.toFixed(2)} / ${p90.toFixed(2)}`;
  console.log("| 1,000 items | tether morph | idiomorph alone | innerHTML |");
  console.log("|---|---:|---:|---:|");
  for (const [name, { tether, idiomorph, innerHTML }] of Object.entries(report.out)) {
    console.log(`| ${name} | ${cell(tether)} | ${cell(idiomorph)} | ${cell(innerHTML)} |`);
  }
  const split = ({ call, layout }) => `${call.toFixed(2)} + ${layout.toFixed(2)}`;
  console.log("\nMedians of the two parts of a run, call + forced layout (ms):\n");
  console.log("| 1,000 items | tether morph | idiomorph alone | innerHTML |");
  console.log("|---|---:|---:|---:|");
  for (const [name, { tether, idiomorph, innerHTML }] of Object.entries(report.out)) {
    console.log(`| ${name} | ${split(tether)} | ${split(idiomorph)} | ${split(innerHTML)} |`);
  }
  if (report.wrong.length > 0) {
    console.error(`the list did not end up as the markup applied: ${report.wrong.slice(0, 5).join("; ")}`);
    process.exitCode = 1;
  }
} finally {
  await browser.close();
}
