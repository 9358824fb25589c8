//! threadline: one implementation of the thread-id rules behind Netra's WebSocket
//! manager isolation, with no I/O.
//!
//! - [`ids`]: Netra's ID formats, minted and parsed byte for byte; run/thread correlation.
//! - [`context`]: validated user contexts.
//! - [`session`]: the session store that hands out the same thread id every call.
//! - [`key`]: isolation keys, canonical and older form.
//! - [`registry`]: the per-user manager limit and cleanup rules, as a state machine.
//! - [`tracker`]: snapshots, violations, analysis, the report text and JSON.
//!
//! Time enters as `now_ms` or through [`clock::Clock`]; randomness through
//! [`entropy::Entropy`]. The `std` feature adds the system clock and an OS-seeded CSPRNG.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod context;
mod decimal;
pub mod entropy;
pub mod error;
pub mod ids;
pub mod json;
pub mod key;
pub mod registry;
pub mod session;
pub mod text_list;
pub mod tracker;

#[cfg(feature = "std")]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock};
pub use context::{Metadata, UserContext, ValidationRules};
pub use entropy::{Entropy, SeededEntropy};
pub use error::{ContextError, IdError, KeyError, RegistryError, ReportError, SessionError};
pub use ids::{
    are_correlated, parse_id, parse_id_parts, run_readings, thread_id_for_run, IdGenerator, IdParts,
};
pub use key::IsolationKey;
pub use registry::{Connection, ManagerId, Registry, RegistryConfig, RegistryEvent};
pub use session::SessionStore;
pub use text_list::TextList;
pub use tracker::{
    Analysis, AnalysisLists, Comparison, ReportLimits, SnapshotFilter, SnapshotInput, Tracker,
};

/// The README's examples are compiled and run as doctests, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
