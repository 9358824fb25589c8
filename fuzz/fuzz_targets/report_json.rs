//! Fuzz target `report_json`: see `checks::report_json` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::report_json(data));
