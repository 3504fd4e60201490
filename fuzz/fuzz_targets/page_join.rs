//! Fuzz target: `tether::fuzzing::page_join` (see its docs); run with `scripts/fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::page_join(data));
