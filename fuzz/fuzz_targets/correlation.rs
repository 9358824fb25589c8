//! Fuzz target `correlation`: see `checks::run_correlation` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run_correlation(data));
