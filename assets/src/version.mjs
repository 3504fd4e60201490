// version.mjs — the version of this tether.js: the crate's version (Cargo.toml), checked by
// a test of src/commander/navigation.rs. A page sends it when it joins; a server with a newer
// tether.js refuses the join with "outdated client" and the page reloads once (page.mjs).
//
// For: page.mjs's join payload, and `Tether.version`.
// Never: is changed by hand without Cargo.toml's version (the test says so).

export const VERSION = "0.1.0";
