//! WebAssembly bindings for threadline: type and error conversion only; every rule is in
//! the core.
//!
//! Conventions of the JS API:
//! - methods and option names are camelCase; data objects handed to JS (ids, analysis,
//!   snapshots, violations, stats) use the core's serde field names (snake_case, the same
//!   as the report JSON);
//! - every failure is thrown as an `Error` whose `name` is `"ThreadlineError"`, with a
//!   `kind` (`"argument"` for a JS value of the wrong type or shape, else the core's
//!   `{concern}.{case}`, see `threadline::error`) and the core's message. Inputs are
//!   checked before they reach the core, so no call panics;
//! - the clock is `Date.now()`, or a `clock` function given in the options (tests and
//!   replays use a fixed clock);
//! - plain objects cross the boundary as JSON text (`serde_json` here, `JSON.parse` /
//!   `JSON.stringify` in JS): one native parse per result, however many fields.

use wasm_bindgen::prelude::*;

// The wasm32-unknown-unknown build is single-threaded (no atomics), which is what talc's
// dynamic WebAssembly allocator requires.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

mod args;
mod guard;
mod ids;
mod objects;
mod registry;
mod tracker;

pub use guard::ThreadGuard;
pub use ids::{IdGenerator, IsolationKey, UserContext};
pub use objects::SessionStore;
pub use registry::Registry;
pub use tracker::Tracker;

/// The package version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
