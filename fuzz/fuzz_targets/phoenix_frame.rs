//! Fuzz target: `tether::fuzzing::phoenix_frame` (see its docs); run with `scripts/fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::phoenix_frame(data));
