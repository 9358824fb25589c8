//! Fuzz target `tracker_ops`: see `checks::tracker_ops` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::tracker_ops(data));
