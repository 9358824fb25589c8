//! Fuzz target `id_generator`: see `checks::id_generator` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::id_generator(data));
