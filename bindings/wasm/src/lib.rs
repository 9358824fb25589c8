//! WebAssembly bindings for threadline: type and error conversion only; every rule is in the core.

use wasm_bindgen::prelude::*;

/// The package version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
