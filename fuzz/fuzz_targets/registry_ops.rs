//! Fuzz target `registry_ops`: a registry driven by an arbitrary operation sequence,
//! invariants checked after every step (see `checks::run_registry`).
//!
//! The input is decoded with `arbitrary`, then written in the canonical encoding of
//! `checks::encode_ops` and run from there, so the canonical bytes are exactly what
//! `tests/fuzz_regressions.rs` replays. A crash is converted to that encoding with
//! `cargo fuzz fmt registry_ops <crash>`, which prints `canonical:<hex>` (mk/zz-fuzz.mk
//! does this).
#![no_main]

#[path = "../checks.rs"]
mod checks;

use arbitrary::Arbitrary;

#[derive(Arbitrary)]
struct Session {
    setup: checks::Setup,
    ops: Vec<checks::Op>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = checks::encode_ops(&self.setup, &self.ops);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(f, "canonical:{hex}")?;
        write!(f, "setup: {:?}\nops: {:?}", self.setup, self.ops)
    }
}

libfuzzer_sys::fuzz_target!(|s: Session| {
    let bytes = checks::encode_ops(&s.setup, &s.ops);
    debug_assert_eq!(checks::decode_ops(&bytes), (s.setup, s.ops.clone()));
    checks::registry_ops(&bytes);
});
