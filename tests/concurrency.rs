//! `std::thread` stress on the core: the ID generator shared through `&self`, and a
//! `Registry` behind a `Mutex` (as the bindings hold it) hammered by 8 threads.
//!
//! Figures are printed with `--nocapture` and quoted in RELIABILITY.md.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use threadline::error::RegistryError;
use threadline::ids::{parse_id, IdGenerator};
use threadline::registry::{Connection, EventKind, Registry, RegistryConfig};
use threadline::{Clock, ManualClock, SeededEntropy, UserContext};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 10_000;

/// xorshift64*: a per-thread deterministic stream, no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn id_generator_from_many_threads_is_unique_and_counts_exactly() {
    const PER_THREAD: usize = 5_000;
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let g = Arc::new(IdGenerator::new(
        clock.clone(),
        SeededEntropy::from_seed(11),
    ));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (g, start) = (g.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            let mut ids = Vec::with_capacity(PER_THREAD * 3);
            let mut last_ts = 0u64;
            for i in 0..PER_THREAD {
                match (t + i) % 3 {
                    0 => {
                        let id = g.base_id("evt", i % 2 == 0, 8).unwrap();
                        let ts = parse_id(&id).unwrap().timestamp_ms;
                        assert!(ts >= last_ts, "time went back within one thread");
                        last_ts = ts;
                        ids.push(id);
                    }
                    1 => {
                        let c = g.user_context_ids("alice", "websocket_factory").unwrap();
                        ids.extend([c.thread_id(), c.run_id(), c.request_id()].map(str::to_owned));
                    }
                    _ => ids.push(g.websocket_connection_id("bob", None).unwrap()),
                }
            }
            ids
        }));
    }
    // The clock steps back and forth while the threads mint.
    let flipper = {
        let (clock, start) = (clock.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            for i in 0..2_000 {
                clock.advance(if i % 2 == 0 { 7 } else { -5 });
                thread::yield_now();
            }
        })
    };
    let mut all = HashSet::new();
    let mut minted = 0usize;
    for h in handles {
        for id in h.join().expect("minting thread") {
            minted += 1;
            assert!(all.insert(id), "duplicate id");
        }
    }
    flipper.join().unwrap();
    // Each call takes one counter value: base ids, context triples and connection ids.
    let calls = (THREADS * PER_THREAD) as u64;
    assert_eq!(g.counter(), calls, "counter is not exact");
    assert_eq!(all.len(), minted);
    println!(
        "ids: {THREADS} threads, {calls} calls, {minted} unique ids, {} clock regressions seen",
        g.clock_regressions()
    );
}

#[test]
fn clock_going_back_keeps_ids_unique_and_is_reported() {
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let g = IdGenerator::new(clock.clone(), SeededEntropy::from_seed(5));
    let mut seen = HashSet::new();
    let (mut last, mut high, mut behind, mut largest) = (0, 0, 0u64, 0u64);
    for i in 0..1_000i64 {
        // A step back of an hour every 100 ids, a millisecond forward otherwise.
        clock.advance(if i % 100 == 99 { -3_600_000 } else { 1 });
        let reading = clock.now_ms();
        if reading < high {
            behind += 1;
            largest = largest.max(high - reading);
        }
        high = high.max(reading);
        let id = g.base_id("req", false, 8).unwrap();
        let ts = parse_id(&id).unwrap().timestamp_ms;
        assert_eq!(ts, high, "ids keep the latest time seen");
        assert!(ts >= last);
        last = ts;
        assert!(seen.insert(id));
    }
    // Every read of a clock behind the latest time seen is one regression.
    assert_eq!(g.clock_regressions(), behind);
    assert!(behind > 900);
    assert_eq!(g.largest_clock_regression_ms(), largest);
    assert!(largest > 9 * 3_600_000);
}

fn context(user: &str, thread: &str) -> UserContext {
    UserContext::builder(user, thread, format!("run_{thread}"))
        .build_with_request_id(format!("req_{thread}"))
        .expect("valid fixture")
}

/// What one thread saw, to be added up against the registry's own counters.
#[derive(Default, Debug)]
struct Tally {
    created: u64,
    reused: u64,
    refused: u64,
    removed: u64,
    isolation_refused: u64,
    events_created: u64,
    events_cleaned: u64,
    ops: u64,
}

#[test]
fn registry_behind_a_mutex_never_over_admits_or_loses_a_manager() {
    let config = RegistryConfig {
        max_managers_per_user: 5,
        stale_idle_ms: 40,
        stale_unconnected_age_ms: 40,
        connection_timeout_ms: 2_000,
        ..RegistryConfig::default()
    };
    let max = config.max_managers_per_user;
    let registry = Arc::new(Mutex::new(Registry::new(config.clone()).unwrap()));
    let now = Arc::new(AtomicU64::new(1_764_000_000_000));
    let start = Arc::new(Barrier::new(THREADS));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (registry, now, start, config) =
            (registry.clone(), now.clone(), start.clone(), config.clone());
        handles.push(thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
            let mut tally = Tally::default();
            let own = format!("user{t}");
            start.wait();
            for _ in 0..OPS_PER_THREAD {
                // Most traffic races for the one hot user's last slots.
                let user = if rng.below(10) < 7 {
                    "hot"
                } else {
                    own.as_str()
                };
                let thread_id = format!("thread_{}", rng.below(12));
                let key = format!("{user}:{thread_id}");
                let at = now.fetch_add(1, Ordering::Relaxed);
                let choice = rng.below(100);
                let conn_no = rng.below(4);
                let wrong_user = rng.below(10) == 0;
                let mut r = registry.lock().unwrap();
                match choice {
                    0..=34 => {
                        let prior = r.get(&key).map(|m| m.is_active());
                        match r.create(context(user, &thread_id), at) {
                            Ok(c) if c.reused => tally.reused += 1,
                            Ok(c) => {
                                tally.created += 1;
                                tally.removed +=
                                    c.stale_cleaned as u64 + u64::from(prior == Some(false));
                            }
                            Err(RegistryError::LimitExceeded { .. }) => {
                                assert_eq!(r.user_count(user), max);
                                tally.refused += 1;
                            }
                            Err(e) => panic!("create: {e}"),
                        }
                    }
                    35..=54 => {
                        let conn_user = if wrong_user { "intruder" } else { user };
                        let before = r.get(&key).map(|m| m.connections().to_vec());
                        let res = r.add_connection(
                            &key,
                            Connection {
                                connection_id: format!("conn_{t}_{conn_no}"),
                                user_id: conn_user.to_owned(),
                                connected_ms: at,
                                metadata: Default::default(),
                            },
                            at,
                        );
                        if let Err(RegistryError::IsolationViolation { .. }) = res {
                            assert!(wrong_user);
                            assert_eq!(r.get(&key).map(|m| m.connections().to_vec()), before);
                            tally.isolation_refused += 1;
                        } else if wrong_user {
                            assert!(res.is_err(), "another user's connection was admitted");
                        }
                    }
                    55..=69 => {
                        if let Ok(to) = r.send_to_user(&key, user, at) {
                            let m = r.get(&key).unwrap();
                            assert_eq!(to.len(), m.connections().len());
                        }
                    }
                    70..=79 => tally.removed += u64::from(r.cleanup(&key, at)),
                    80..=84 => tally.removed += r.force_cleanup_user(user, at) as u64,
                    85..=89 => {
                        let _ = r.deactivate(&key, at);
                    }
                    90..=94 => {
                        let _ = r.remove_connection(&key, &format!("conn_{t}_{conn_no}"), at);
                    }
                    95..=97 => tally.removed += r.cleanup_stale_for_user(user, at) as u64,
                    _ => tally.removed += r.expire_idle(at) as u64,
                }
                for e in r.drain_events() {
                    match e.kind {
                        EventKind::Created => tally.events_created += 1,
                        EventKind::CleanedUp { .. } => tally.events_cleaned += 1,
                        _ => {}
                    }
                }
                checks::check_registry(&r, &config);
                tally.ops += 1;
            }
            tally
        }));
    }
    let tallies: Vec<Tally> = handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect();
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let r = registry.lock().unwrap();
    let s = r.stats();
    assert_eq!(sum(|t| t.ops), (THREADS * OPS_PER_THREAD) as u64);
    assert_eq!(s.managers_created, sum(|t| t.created));
    assert_eq!(s.managers_reused, sum(|t| t.reused));
    assert_eq!(s.limit_hits, sum(|t| t.refused));
    assert_eq!(
        s.managers_cleaned_up,
        sum(|t| t.removed),
        "a removal went unreported"
    );
    assert_eq!(s.isolation_violations, sum(|t| t.isolation_refused));
    assert_eq!(sum(|t| t.events_created), s.managers_created);
    assert_eq!(sum(|t| t.events_cleaned), s.managers_cleaned_up);
    assert_eq!(
        s.managers_created - s.managers_cleaned_up,
        r.len() as u64,
        "created - cleaned != registered"
    );
    // The race was real: the hot user was refused at its limit many times.
    assert!(sum(|t| t.refused) > 100, "{:?}", s);
    println!(
        "registry: {THREADS} threads x {OPS_PER_THREAD} ops; created {}, reused {}, refused at the limit {}, cleaned {}, isolation refusals {}, held at the end {}",
        s.managers_created,
        s.managers_reused,
        s.limit_hits,
        s.managers_cleaned_up,
        s.isolation_violations,
        r.len()
    );
}

/// Many threads released at once for the last free slots of one user: exactly the free
/// slots are admitted, every other create is refused, round after round.
#[test]
fn racing_for_the_last_slots_admits_exactly_the_free_ones() {
    const ROUNDS: usize = 200;
    let config = RegistryConfig {
        max_managers_per_user: 5,
        ..RegistryConfig::default()
    };
    let registry = Arc::new(Mutex::new(Registry::new(config.clone()).unwrap()));
    let mut admitted_total = 0;
    for round in 0..ROUNDS {
        let held = round % 5; // 0 to 4 slots already taken
        {
            let mut r = registry.lock().unwrap();
            r.force_cleanup_user("hot", 0);
            for i in 0..held {
                r.create(context("hot", &format!("thread_held_{i}")), 0)
                    .unwrap();
            }
        }
        let start = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (registry, start) = (registry.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let c = context("hot", &format!("thread_r{round}_{t}"));
                    let res = registry.lock().unwrap().create(c, 1);
                    match res {
                        Ok(c) => {
                            assert!(!c.reused);
                            true
                        }
                        Err(RegistryError::LimitExceeded { .. }) => false,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&a| a)
            .count();
        let r = registry.lock().unwrap();
        assert_eq!(admitted, 5 - held, "round {round}");
        assert_eq!(r.user_count("hot"), 5);
        checks::check_registry(&r, &config);
        admitted_total += admitted;
    }
    println!(
        "last slots: {ROUNDS} rounds x {THREADS} threads, {admitted_total} admitted, {} refused",
        ROUNDS * THREADS - admitted_total
    );
}
