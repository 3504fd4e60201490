// Builds assets/tether.js, the one bundle tether serves at /tether.js (after the vendored
// libraries of assets/vendor, which src/endpoint/mod.rs puts ahead of it), from the ES
// modules of assets/src. Run through scripts/build-js; never at cargo build time.
// Readable on purpose (no minifying, comments kept) so that stack traces and reviews work.

const BANNER = `// tether.js — the browser client of tether, built by scripts/build-js (rollup) from the ES
// modules of assets/src (one per job; each says what it is for and what it must never do).
// Generated: do not edit; change assets/src and run scripts/build-js.`;

export default {
  input: "src/index.mjs",
  output: {
    file: "tether.js",
    format: "iife",
    banner: BANNER,
    indent: "  ",
  },
  // Script patches and `js` round trips run script by design (only when the join reply
  // enabled exec_js): eval is expected. Any other warning (an import circle, an unresolved
  // import, a global read by mistake) fails the build.
  onwarn(warning) {
    if (warning.code === "EVAL") return;
    throw new Error(`rollup: ${warning.code}: ${warning.message}`);
  },
};
