//! The seed suite's scenarios, run on the core with a manual clock and seeded entropy so
//! every run prints the same reports. Shared by `cargo run --example seed_scenarios` and
//! the integration tests (`tests/scenarios.rs`), which assert what the example prints.

use std::sync::Arc;

use threadline::registry::{Connection, EventKind};
use threadline::{
    IdGenerator, ManualClock, Metadata, Registry, RegistryConfig, RegistryError, SeededEntropy,
    SessionStore, SnapshotInput, Tracker, UserContext, ValidationRules,
};

/// Start of every scenario's clock: 2025-11-24T16:00:00Z.
pub const T0: u64 = 1_764_000_000_000;

/// What one scenario did, for printing and for assertions.
pub struct Outcome {
    pub name: &'static str,
    pub verdict: &'static str,
    pub tracker: Tracker,
    pub registry: Registry,
    pub now_ms: u64,
    /// Scenario-specific facts, as (name, value) pairs, printed under the report.
    pub facts: Vec<(&'static str, String)>,
}

impl Outcome {
    pub fn fact(&self, name: &str) -> &str {
        self.facts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("scenario {} has no fact {name}", self.name))
    }
}

/// A clock, a generator, a registry with Netra's defaults and a tracker.
struct World {
    clock: Arc<ManualClock>,
    ids: IdGenerator,
    registry: Registry,
    tracker: Tracker,
}

impl World {
    fn new(seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        Self {
            ids: IdGenerator::new(clock.clone(), SeededEntropy::from_seed(seed)),
            clock,
            registry: Registry::new(RegistryConfig::default()).expect("default config is valid"),
            tracker: Tracker::new(T0),
        }
    }

    fn now(&self) -> u64 {
        self.clock.as_ref().now()
    }

    fn tick(&self, ms: i64) -> u64 {
        self.clock.advance(ms);
        self.now()
    }

    fn context(&self, user: &str, op: &str) -> UserContext {
        UserContext::for_websocket(&self.ids, user, op, None, ValidationRules::PRODUCTION)
            .expect("scenario users are valid")
    }

    fn snap(&mut self, op: &str, ctx: Option<&UserContext>, key: Option<&str>) -> bool {
        let now = self.tick(37);
        let mut input = SnapshotInput::new(op);
        if let Some(c) = ctx {
            input = input.context(c);
        }
        let manager = key.and_then(|k| self.registry.get(k));
        if let Some(m) = manager {
            input = input.manager(m);
        }
        if let Some(k) = key {
            input = input.isolation_key(k);
        }
        self.tracker
            .take_snapshot(input, now)
            .expect("valid operation")
            .mismatch
    }

    fn follow_registry(&mut self) {
        for e in self.registry.drain_events() {
            self.tracker.observe(&e);
        }
    }

    fn finish(
        mut self,
        name: &'static str,
        verdict: &'static str,
        facts: Vec<(&'static str, String)>,
    ) -> Outcome {
        self.follow_registry();
        let now = self.tick(100);
        Outcome {
            name,
            verdict,
            tracker: self.tracker,
            registry: self.registry,
            now_ms: now,
            facts,
        }
    }
}

trait Now {
    fn now(&self) -> u64;
}

impl Now for ManualClock {
    fn now(&self) -> u64 {
        threadline::Clock::now_ms(self)
    }
}

fn connection(id: &str, user: &str, at: u64) -> Connection {
    Connection {
        connection_id: id.to_owned(),
        user_id: user.to_owned(),
        connected_ms: at,
        metadata: Metadata::new(),
    }
}

/// Scenario 1, consistent contexts: every snapshot agrees.
pub fn consistent_contexts() -> Outcome {
    let mut w = World::new(1);
    let ctx = w.context("user123", "websocket_factory");
    w.snap("user_context_creation", Some(&ctx), None);
    let now = w.tick(5);
    let key = w
        .registry
        .create(ctx.clone(), now)
        .map(|_| ctx.isolation_key().to_string())
        .expect("room");
    w.snap("manager_creation", Some(&ctx), Some(&key));
    w.snap("manager_lookup", Some(&ctx), Some(&key));
    let correlated = threadline::are_correlated(ctx.thread_id(), ctx.run_id());
    w.finish(
        "consistent_contexts",
        "consistent",
        vec![("thread_run_correlated", correlated.to_string())],
    )
}

/// Scenario 2, bug reproduction: the manager is filed under context A's thread, a second
/// context of the same user carries another thread, and cleanup looks for that other thread.
pub fn bug_reproduction() -> Outcome {
    let mut w = World::new(2);
    let a = w.context("user123", "websocket_factory");
    w.snap("user_context_creation", Some(&a), None);
    let now = w.tick(5);
    w.registry.create(a.clone(), now).expect("room");
    let key = a.isolation_key().to_string();
    w.snap("manager_creation", Some(&a), Some(&key));
    let b = w.context("user123", "websocket_factory");
    w.snap("inconsistent_context_creation", Some(&b), Some(&key));
    let now = w.tick(5);
    w.tracker
        .simulate_cleanup_lookup(b.thread_id(), Some("user123"), None, now)
        .expect("valid lookup");
    let wrong_lookup_found = w
        .registry
        .find_by_thread("user123", b.thread_id())
        .is_some();
    let wrong_key = b.isolation_key().to_string();
    let now = w.tick(5);
    let wrong_cleanup = w.registry.cleanup(&wrong_key, now);
    let right_cleanup = w.registry.cleanup(&key, now);
    w.finish(
        "bug_reproduction",
        "bug reproduced",
        vec![
            ("wrong_thread_lookup_found", wrong_lookup_found.to_string()),
            ("cleanup_with_wrong_key", wrong_cleanup.to_string()),
            ("cleanup_with_right_key", right_cleanup.to_string()),
        ],
    )
}

/// Scenario 3, lifecycle: create, add a connection, send, find the key, clean up.
pub fn lifecycle() -> Outcome {
    let mut w = World::new(3);
    let ctx = w.context("user123", "websocket_factory");
    w.snap("user_context_creation", Some(&ctx), None);
    let now = w.tick(5);
    let created = w.registry.create(ctx.clone(), now).expect("room");
    let key = ctx.isolation_key().to_string();
    w.snap("manager_creation", Some(&ctx), Some(&key));
    let conn_id = w
        .ids
        .websocket_connection_id("user123", None)
        .expect("valid user");
    let now = w.tick(5);
    w.registry
        .add_connection(&key, connection(&conn_id, "user123", now), now)
        .expect("same user");
    w.snap("connection_added", Some(&ctx), Some(&key));
    let now = w.tick(5);
    let delivered = w
        .registry
        .send_to_user(&key, "user123", now)
        .expect("same user");
    w.snap("message_sent", Some(&ctx), Some(&key));
    let found = w
        .registry
        .find_by_thread("user123", ctx.thread_id())
        .map(|m| m.key().to_owned());
    let now = w.tick(5);
    w.tracker
        .simulate_cleanup_lookup(ctx.thread_id(), Some("user123"), None, now)
        .expect("valid lookup");
    let cleaned = w.registry.cleanup(found.as_deref().unwrap_or(""), now);
    let active_after = w.registry.is_active(created.id);
    let registered_after = w.registry.len();
    w.finish(
        "lifecycle",
        "consistent",
        vec![
            ("delivered_to", delivered.join(",")),
            ("found_key", found.unwrap_or_default()),
            ("cleanup_succeeded", cleaned.to_string()),
            ("manager_active_after_cleanup", active_after.to_string()),
            ("managers_registered_after", registered_after.to_string()),
        ],
    )
}

/// Scenario 4, three users at once: each keeps its own thread, key and deliveries.
pub fn concurrent_users() -> Outcome {
    let mut w = World::new(4);
    let users = ["alice_4821", "bob_77310", "carol_5532"];
    let contexts: Vec<UserContext> = users
        .iter()
        .map(|u| w.context(u, "websocket_factory"))
        .collect();
    let mut keys = Vec::new();
    for (i, c) in contexts.iter().enumerate() {
        let now = w.tick(3);
        w.registry.create(c.clone(), now).expect("room");
        let key = c.isolation_key().to_string();
        let now = w.tick(1);
        w.registry
            .add_connection(
                &key,
                connection(&format!("conn_{i}"), c.user_id(), now),
                now,
            )
            .expect("same user");
        w.snap("manager_creation", Some(c), Some(&key));
        keys.push(key);
    }
    let mut cross_deliveries = 0;
    let mut refused_cross_sends = 0;
    for (i, key) in keys.iter().enumerate() {
        for (j, user) in users.iter().enumerate() {
            let now = w.tick(1);
            match w.registry.send_to_user(key, user, now) {
                Ok(to) if i == j => assert_eq!(to, vec![format!("conn_{i}")]),
                Ok(_) => cross_deliveries += 1,
                Err(RegistryError::IsolationViolation { .. }) => refused_cross_sends += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    for (c, key) in contexts.iter().zip(&keys) {
        let now = w.tick(2);
        w.tracker
            .simulate_cleanup_lookup(c.thread_id(), Some(c.user_id()), None, now)
            .expect("valid lookup");
        w.registry.cleanup(key, now);
    }
    let distinct: std::collections::BTreeSet<&str> =
        contexts.iter().map(|c| c.thread_id()).collect();
    let remaining = w.registry.len();
    w.finish(
        "concurrent_users",
        "consistent",
        vec![
            ("distinct_thread_ids", distinct.len().to_string()),
            ("cross_user_deliveries", cross_deliveries.to_string()),
            ("refused_cross_user_sends", refused_cross_sends.to_string()),
            ("managers_registered_after", remaining.to_string()),
        ],
    )
}

/// Scenario 5, recovery after a mismatch: the user's fresh, mismatched managers are all removed.
pub fn recovery_after_mismatch() -> Outcome {
    let mut w = World::new(5);
    let a = w.context("user123", "websocket_factory");
    let now = w.tick(5);
    w.registry.create(a.clone(), now).expect("room");
    let key = a.isolation_key().to_string();
    w.snap("manager_creation", Some(&a), Some(&key));
    for _ in 0..3 {
        let b = w.context("user123", "websocket_factory");
        let now = w.tick(5);
        w.registry.create(b.clone(), now).expect("room");
        w.snap("mismatched_reconnect", Some(&b), Some(&key));
    }
    let before = w.registry.user_count("user123");
    let stale = w.registry.cleanup_stale_for_user("user123", w.now());
    let forced = w.registry.force_cleanup_user("user123", w.now());
    let after = w.registry.user_count("user123");
    w.finish(
        "recovery_after_mismatch",
        "recovered",
        vec![
            ("managers_before", before.to_string()),
            ("stale_cleanup_removed", stale.to_string()),
            ("force_cleanup_removed", forced.to_string()),
            ("managers_after", after.to_string()),
        ],
    )
}

/// Scenario 6, the leak itself, then its fix: 25 connections of one user, never cleaned up.
pub fn leak_and_fix() -> Outcome {
    let mut w = World::new(6);
    // Bug: every connection mints a new thread id.
    let mut first_failure = None;
    for n in 1..=25 {
        let ctx = w.context("user123", "websocket_factory");
        let now = w.tick(10);
        match w.registry.create(ctx, now) {
            Ok(_) => {}
            Err(RegistryError::LimitExceeded { .. }) => {
                first_failure.get_or_insert(n);
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let leaked = w.registry.user_count("user123");
    let limit_hits = w.registry.stats().limit_hits;
    w.follow_registry();
    w.registry.force_cleanup_user("user123", w.now());
    // Fix: the session store hands every connection the same thread id.
    let mut sessions = SessionStore::new(ValidationRules::PRODUCTION);
    let mut fixed_failures = 0;
    for _ in 1..=25 {
        let now = w.tick(10);
        let ctx = sessions
            .context(
                &w.ids,
                "user123",
                None,
                None,
                "websocket_factory",
                None,
                now,
            )
            .expect("valid user");
        match w.registry.create(ctx.clone(), now) {
            Ok(_) => {}
            Err(_) => fixed_failures += 1,
        }
        let key = ctx.isolation_key().to_string();
        w.snap("session_connection", Some(&ctx), Some(&key));
    }
    let held_after_fix = w.registry.user_count("user123");
    let created_events = w
        .registry
        .drain_events()
        .into_iter()
        .inspect(|e| w.tracker.observe(e))
        .filter(|e| e.kind == EventKind::Created)
        .count();
    w.finish(
        "leak_and_fix",
        "leak prevented",
        vec![
            (
                "first_failing_creation",
                first_failure.map_or("none".into(), |n| n.to_string()),
            ),
            ("managers_held_with_bug", leaked.to_string()),
            ("limit_hits_with_bug", limit_hits.to_string()),
            ("failures_with_session_store", fixed_failures.to_string()),
            (
                "managers_held_with_session_store",
                held_after_fix.to_string(),
            ),
            (
                "managers_created_with_session_store",
                created_events.to_string(),
            ),
        ],
    )
}

/// Every scenario, in the seed's order.
pub fn all() -> Vec<Outcome> {
    vec![
        consistent_contexts(),
        bug_reproduction(),
        lifecycle(),
        concurrent_users(),
        recovery_after_mismatch(),
        leak_and_fix(),
    ]
}
