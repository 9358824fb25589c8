//! Property tests: ID and key round trips, correlation, and the registry against a plain
//! reference model over random operation sequences.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use threadline::ids::{correlation, parse_context_id, ContextIdKind, RunFormat};
use threadline::registry::Connection;
use threadline::{
    are_correlated, parse_id, thread_id_for_run, IdGenerator, IsolationKey, ManualClock, Metadata,
    Registry, RegistryConfig, RegistryError, SeededEntropy, UserContext,
};

const T0: u64 = 1_764_000_000_000;

fn generator(seed: u64, now: u64) -> IdGenerator {
    IdGenerator::new(
        Arc::new(ManualClock::new(now)),
        SeededEntropy::from_seed(seed),
    )
}

/// Prefixes and operations as code writes them: `_`-joined segments starting with a
/// letter. (A prefix whose last segment is a 13-digit number is ambiguous with the
/// timestamp by construction; parse_id documents its tie-break.)
fn label() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z][a-z0-9-]{0,7}", 1..4).prop_map(|v| v.join("_"))
}

/// Free text ids: printable, non-blank, any Unicode, may contain `_` and `:`.
fn text_id() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{1,40}".prop_filter("non-blank", |s| !s.trim().is_empty())
}

fn user_id() -> impl Strategy<Value = String> {
    text_id().prop_filter("no colon", |s| !s.contains(':'))
}

proptest! {
    #[test]
    fn base_ids_round_trip(prefix in label(), random in any::<bool>(), len in 1usize..=64, now in 1_000_000_000_000u64..9_999_999_999_999, seed in any::<u64>()) {
        let g = generator(seed, now);
        let id = g.base_id(&prefix, random, len).unwrap();
        let c = parse_id(&id).unwrap();
        prop_assert_eq!(&c.prefix, &prefix);
        prop_assert_eq!(c.timestamp_ms, now);
        prop_assert_eq!(c.counter, 1);
        prop_assert_eq!(c.random.len(), if random { len } else { 0 });
        prop_assert_eq!(c.full_id, id);
    }

    #[test]
    fn context_ids_round_trip_and_correlate(user in user_id(), op in label(), seed in any::<u64>(), calls in 1usize..5) {
        let g = generator(seed, T0);
        let mut last = None;
        for n in 1..=calls as u64 {
            let ids = g.user_context_ids(&user, &op).unwrap();
            let t = parse_context_id(ids.thread_id()).unwrap();
            let r = parse_context_id(ids.run_id()).unwrap();
            let q = parse_context_id(ids.request_id()).unwrap();
            prop_assert_eq!((t.kind, r.kind, q.kind), (ContextIdKind::Thread, ContextIdKind::Run, ContextIdKind::Request));
            prop_assert_eq!(&t.operation, &op);
            prop_assert_eq!((t.counter, q.counter), (n, n + 1));
            prop_assert_eq!(&t.random, &r.random);
            prop_assert_eq!(correlation(ids.thread_id(), ids.run_id()), Some(RunFormat::Generator));
            prop_assert_eq!(thread_id_for_run(ids.run_id()).unwrap(), ids.thread_id());
            if let Some((prev_thread, prev_run)) = last.replace((ids.thread_id().to_owned(), ids.run_id().to_owned())) {
                prop_assert!(!are_correlated(&prev_thread, ids.run_id()));
                prop_assert!(!are_correlated(ids.thread_id(), &prev_run));
            }
        }
    }

    #[test]
    fn manager_run_ids_correlate_with_exactly_their_thread(thread in text_id(), other in text_id(), now in 0u64..9_999_999_999_999, seed in any::<u64>()) {
        let g = generator(seed, now);
        let run = g.manager_run_id(&thread).unwrap();
        prop_assert!(are_correlated(&thread, &run));
        prop_assert!(threadline::run_readings(&run).iter().any(|r| r.thread_id == thread));
        if other != thread {
            // Another thread is correlated only if it is another whole reading of the run.
            let readings = threadline::run_readings(&run);
            prop_assert_eq!(are_correlated(&other, &run), readings.iter().any(|r| r.thread_id == other));
        }
    }

    #[test]
    fn every_reading_is_correlated(run in "run_[a-z_0-9]{1,30}_[0-9]{1,6}_[0-9a-f]{8}") {
        for r in threadline::run_readings(&run) {
            prop_assert!(are_correlated(&r.thread_id, &run));
        }
    }

    #[test]
    fn keys_round_trip(user in user_id(), thread in text_id()) {
        let k = IsolationKey::new(&user, &thread).unwrap();
        let back = IsolationKey::parse(&k.to_string()).unwrap();
        prop_assert_eq!(back.user_id(), user.as_str());
        prop_assert_eq!(back.thread_id(), thread.as_str());
    }

    #[test]
    fn legacy_keys_give_the_whole_thread(user in "[a-z0-9]{1,12}", rest in "[a-z0-9_]{1,30}", run in "run[0-9a-z]{1,8}") {
        let thread = format!("thread_{rest}");
        let key = format!("{user}_{thread}_{run}");
        let k = IsolationKey::parse(&key).unwrap();
        prop_assert_eq!(k.user_id(), user.as_str());
        prop_assert_eq!(k.thread_id(), thread.as_str());
        prop_assert_eq!(k.to_string(), key);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,64}") {
        let _ = parse_id(&s);
        let _ = parse_context_id(&s);
        let _ = IsolationKey::parse(&s);
        let _ = threadline::run_readings(&s);
        let _ = are_correlated(&s, &s);
    }
}

// ---- registry against a plain model ------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: u8,
        thread: u8,
    },
    Cleanup {
        user: u8,
        thread: u8,
    },
    Deactivate {
        user: u8,
        thread: u8,
    },
    AddConnection {
        user: u8,
        thread: u8,
        conn: u8,
        conn_user: u8,
    },
    RemoveConnection {
        user: u8,
        thread: u8,
        conn: u8,
    },
    Send {
        user: u8,
        thread: u8,
        as_user: u8,
    },
    ForceCleanup {
        user: u8,
    },
    StaleCleanup {
        user: u8,
    },
    Expire,
    Advance {
        ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0u8..3;
    let t = 0u8..8;
    prop_oneof![
        6 => (u.clone(), t.clone()).prop_map(|(user, thread)| Op::Create { user, thread }),
        2 => (u.clone(), t.clone()).prop_map(|(user, thread)| Op::Cleanup { user, thread }),
        1 => (u.clone(), t.clone()).prop_map(|(user, thread)| Op::Deactivate { user, thread }),
        3 => (u.clone(), t.clone(), 0u8..4, u.clone()).prop_map(|(user, thread, conn, conn_user)| Op::AddConnection { user, thread, conn, conn_user }),
        1 => (u.clone(), t.clone(), 0u8..4).prop_map(|(user, thread, conn)| Op::RemoveConnection { user, thread, conn }),
        2 => (u.clone(), t.clone(), u.clone()).prop_map(|(user, thread, as_user)| Op::Send { user, thread, as_user }),
        1 => u.clone().prop_map(|user| Op::ForceCleanup { user }),
        1 => u.clone().prop_map(|user| Op::StaleCleanup { user }),
        1 => Just(Op::Expire),
        3 => (0u16..6000).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct ModelManager {
    user: String,
    created: u64,
    last: u64,
    active: bool,
    conns: Vec<(String, String)>,
}

/// The factory rules written as plainly as possible.
struct Model {
    max: usize,
    proactive: usize,
    stale_ms: u64,
    timeout_ms: u64,
    managers: BTreeMap<String, ModelManager>,
}

impl Model {
    fn user_keys(&self, user: &str) -> Vec<String> {
        self.managers
            .iter()
            .filter(|(_, m)| m.user == user)
            .map(|(k, _)| k.clone())
            .collect()
    }
    fn stale(&self, m: &ModelManager, now: u64) -> bool {
        !m.active
            || now.saturating_sub(m.last) > self.stale_ms
            || (now.saturating_sub(m.created) > self.stale_ms && m.conns.is_empty())
    }
    fn cleanup_stale(&mut self, user: &str, now: u64) -> usize {
        let doomed: Vec<String> = self
            .user_keys(user)
            .into_iter()
            .filter(|k| self.stale(&self.managers[k], now))
            .collect();
        for k in &doomed {
            self.managers.remove(k);
        }
        doomed.len()
    }
    fn create(&mut self, user: &str, key: &str, now: u64) -> Result<bool, ()> {
        if let Some(m) = self.managers.get(key) {
            if m.active {
                return Ok(true);
            }
            self.managers.remove(key);
        }
        if self.user_keys(user).len() >= self.proactive {
            self.cleanup_stale(user, now);
        }
        if self.user_keys(user).len() >= self.max {
            self.cleanup_stale(user, now);
            if self.user_keys(user).len() >= self.max {
                return Err(());
            }
        }
        self.managers.insert(
            key.to_owned(),
            ModelManager {
                user: user.to_owned(),
                created: now,
                last: now,
                active: true,
                conns: vec![],
            },
        );
        Ok(false)
    }
}

fn ctx(user: &str, thread: &str) -> UserContext {
    UserContext::builder(user, thread, format!("run_{thread}_1_abcdef12"))
        .build_with_request_id("req_model_1_abcdef12".into())
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn registry_matches_the_model(ops in prop::collection::vec(op(), 1..300)) {
        let config = RegistryConfig { max_managers_per_user: 5, ..RegistryConfig::default() };
        let mut reg = Registry::new(config.clone()).unwrap();
        let mut model = Model { max: 5, proactive: config.proactive_threshold(), stale_ms: 10_000, timeout_ms: config.connection_timeout_ms, managers: BTreeMap::new() };
        let users = ["alice", "bob", "carol"];
        let mut now = T0;
        for op in ops {
            match op {
                Op::Create { user, thread } => {
                    let (u, t) = (users[user as usize], format!("thread_{thread}"));
                    let key = format!("{u}:{t}");
                    let got = reg.create(ctx(u, &t), now);
                    let want = model.create(u, &key, now);
                    match (got, want) {
                        (Ok(c), Ok(reused)) => prop_assert_eq!(c.reused, reused),
                        (Err(RegistryError::LimitExceeded { user_id, max }), Err(())) => {
                            prop_assert_eq!(user_id, u);
                            prop_assert_eq!(max, 5);
                        }
                        (g, w) => prop_assert!(false, "create {}: registry {:?}, model {:?}", key, g, w),
                    }
                }
                Op::Cleanup { user, thread } => {
                    let key = format!("{}:thread_{thread}", users[user as usize]);
                    prop_assert_eq!(reg.cleanup(&key, now), model.managers.remove(&key).is_some());
                }
                Op::Deactivate { user, thread } => {
                    let key = format!("{}:thread_{thread}", users[user as usize]);
                    let got = reg.deactivate(&key, now).is_ok();
                    let want = match model.managers.get_mut(&key) {
                        Some(m) => { m.active = false; m.conns.clear(); true }
                        None => false,
                    };
                    prop_assert_eq!(got, want);
                }
                Op::AddConnection { user, thread, conn, conn_user } => {
                    let key = format!("{}:thread_{thread}", users[user as usize]);
                    let c = Connection { connection_id: format!("c{conn}"), user_id: users[conn_user as usize].into(), connected_ms: now, metadata: Metadata::new() };
                    let got = reg.add_connection(&key, c, now);
                    let want = match model.managers.get_mut(&key) {
                        None => "unknown",
                        Some(m) if m.user != users[conn_user as usize] => "violation",
                        Some(m) if !m.active => "inactive",
                        Some(m) => {
                            let id = format!("c{conn}");
                            m.conns.retain(|(i, _)| *i != id);
                            m.conns.push((id, users[conn_user as usize].into()));
                            m.last = m.last.max(now);
                            "ok"
                        }
                    };
                    let got_kind = match got {
                        Ok(()) => "ok",
                        Err(RegistryError::UnknownManager { .. }) => "unknown",
                        Err(RegistryError::IsolationViolation { .. }) => "violation",
                        Err(RegistryError::Inactive { .. }) => "inactive",
                        Err(_) => "other",
                    };
                    prop_assert_eq!(got_kind, want);
                }
                Op::RemoveConnection { user, thread, conn } => {
                    let key = format!("{}:thread_{thread}", users[user as usize]);
                    let id = format!("c{conn}");
                    let got = reg.remove_connection(&key, &id, now).ok();
                    let want = model.managers.get_mut(&key).map(|m| {
                        let before = m.conns.len();
                        m.conns.retain(|(i, _)| *i != id);
                        let removed = m.conns.len() != before;
                        if removed { m.last = m.last.max(now); }
                        removed
                    });
                    prop_assert_eq!(got, want);
                }
                Op::Send { user, thread, as_user } => {
                    let key = format!("{}:thread_{thread}", users[user as usize]);
                    let got = reg.send_to_user(&key, users[as_user as usize], now);
                    match model.managers.get_mut(&key) {
                        Some(m) if m.user == users[as_user as usize] && m.active => {
                            m.last = m.last.max(now);
                            let mut want: Vec<String> = m.conns.iter().map(|(i, _)| i.clone()).collect();
                            let mut got = got.unwrap();
                            want.sort();
                            got.sort();
                            prop_assert_eq!(got, want);
                        }
                        _ => prop_assert!(got.is_err()),
                    }
                }
                Op::ForceCleanup { user } => {
                    let u = users[user as usize];
                    let keys = model.user_keys(u);
                    for k in &keys { model.managers.remove(k); }
                    prop_assert_eq!(reg.force_cleanup_user(u, now), keys.len());
                }
                Op::StaleCleanup { user } => {
                    let u = users[user as usize];
                    prop_assert_eq!(reg.cleanup_stale_for_user(u, now), model.cleanup_stale(u, now));
                }
                Op::Expire => {
                    let doomed: Vec<String> = model.managers.iter().filter(|(_, m)| now.saturating_sub(m.last) > model.timeout_ms).map(|(k, _)| k.clone()).collect();
                    for k in &doomed { model.managers.remove(k); }
                    prop_assert_eq!(reg.expire_idle(now), doomed.len());
                }
                Op::Advance { ms } => now += ms as u64 * 10,
            }
            // Invariants after every step.
            let stats = reg.stats();
            prop_assert_eq!(stats.managers_registered, model.managers.len());
            prop_assert_eq!(stats.managers_created - stats.managers_cleaned_up, stats.managers_registered as u64);
            for u in users {
                let held = reg.user_count(u);
                prop_assert!(held <= 5);
                prop_assert_eq!(held, model.user_keys(u).len());
                prop_assert_eq!(reg.user_managers(u).count(), held);
                for m in reg.user_managers(u) {
                    prop_assert_eq!(m.user_id(), u);
                    prop_assert!(m.connections().iter().all(|c| c.user_id == u));
                    let mm = &model.managers[m.key()];
                    prop_assert_eq!(m.is_active(), mm.active);
                    prop_assert_eq!(m.connections().len(), mm.conns.len());
                }
            }
            let conns: usize = reg.iter().map(|(_, m)| m.connections().len()).sum();
            prop_assert_eq!(stats.connections, conns);
        }
    }
}
