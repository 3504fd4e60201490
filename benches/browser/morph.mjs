// How long a `morph` patch takes in Chromium on a 1,000-item list, against innerHTML of the
// same markup: the DOM morph (idiomorph, bundled in the served tether.js) with tether's own
// "keep what the server did not change" callbacks, timed with performance.now() around the call
// plus a forced layout (offsetHeight), in Debian's Chromium driven by playwright-core.
//
// Run: node benches/browser/morph.mjs   (after `npm ci` in tests/node; needs /usr/bin/chromium)
// Every case runs 41 times, alternating two renders so that each run changes something; the
// report gives the median and the 90th percentile in milliseconds.

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
  await page.setContent("<!doctype html><html><body><ul id=list></ul></body></html>");
  await page.addScriptTag({ content: bundle });
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
      "two items swapped": [render(ids), render(swapped)],
      "whole list reversed": [render(ids), render(ids.slice().reverse())],
      "every item's text changed": [render(ids), render(ids, (id) => item(id, `renamed ${id}`, id % 7 === 0))],
    };
    const list = document.querySelector("#list");
    const stats = (times) => {
      const sorted = times.slice().sort((a, b) => a - b);
      return { median: sorted[Math.floor(sorted.length / 2)], p90: sorted[Math.floor(sorted.length * 0.9)] };
    };
    const time = (apply, [a, b]) => {
      apply(a);
      void list.offsetHeight;
      const times = [];
      for (let run = 0; run < RUNS; run++) {
        const html = run % 2 === 0 ? b : a;
        const t0 = performance.now();
        apply(html);
        void list.offsetHeight; // include style and layout
        times.push(performance.now() - t0);
      }
      return stats(times);
    };
    const out = {};
    for (const [name, renders] of Object.entries(cases)) {
      out[name] = {
        morph: time((html) => Tether.morph(list, html), renders),
        innerHTML: time((html) => { list.innerHTML = html; }, renders),
      };
    }
    return { userAgent: navigator.userAgent, out };
  });
  console.log(`Chromium: ${report.userAgent}`);
  console.log("| 1,000 items | morph: median / p90 ms | innerHTML: median / p90 ms |");
  console.log("|---|---:|---:|");
  for (const [name, { morph, innerHTML }] of Object.entries(report.out)) {
    console.log(`| ${name} | ${morph.median.toFixed(2)} / ${morph.p90.toFixed(2)} | ${innerHTML.median.toFixed(2)} / ${innerHTML.p90.toFixed(2)} |`);
  }
} finally {
  await browser.close();
}
