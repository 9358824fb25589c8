//! Fuzz target `parse_ids`: see `checks::parse_ids` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::parse_ids(data));
