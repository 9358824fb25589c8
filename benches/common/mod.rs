//! Inputs shared by the criterion benches (`benches/core.rs`), the memory program
//! (`examples/memory.rs`) and the native timing program used by the JS bench
//! (`examples/bench_native.rs`), so every figure is taken on the same data.
#![allow(dead_code)]

use std::sync::Arc;

use threadline::context::{Metadata, UserContext};
use threadline::ids::IdGenerator;
use threadline::tracker::{SnapshotInput, Tracker};
use threadline::{ManualClock, SeededEntropy};

/// A fixed start time: every workload is deterministic.
pub const T0: u64 = 1_764_000_000_000;

pub fn generator(seed: u64) -> IdGenerator {
    IdGenerator::new(
        Arc::new(ManualClock::new(T0)),
        SeededEntropy::from_seed(seed),
    )
}

/// One user's context, as Netra's `from_websocket_request` mints it: generator thread,
/// run and request ids, and a `ws_client_` id.
pub fn context(g: &IdGenerator, i: usize) -> UserContext {
    let user = format!("user-{i:08}");
    let ids = g.user_context_ids(&user, "websocket_factory").unwrap();
    let ws = g.websocket_client_id(&user, None).unwrap();
    UserContext::builder(user, ids.thread_id(), ids.run_id())
        .websocket_client_id(Some(ws))
        .build_with_request_id(ids.request_id().to_owned())
        .unwrap()
}

/// `n` contexts of `n` different users.
pub fn contexts(n: usize) -> Vec<UserContext> {
    let g = generator(1);
    (0..n).map(|i| context(&g, i)).collect()
}

/// The canonical key of a context.
pub fn key(c: &UserContext) -> String {
    format!("{}:{}", c.user_id(), c.thread_id())
}

/// The suite's typical snapshot: a user context, its manager and its isolation key
/// (`take_snapshot("manager_creation", user_context=c, manager=m, isolation_key=k)`).
pub fn snapshot_input<'a>(c: &'a UserContext, key: &'a str, manager_id: u64) -> SnapshotInput<'a> {
    let mut s = SnapshotInput::new("manager_creation")
        .context(c)
        .isolation_key(key);
    s.manager_thread_id = Some(c.thread_id());
    s.manager_instance_id = Some(manager_id);
    s
}

/// One metadata entry per snapshot, as the reference benchmark passes (`metadata={"i": i}`).
pub fn metadata(i: usize) -> Metadata {
    let mut inner = serde_json::Map::new();
    inner.insert("i".into(), (i as u64).into());
    let mut m = Metadata::new();
    m.insert("metadata".into(), serde_json::Value::Object(inner));
    m
}

/// A tracker holding `n` snapshots spread over `n / 10` users (at least 1): ten snapshots
/// per user's thread, so `n / 10` distinct thread ids. Every `mismatch_every`-th snapshot
/// (0: none) looks its manager up by the wrong thread, a mismatch with a violation.
pub fn tracker(n: usize, with_metadata: bool, mismatch_every: usize) -> Tracker {
    let users = (n / 10).max(1);
    let ctxs = contexts(users);
    let keys: Vec<String> = ctxs.iter().map(key).collect();
    let mut t = Tracker::new(T0);
    for i in 0..n {
        let u = i % users;
        let mut input = snapshot_input(&ctxs[u], &keys[u], u as u64);
        if with_metadata {
            input = input.metadata(metadata(i));
        }
        if mismatch_every > 0 && i % mismatch_every == mismatch_every - 1 {
            input = input.cleanup_lookup("thread_websocket_factory_0_00000000");
        }
        t.take_snapshot(input, T0 + i as u64).unwrap();
    }
    t
}
