//! Bad input at the core's edges: each gets its documented error, with a short message,
//! and leaves every piece of state as it was.
//!
//! NUL and control characters, 10 MB strings, `:` in a user id, huge numbers for limits
//! and times, a clock that goes backwards, reports truncated, of the wrong schema
//! version, over the size limit or absurdly nested.

use std::sync::Arc;

use threadline::context::{ContextBuilder, Metadata, ValidationRules};
use threadline::error::{ContextError, IdError, KeyError, RegistryError, ReportError};
use threadline::ids::{
    id_age_ms, is_valid_id, parse_context_id, parse_id, run_readings, IdGenerator,
};
use threadline::key::IsolationKey;
use threadline::registry::{Connection, Registry, RegistryConfig};
use threadline::session::SessionStore;
use threadline::tracker::{Comparison, ReportLimits, SnapshotInput, Tracker};
use threadline::{ManualClock, SeededEntropy, UserContext};

const T0: u64 = 1_764_000_000_000;
const TEN_MB: usize = 10 * 1024 * 1024;

fn ids() -> (IdGenerator, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (
        IdGenerator::new(clock.clone(), SeededEntropy::from_seed(9)),
        clock,
    )
}

fn builder(user: &str, thread: &str, run: &str) -> ContextBuilder {
    UserContext::builder(user, thread, run)
}

/// Error messages quote at most 64 characters of a value, whatever its size.
fn short(e: &dyn std::fmt::Display) -> String {
    let m = e.to_string();
    assert!(m.len() < 1024, "message of {} bytes", m.len());
    m
}

fn huge(c: char) -> String {
    std::iter::repeat_n(c, TEN_MB).collect()
}

// ---- strings -----------------------------------------------------------------------

#[test]
fn nul_and_control_characters_are_refused_everywhere() {
    let (g, _) = ids();
    for bad in [
        "a\0b",
        "bell\x07",
        "tab\there",
        "line\nfeed",
        "del\x7f",
        "c1\u{85}x",
    ] {
        let e = builder(bad, "thread_a", "run_a")
            .build_with_request_id("req_a_1_abcdef12".into())
            .unwrap_err();
        assert!(
            matches!(
                e,
                ContextError::ControlCharacter {
                    field: "user_id",
                    ..
                }
            ),
            "{bad:?}: {e:?}"
        );
        assert!(short(&e).contains("control character"));
        let e = builder("alice", bad, "run_a")
            .build_with_request_id("req_a_1_abcdef12".into())
            .unwrap_err();
        assert!(matches!(
            e,
            ContextError::ControlCharacter {
                field: "thread_id",
                ..
            }
        ));
        // Shown escaped, never raw.
        assert!(!short(&e).contains('\0'));
        assert!(matches!(
            IsolationKey::new("alice", bad),
            Err(KeyError::Part(ContextError::ControlCharacter { .. }))
        ));
        assert!(matches!(
            IsolationKey::parse(&format!("alice:{bad}")),
            Err(KeyError::Unparsable { .. })
        ));
        assert!(matches!(
            g.websocket_client_id(bad, None),
            Err(IdError::InvalidPart {
                what: "user_id",
                ..
            })
        ));
        assert!(g.base_id(bad, true, 8).is_err());
        assert!(g.user_context_ids("alice", bad).is_err());
        assert!(
            parse_id(&format!("{bad}_1764000000000_1")).is_ok(),
            "a prefix is free text"
        );
    }
    // None of the refused calls took a counter value.
    assert_eq!(g.counter(), 0);
}

#[test]
fn ten_megabyte_strings_are_refused_quickly_with_short_messages() {
    let (g, _) = ids();
    let big = huge('x');
    let start = std::time::Instant::now();
    let e = builder(big.as_str(), "thread_a", "run_a")
        .build_with_request_id("req".into())
        .unwrap_err();
    assert!(
        matches!(e, ContextError::TooLong { field: "user_id", len, max: 1024 } if len == TEN_MB)
    );
    short(&e);
    let e = builder("alice", "thread_a", "run_a")
        .build_with_request_id(big.clone())
        .unwrap_err();
    assert!(matches!(
        e,
        ContextError::TooLong {
            field: "request_id",
            ..
        }
    ));
    let e = builder("alice", "thread_a", "run_a")
        .websocket_client_id(Some(big.clone()))
        .build_with_request_id("req_a".into())
        .unwrap_err();
    assert!(matches!(
        e,
        ContextError::TooLong {
            field: "websocket_client_id",
            ..
        }
    ));
    assert!(matches!(
        IsolationKey::parse(&big),
        Err(KeyError::TooLong { .. })
    ));
    assert!(matches!(
        IsolationKey::new("alice", &big),
        Err(KeyError::Part(ContextError::TooLong { .. }))
    ));
    short(&parse_id(&big).unwrap_err());
    short(&parse_context_id(&format!("thread_{big}")).unwrap_err());
    assert!(run_readings(&format!("run_{big}")).is_empty());
    assert!(!is_valid_id(&big, None, T0));
    assert!(matches!(
        g.manager_run_id(&big),
        Err(IdError::InvalidPart { .. })
    ));
    short(&g.websocket_client_id(&big, None).unwrap_err());
    // Multi-byte characters: the message is cut on a character boundary.
    let wide = huge('é');
    short(
        &builder(wide.as_str(), "t", "r")
            .build_with_request_id("q".into())
            .unwrap_err(),
    );
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    assert_eq!(g.counter(), 0);
}

#[test]
fn colon_in_a_user_id_is_refused_where_it_would_split_a_key() {
    let (g, _) = ids();
    let e = builder("alice:admin", "thread_a", "run_a")
        .build_with_request_id("req_a".into())
        .unwrap_err();
    assert!(matches!(e, ContextError::ColonInUserId { .. }));
    assert!(short(&e).contains("':'"));
    assert!(matches!(
        IsolationKey::new("alice:admin", "thread_a"),
        Err(KeyError::Part(ContextError::ColonInUserId { .. }))
    ));
    // In a key string the first ':' ends the user, so the rest is the whole thread.
    let k = IsolationKey::parse("alice:admin:thread_a").unwrap();
    assert_eq!((k.user_id(), k.thread_id()), ("alice", "admin:thread_a"));
    assert!(g.user_context_ids("alice:admin", "op").is_err());
    assert!(
        UserContext::for_websocket(&g, "a:b", "op", None, ValidationRules::PRODUCTION).is_err()
    );
    let mut sessions = SessionStore::new(ValidationRules::PRODUCTION);
    assert!(sessions
        .get_or_create(&g, "a:b", None, None, "session", T0)
        .is_err());
    assert_eq!(sessions.active_count(), 0);
    assert_eq!(g.counter(), 0);
}

// ---- numbers and time --------------------------------------------------------------

#[test]
fn huge_and_zero_limits_are_refused() {
    for (max, pct) in [
        (0, 60),
        (usize::MAX, 60),
        (1_000_001, 60),
        (20, 101),
        (20, 255),
    ] {
        let e = Registry::new(RegistryConfig {
            max_managers_per_user: max,
            proactive_cleanup_percent: pct,
            ..RegistryConfig::default()
        })
        .unwrap_err();
        assert!(matches!(e, RegistryError::Config { .. }), "{e:?}");
        short(&e);
    }
    let (g, _) = ids();
    assert!(matches!(
        g.base_id("x", true, 0),
        Err(IdError::RandomLength { value: 0 })
    ));
    assert!(matches!(
        g.base_id("x", true, usize::MAX),
        Err(IdError::RandomLength { .. })
    ));
    assert!(matches!(
        g.batch_ids("x", usize::MAX, true),
        Err(IdError::BatchCount { .. })
    ));
    for ts in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        1e300,
        f64::MAX,
    ] {
        assert!(
            matches!(
                g.websocket_client_id("alice", Some(ts)),
                Err(IdError::Timestamp { .. })
            ),
            "{ts}"
        );
    }
    let e = builder("alice", "thread_a", "run_a")
        .operation_depth(u64::MAX)
        .build_with_request_id("req_a".into())
        .unwrap_err();
    assert!(matches!(
        e,
        ContextError::Depth {
            value: u64::MAX,
            ..
        }
    ));
    assert!(matches!(
        Tracker::bounded(0, 0),
        Err(ReportError::Capacity { value: 0 })
    ));
    assert_eq!(g.counter(), 0);
}

#[test]
fn extreme_times_never_overflow() {
    // Largest thresholds and times at both ends of u64.
    let mut r = Registry::new(RegistryConfig {
        max_managers_per_user: 1_000_000,
        stale_idle_ms: u64::MAX,
        stale_unconnected_age_ms: u64::MAX,
        connection_timeout_ms: u64::MAX,
        ..RegistryConfig::default()
    })
    .unwrap();
    let c = builder("alice", "thread_a", "run_a")
        .build_with_request_id("req_a".into())
        .unwrap();
    r.create(c.clone(), u64::MAX).unwrap();
    r.create(c, 0).unwrap(); // reused: time going back does not matter
    assert_eq!(r.expire_idle(0), 0);
    assert_eq!(r.expire_idle(u64::MAX), 0);
    assert_eq!(r.cleanup_stale_for_user("alice", u64::MAX), 0);
    r.touch("alice:thread_a", 0).unwrap();
    assert_eq!(
        r.get("alice:thread_a").unwrap().last_activity_ms(),
        u64::MAX
    );
    // The id helpers at the ends of u64.
    assert_eq!(id_age_ms("x_1_2", u64::MAX).unwrap(), i64::MAX);
    assert_eq!(id_age_ms("x_18446744073709551615_2", 0).unwrap(), i64::MIN);
    assert_eq!(id_age_ms("x_5_2", 2).unwrap(), -3);
    assert!(!is_valid_id("x_1_2", None, u64::MAX));
    assert!(is_valid_id("x_18446744073709551615_2", None, u64::MAX));
    let mut tr = Tracker::new(u64::MAX);
    tr.take_snapshot(SnapshotInput::new("op").cleanup_lookup("t"), 0)
        .unwrap();
    assert_eq!(tr.analyze(0).analysis_duration, 0.0);
    assert!(Tracker::from_json(&tr.to_json(u64::MAX), ReportLimits::default()).is_ok());
}

#[test]
fn a_clock_going_backwards_keeps_ids_unique_and_is_counted() {
    let (g, clock) = ids();
    let a = g.websocket_connection_id("alice", None).unwrap();
    clock.set(0);
    let b = g.websocket_connection_id("alice", None).unwrap();
    clock.advance(-1); // stays at 0
    let c = g.session_id("alice", "web").unwrap();
    assert!(a != b && b != c);
    for id in [&a, &b, &c] {
        assert_eq!(parse_id(id).unwrap().timestamp_ms, T0, "{id}");
    }
    assert_eq!(g.clock_regressions(), 2);
    assert_eq!(g.largest_clock_regression_ms(), T0);
    clock.set(T0 + 5);
    let d = g.base_id("x", false, 8).unwrap();
    assert_eq!(parse_id(&d).unwrap().timestamp_ms, T0 + 5);
    assert_eq!(g.clock_regressions(), 2);
}

// ---- state is left as it was ---------------------------------------------------------

fn registry_with_one_manager() -> Registry {
    let mut r = Registry::new(RegistryConfig {
        max_managers_per_user: 1,
        ..RegistryConfig::default()
    })
    .unwrap();
    let c = builder("alice", "thread_a", "run_a")
        .build_with_request_id("req_a".into())
        .unwrap();
    r.create(c, T0).unwrap();
    r.add_connection(
        "alice:thread_a",
        Connection {
            connection_id: "conn_1".into(),
            user_id: "alice".into(),
            connected_ms: T0,
            metadata: Metadata::new(),
        },
        T0,
    )
    .unwrap();
    r.drain_events();
    r
}

/// Everything observable about a registry, to compare before and after a refused call.
fn fingerprint(r: &Registry) -> String {
    let mut managers: Vec<String> = r
        .iter()
        .map(|(k, m)| {
            format!(
                "{k} {:?} {} {} {:?}",
                m.id(),
                m.is_active(),
                m.last_activity_ms(),
                m.connections()
            )
        })
        .collect();
    managers.sort();
    format!("{managers:?} {:?}", r.user_counts())
}

#[test]
fn refused_registry_calls_change_nothing() {
    let mut r = registry_with_one_manager();
    let before = fingerprint(&r);
    let stats = r.stats();
    let conn = |id: &str, user: &str| Connection {
        connection_id: id.into(),
        user_id: user.into(),
        connected_ms: T0,
        metadata: Metadata::new(),
    };
    let big = huge('c');
    for (id, user) in [
        ("conn\0x", "alice"),
        ("", "alice"),
        ("  ", "alice"),
        (big.as_str(), "alice"),
    ] {
        let e = r
            .add_connection("alice:thread_a", conn(id, user), T0 + 1)
            .unwrap_err();
        assert!(matches!(e, RegistryError::Context(_)), "{e:?}");
        short(&e);
    }
    let e = r
        .add_connection("alice:thread_a", conn("conn_2", "mallory"), T0 + 1)
        .unwrap_err();
    assert!(matches!(e, RegistryError::IsolationViolation { .. }));
    assert!(r.send_to_user("alice:thread_a", "mallory", T0 + 1).is_err());
    for key in [
        "",
        "\0",
        ":",
        big.as_str(),
        "alice:thread_b",
        "alice_thread_a",
    ] {
        assert!(matches!(
            r.add_connection(key, conn("conn_3", "alice"), T0 + 1),
            Err(RegistryError::UnknownManager { .. })
        ));
        assert!(r.touch(key, T0 + 1).is_err());
        assert!(!r.cleanup(key, T0 + 1));
    }
    // At the limit with a fresh, connected manager: refused.
    let other = builder("alice", "thread_b", "run_b")
        .build_with_request_id("req_b".into())
        .unwrap();
    assert!(matches!(
        r.create(other, T0 + 1),
        Err(RegistryError::LimitExceeded { max: 1, .. })
    ));
    assert_eq!(fingerprint(&r), before);
    let after = r.stats();
    // Only the documented counters of refusals moved.
    assert_eq!(after.isolation_violations, stats.isolation_violations + 2);
    assert_eq!(after.limit_hits, stats.limit_hits + 1);
    assert_eq!(
        (
            after.managers_created,
            after.managers_cleaned_up,
            after.connections
        ),
        (
            stats.managers_created,
            stats.managers_cleaned_up,
            stats.connections
        )
    );
}

#[test]
fn refused_tracker_calls_change_nothing() {
    let mut tr = Tracker::new(T0);
    tr.take_snapshot(
        SnapshotInput::new("manager_creation").isolation_key("alice:thread_a"),
        T0,
    )
    .unwrap();
    let before = tr.to_json(T0);
    let long_op = "o".repeat(257);
    for op in ["", long_op.as_str()] {
        assert!(tr.take_snapshot(SnapshotInput::new(op), T0).is_err());
        assert!(tr
            .record_violation(op, "WARNING", None, Metadata::new(), T0)
            .is_err());
    }
    let big = huge('v');
    let e = tr
        .record_violation("custom", &big, None, Metadata::new(), T0)
        .unwrap_err();
    assert!(matches!(e, ReportError::TooLong { .. }));
    short(&e);
    assert_eq!(tr.to_json(T0), before);
    // An unparsable 10 MB key is recorded, and the violation's message stays short.
    let out = tr
        .take_snapshot(SnapshotInput::new("op").isolation_key(&big), T0)
        .unwrap();
    let v = &tr.violations()[out.violations[0] as usize];
    assert!(v.details["error"].as_str().unwrap().len() < 1024);
}

// ---- reports -----------------------------------------------------------------------

fn sample_report() -> String {
    let mut tr = Tracker::new(T0);
    for (i, (u, t)) in [
        ("alice", "thread_a"),
        ("alice", "thread_b"),
        ("bob", "thread_c"),
    ]
    .iter()
    .enumerate()
    {
        tr.take_snapshot(
            SnapshotInput {
                operation: "manager_creation",
                user_id: Some(u),
                user_context_thread_id: Some(t),
                manager_thread_id: Some("thread_a"),
                isolation_key: Some(&format!("{u}:{t}")),
                ..Default::default()
            },
            T0 + i as u64,
        )
        .unwrap();
    }
    tr.to_json(T0 + 10)
}

#[test]
fn a_truncated_report_is_a_json_error_at_every_cut() {
    let j = sample_report();
    let lim = ReportLimits::default();
    assert!(Tracker::from_json(&j, lim).is_ok());
    for cut in 0..j.len() {
        if !j.is_char_boundary(cut) {
            continue;
        }
        match Tracker::from_json(&j[..cut], lim) {
            Err(ReportError::Json(m)) => assert!(m.len() < 1024),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_report_of_another_schema_version_is_refused() {
    let j = sample_report();
    let lim = ReportLimits::default();
    for (schema, found) in [
        ("\"threadline.report/2\"", "\"threadline.report/2\""),
        ("\"threadline.report/0\"", "\"threadline.report/0\""),
        ("\"THREADLINE.REPORT/1\"", "\"THREADLINE.REPORT/1\""),
        ("null", "missing"),
    ] {
        let other = j.replacen("\"threadline.report/1\"", schema, 1);
        match Tracker::from_json(&other, lim) {
            Err(ReportError::Schema { found: f }) => {
                assert!(f.contains(found.trim_matches('"')), "{f} / {found}")
            }
            r => panic!("{schema}: {r:?}"),
        }
    }
    let no_schema = j.replacen("\"schema\":\"threadline.report/1\",", "", 1);
    assert!(matches!(
        Tracker::from_json(&no_schema, lim),
        Err(ReportError::Schema { .. })
    ));
    // Right schema, wrong shape: a field error, not a panic.
    let e =
        Tracker::from_json(r#"{"schema":"threadline.report/1","snapshots":7}"#, lim).unwrap_err();
    assert!(matches!(e, ReportError::Json(_)), "{e:?}");
    let e =
        Tracker::from_json(&j.replacen("\"capacity\":null", "\"capacity\":0", 1), lim).unwrap_err();
    assert!(matches!(e, ReportError::Capacity { value: 0 }), "{e:?}");
}

#[test]
fn reports_over_the_size_limit_are_refused_before_parsing() {
    assert_eq!(ReportLimits::default().max_bytes, 256 * 1024 * 1024);
    let j = sample_report();
    let at = |max_bytes| ReportLimits {
        max_bytes,
        ..ReportLimits::default()
    };
    assert!(Tracker::from_json(&j, at(j.len())).is_ok());
    assert_eq!(
        Tracker::from_json(&j, at(j.len() - 1)).unwrap_err(),
        ReportError::TooLarge {
            len: j.len(),
            max: j.len() - 1
        }
    );
    // 10 MB of garbage against a 1 MB limit: refused on its length alone, quickly.
    let big = huge('[');
    let start = std::time::Instant::now();
    assert!(matches!(
        Tracker::from_json(&big, at(1024 * 1024)),
        Err(ReportError::TooLarge { .. })
    ));
    assert!(start.elapsed().as_millis() < 500);
}

#[test]
fn absurdly_nested_reports_are_refused_before_parsing() {
    let lim = ReportLimits::default();
    let deep = huge('[');
    assert!(matches!(
        Tracker::from_json(&deep, lim),
        Err(ReportError::TooDeep { depth, max: 64 }) if depth == TEN_MB
    ));
    let objects = "{\"a\":".repeat(100_000);
    assert!(matches!(
        Tracker::from_json(&objects, lim),
        Err(ReportError::TooDeep { .. })
    ));
    // Nesting inside a valid report's metadata counts too.
    let j = sample_report();
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let with_deep_meta = j.replacen(
        "\"metadata\":{}",
        &format!("\"metadata\":{{\"x\":{nested}}}"),
        1,
    );
    assert_ne!(with_deep_meta, j);
    assert!(matches!(
        Tracker::from_json(&with_deep_meta, lim),
        Err(ReportError::TooDeep { .. })
    ));
    // Brackets inside strings are text, not nesting.
    let in_string = j.replacen(
        "\"operation\":\"manager_creation\"",
        &format!("\"operation\":\"{}\"", "[".repeat(200)),
        1,
    );
    let loaded = Tracker::from_json(&in_string, lim).expect("brackets in a string are text");
    assert_eq!(&*loaded.snapshots()[0].operation, "[".repeat(200));
    // Exactly at the limit is allowed as far as depth goes.
    let at_limit = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(matches!(
        Tracker::from_json(&at_limit, lim),
        Err(ReportError::Json(_))
    ));
}

/// `from_json` of `j` with `from` replaced by `to` (which must change the text).
fn forged(j: &str, from: &str, to: &str) -> Result<Tracker, ReportError> {
    let f = j.replacen(from, to, 1);
    assert_ne!(f, j, "{from} not found");
    Tracker::from_json(&f, ReportLimits::default())
}

fn field_error(r: Result<Tracker, ReportError>) -> (String, String) {
    match r {
        Err(ReportError::Field { field, problem }) => (field, problem),
        other => panic!("expected a field error: {:?}", other.map(|t| t.to_json(0))),
    }
}

#[test]
fn reports_whose_lists_and_totals_disagree_are_refused() {
    // Unbounded: every snapshot kept, numbered 0.. without gaps.
    let j = sample_report();
    let (f, p) = field_error(forged(&j, "\"index\":1,", "\"index\":2,"));
    assert_eq!(f, "snapshots[1].index");
    assert!(p.starts_with("2 follows 0: expected 1 "), "{p}");
    let (f, p) = field_error(forged(&j, "\"total_snapshots\":3", "\"total_snapshots\":4"));
    assert_eq!(f, "analysis.total_snapshots");
    assert_eq!(
        p,
        "4 counted and 3 in snapshots: an unbounded tracker keeps every one"
    );
    let (f, p) = field_error(forged(
        &j,
        "\"total_snapshots\":3",
        "\"total_snapshots\":18446744073709551615",
    ));
    assert_eq!(f, "analysis.total_snapshots");
    assert_eq!(
        p,
        "18446744073709551615: expected at most 9007199254740991 (2^53-1)"
    );
    // Indexes that would wrap: refused, never an overflow.
    let mut one = Tracker::new(T0);
    one.take_snapshot(SnapshotInput::new("op"), T0).unwrap();
    let j1 = one.to_json(T0);
    let max = u64::MAX.to_string();
    let both = j1
        .replacen("\"index\":0", &format!("\"index\":{max}"), 1)
        .replacen(
            "\"total_snapshots\":1",
            &format!("\"total_snapshots\":{max}"),
            1,
        );
    assert!(matches!(
        Tracker::from_json(&both, ReportLimits::default()),
        Err(ReportError::Field { .. })
    ));
    let (f, p) = field_error(forged(&j1, "\"index\":0", "\"index\":5"));
    assert_eq!(f, "snapshots[0].index");
    assert_eq!(p, "5, but snapshots holds the last 1 of 1: expected 0");

    // Bounded: the last min(capacity, total) kept, numbered up to total - 1.
    let mut b = Tracker::bounded(T0, 2).unwrap();
    for (i, t) in ["thread_a", "thread_b", "thread_b", "thread_c"]
        .iter()
        .enumerate()
    {
        b.take_snapshot(
            SnapshotInput {
                operation: "manager_creation",
                user_id: Some("alice"),
                user_context_thread_id: Some("thread_a"),
                manager_thread_id: Some(t),
                ..Default::default()
            },
            T0 + i as u64,
        )
        .unwrap();
    }
    let jb = b.to_json(T0 + 9);
    let back = Tracker::from_json(&jb, ReportLimits::default()).unwrap();
    assert_eq!(back.to_json(T0 + 9), jb);
    assert!(jb.contains("\"total_snapshots\":4"), "{jb}");
    assert!(jb.contains("\"inconsistent_snapshots\":3"), "{jb}");
    assert!(jb.contains("\"first_divergence\":1"), "{jb}");
    let (f, p) = field_error(forged(
        &jb,
        "\"total_snapshots\":4",
        "\"total_snapshots\":5",
    ));
    assert_eq!(f, "snapshots[0].index");
    assert_eq!(p, "2, but snapshots holds the last 2 of 5: expected 3");
    let (f, p) = field_error(forged(&jb, "\"capacity\":2", "\"capacity\":3"));
    assert_eq!(f, "analysis.total_snapshots");
    assert_eq!(
        p,
        "4 counted and 2 in snapshots: a tracker of capacity 3 keeps the last 3"
    );
    let (f, p) = field_error(forged(
        &jb,
        "\"inconsistent_snapshots\":3",
        "\"inconsistent_snapshots\":99",
    ));
    assert_eq!(f, "analysis.inconsistent_snapshots");
    assert_eq!(
        p,
        "99: expected from 2 (the retained snapshots with a mismatch) to 4 (total_snapshots)"
    );
    let (f, _) = field_error(forged(
        &jb,
        "\"inconsistent_snapshots\":3",
        "\"inconsistent_snapshots\":1",
    ));
    assert_eq!(f, "analysis.inconsistent_snapshots");
    for bad in ["18446744073709551615", "4", "3"] {
        let (f, _) = field_error(forged(
            &jb,
            "\"first_divergence\":1",
            &format!("\"first_divergence\":{bad}"),
        ));
        assert_eq!(f, "analysis.first_divergence", "{bad}");
    }
    let (f, _) = field_error(forged(
        &jb,
        "\"first_divergence\":1",
        "\"first_divergence\":null",
    ));
    assert_eq!(f, "analysis.first_divergence");
    let (f, p) = field_error(forged(
        &jb,
        "\"last_consistent_before_divergence\":0",
        "\"last_consistent_before_divergence\":1",
    ));
    assert_eq!(f, "analysis.last_consistent_before_divergence");
    assert_eq!(p, "1: expected an index below first_divergence");
    let (f, p) = field_error(forged(
        &jb,
        "\"manager_creation\":3}",
        "\"manager_creation\":2}",
    ));
    assert_eq!(f, "analysis.operation_violations");
    assert_eq!(
        p,
        "2 violations counted by operation: expected 3 (total_violations)"
    );
    // A good bounded file carries on: the next snapshot is numbered after the totals.
    let mut back = back;
    let out = back
        .take_snapshot(SnapshotInput::new("op"), T0 + 10)
        .unwrap();
    assert_eq!(out.index, 4);
    assert_eq!(back.snapshots().back().map(|s| s.index), Some(4));
}

#[test]
fn metadata_too_deep_for_a_report_is_refused() {
    let nested = |levels: usize| {
        // `levels` objects, the metadata object itself counted.
        let mut v = serde_json::json!(1);
        for _ in 0..levels {
            v = serde_json::json!({ "x": v });
        }
        match v {
            serde_json::Value::Object(m) => m.into_iter().collect::<Metadata>(),
            _ => Metadata::from([("x".to_owned(), v)]),
        }
    };
    let max = threadline::tracker::MAX_METADATA_DEPTH;
    let mut tr = Tracker::new(T0);
    tr.take_snapshot(SnapshotInput::new("deep").metadata(nested(max)), T0)
        .unwrap();
    tr.record_violation("custom", "WARNING", None, nested(max), T0)
        .unwrap();
    // At the limit, the tracker's own report reads back.
    let j = tr.to_json(T0);
    let back = Tracker::from_json(&j, ReportLimits::default()).unwrap();
    assert_eq!(back.to_json(T0), j);
    let before = tr.to_json(T0);
    let e = tr
        .take_snapshot(SnapshotInput::new("deep").metadata(nested(max + 1)), T0)
        .unwrap_err();
    assert_eq!(e.kind(), "report.metadata_too_deep");
    assert_eq!(
        e.to_string(),
        "metadata nests more than 61 levels deep: expected at most 61, so that a report holding it can be read back"
    );
    let e = tr
        .record_violation("custom", "WARNING", None, nested(200), T0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "details nests more than 61 levels deep: expected at most 61, so that a report holding it can be read back"
    );
    assert_eq!(tr.to_json(T0), before);
}

#[test]
fn empty_names_are_refused_naming_the_field() {
    let mut tr = Tracker::new(T0);
    let e = tr
        .record_violation("", "CRITICAL", None, Metadata::new(), T0)
        .unwrap_err();
    assert_eq!(e.kind(), "report.empty");
    assert_eq!(
        e.to_string(),
        "violation type is empty: expected a name such as \"thread_id_mismatch\""
    );
    let e = tr
        .record_violation("custom", "", None, Metadata::new(), T0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "severity is empty: expected a name such as \"CRITICAL\""
    );
    let e = tr.take_snapshot(SnapshotInput::new(""), T0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "operation is empty: expected a name such as \"manager_creation\""
    );
}

#[test]
fn refused_session_calls_change_nothing() {
    let (g, _) = ids();
    let mut store = SessionStore::new(ValidationRules::PRODUCTION);
    // A bad websocket client id is refused before a session is made or an id minted.
    let e = store
        .context(
            &g,
            "user123",
            None,
            None,
            "session",
            Some("bad\nws".into()),
            T0,
        )
        .unwrap_err();
    assert_eq!(e.kind(), "context.control_character");
    assert_eq!((store.active_count(), g.counter()), (0, 0));
    // A thread id too long to derive a run id from is refused up front, by name.
    let long = format!("thread_{}", "a".repeat(1010));
    let e = store
        .get_or_create(&g, "user123", Some(&long), None, "session", T0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "thread_id is 1017 bytes long: expected at most 1005"
    );
    assert_eq!((store.active_count(), g.counter()), (0, 0));
    // The longest that fits makes a session whose context builds.
    let fits = format!("thread_{}", "a".repeat(998));
    let c = store
        .context(&g, "user123", Some(&fits), None, "session", None, T0)
        .unwrap();
    assert_eq!(c.thread_id(), fits);
    assert!(c.run_id().len() <= 1024, "{}", c.run_id().len());
    // With its own run id, a thread id may take the whole limit.
    let whole = format!("thread_{}", "b".repeat(1017));
    assert!(store
        .context(
            &g,
            "user123",
            Some(&whole),
            Some("run_1"),
            "session",
            None,
            T0
        )
        .is_ok());
}

#[test]
fn long_numbers_and_names_in_messages_are_cut() {
    // A million-digit number in a report: the message quotes 64 characters of it.
    let j = sample_report();
    let digits = "9".repeat(1_000_000);
    for e in [
        forged(
            &j,
            "\"started_at_ms\":",
            &format!("\"started_at_ms\":{digits}0,\"x\":"),
        ),
        forged(
            &j,
            "\"consistency_score\":",
            &format!("\"consistency_score\":1{digits}e9999,\"x\":"),
        ),
    ] {
        let e = e.map(|_| ()).unwrap_err().to_string();
        assert!(
            e.len() < 300,
            "{} bytes: {}",
            e.len(),
            &e[..300.min(e.len())]
        );
        assert!(e.contains(&format!("{}… (100000", "9".repeat(63))), "{e}");
    }
    // A bounded report naming a 1 MB thread id its thread list lacks.
    let mut b = Tracker::bounded(T0, 1).unwrap();
    for t in ["thread_a", "thread_b"] {
        b.take_snapshot(
            SnapshotInput {
                operation: "op",
                user_id: Some("alice"),
                user_context_thread_id: Some(t),
                ..Default::default()
            },
            T0,
        )
        .unwrap();
    }
    let jb = b.to_json(T0);
    let big = "t".repeat(1_000_000);
    let e = forged(
        &jb,
        "[\"thread_a\",\"thread_b\"]}",
        &format!("[\"thread_a\",\"{big}\"]}}"),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    // Netra's limit message keeps a user id of up to 64 characters whole, and cuts a longer one.
    let e = RegistryError::LimitExceeded {
        user_id: "u".repeat(1001),
        max: 20,
    }
    .to_string();
    assert_eq!(
        e,
        format!(
            "User {}… (1001 bytes) has reached the maximum number of WebSocket managers (20).",
            "u".repeat(64)
        )
    );
    let e = RegistryError::LimitExceeded {
        user_id: "user123".into(),
        max: 20,
    };
    assert_eq!(
        e.to_string(),
        "User user123 has reached the maximum number of WebSocket managers (20)."
    );
}

#[test]
fn violation_names_in_a_report_follow_record_violations_rule() {
    let mut tr = Tracker::new(T0);
    tr.record_violation("custom", "WARNING", Some("op"), Metadata::new(), T0)
        .unwrap();
    let j = tr.to_json(T0);
    let (f, p) = field_error(forged(&j, "\"severity\":\"WARNING\"", "\"severity\":\"\""));
    assert_eq!(f, "violations[0].severity");
    assert_eq!(p, "severity is empty: expected a name such as \"CRITICAL\"");
    let (f, _) = field_error(forged(&j, "\"operation\":\"op\"", "\"operation\":\"\""));
    assert_eq!(f, "violations[0].operation");
    let long = "s".repeat(257);
    let (f, p) = field_error(forged(
        &j,
        "\"severity\":\"WARNING\"",
        &format!("\"severity\":\"{long}\""),
    ));
    assert_eq!(f, "violations[0].severity");
    assert_eq!(p, "severity is 257 bytes long: expected at most 256");
    assert!(forged(&j, "\"operation\":\"op\"", "\"operation\":null").is_ok());
}

#[test]
fn comparing_analyses_with_huge_counts_saturates() {
    let small = Tracker::new(T0).analyze(T0);
    let mut huge = small.clone();
    huge.total_violations = u64::MAX;
    huge.inconsistent_snapshots = u64::MAX;
    let up = Comparison::between(&small, &huge);
    assert_eq!(
        (up.violations_delta, up.inconsistent_delta),
        (i64::MAX, i64::MAX)
    );
    let down = Comparison::between(&huge, &small);
    assert_eq!(
        (down.violations_delta, down.inconsistent_delta),
        (-i64::MAX, -i64::MAX)
    );
    let mut near = small.clone();
    near.total_violations = 5;
    assert_eq!(Comparison::between(&near, &small).violations_delta, -5);
}
