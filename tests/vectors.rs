//! The cross-language test vectors (`tests/vectors/*.json`, format in
//! `tests/vectors/README.md`), read with the core. The JS tests (`tests/js/`) and the
//! Python tests read the same files, so every binding gives the core's answers.
//!
//! The files were written once by `write_vectors` below (run by hand:
//! `THREADLINE_WRITE_VECTORS=1 cargo test --test vectors -- --ignored write_vectors`),
//! checked by eye against the contract, and committed; the other tests compare the core
//! against them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use threadline::ids::{correlation, id_age_ms, is_valid_id, parse_context_id};
use threadline::key::KeyForm;
use threadline::{
    parse_id, run_readings, thread_id_for_run, IdGenerator, IsolationKey, ManualClock, Metadata,
    ReportLimits, SeededEntropy, SnapshotInput, Tracker, UserContext, ValidationRules,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

fn read(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn opt_s(v: &Value) -> Option<&str> {
    v.as_str()
}

// ---- ids.json ---------------------------------------------------------------------

fn parse_entry(id: &str) -> Value {
    match parse_id(id) {
        Ok(c) => serde_json::to_value(c).expect("serialisable"),
        Err(e) => json!({ "error": e.kind() }),
    }
}

fn context_entry(id: &str) -> Value {
    match parse_context_id(id) {
        Ok(c) => serde_json::to_value(c).expect("serialisable"),
        Err(e) => json!({ "error": e.kind() }),
    }
}

fn readings_entry(run_id: &str) -> Value {
    json!({
        "readings": run_readings(run_id),
        "thread_id_for_run": thread_id_for_run(run_id),
    })
}

fn correlation_entry(thread_id: &str, run_id: &str) -> Value {
    let f = correlation(thread_id, run_id);
    json!({ "correlated": f.is_some(), "format": f })
}

fn validity_entry(id: &str, prefix: Option<&str>, now_ms: u64) -> Value {
    json!({
        "valid": is_valid_id(id, prefix, now_ms),
        "age_ms": id_age_ms(id, now_ms).ok(),
    })
}

/// What a seeded generator with a manual clock mints, call by call.
fn minted(seed: u64, start_ms: u64, calls: &[Value]) -> Vec<Value> {
    let clock = Arc::new(ManualClock::new(start_ms));
    let g = IdGenerator::new(clock.clone(), SeededEntropy::from_seed(seed));
    calls
        .iter()
        .map(|c| {
            if let Some(ms) = c.get("advance_ms").and_then(Value::as_i64) {
                clock.advance(ms);
            }
            let a = &c["args"];
            let out = match s(&c["call"]) {
                "user_context_ids" => g
                    .user_context_ids(s(&a[0]), s(&a[1]))
                    .map(|x| serde_json::to_value(x).expect("serialisable")),
                "base_id" => g
                    .base_id(
                        s(&a[0]),
                        a[1].as_bool().expect("bool"),
                        a[2].as_u64().expect("len") as usize,
                    )
                    .map(Value::from),
                "simple_id" => g.simple_id(s(&a[0])).map(Value::from),
                "websocket_client_id" => g
                    .websocket_client_id(s(&a[0]), a[1].as_f64())
                    .map(Value::from),
                "websocket_connection_id" => g
                    .websocket_connection_id(s(&a[0]), a[1].as_f64())
                    .map(Value::from),
                "session_id" => g.session_id(s(&a[0]), s(&a[1])).map(Value::from),
                "agent_execution_id" => g.agent_execution_id(s(&a[0]), s(&a[1])).map(Value::from),
                "message_id" => g
                    .message_id(s(&a[0]), s(&a[1]), opt_s(&a[2]))
                    .map(Value::from),
                "batch_ids" => g
                    .batch_ids(
                        s(&a[0]),
                        a[1].as_u64().expect("count") as usize,
                        a[2].as_bool().expect("bool"),
                    )
                    .map(Value::from),
                "manager_run_id" => g.manager_run_id(s(&a[0])).map(Value::from),
                "uuid_v4" => Ok(Value::from(g.uuid_v4())),
                other => panic!("unknown call {other}"),
            };
            out.unwrap_or_else(|e| json!({ "error": e.kind() }))
        })
        .collect()
}

// ---- keys.json ----------------------------------------------------------------------

fn key_entry(key: &str) -> Value {
    match IsolationKey::parse(key) {
        Ok(k) => {
            let (form, token) = match k.form() {
                KeyForm::Canonical => ("canonical", None),
                KeyForm::Legacy { run_token } => ("legacy", Some(run_token)),
            };
            json!({
                "user_id": k.user_id(),
                "thread_id": k.thread_id(),
                "form": form,
                "run_token": token,
                "canonical": k.canonical(),
                "display": k.to_string(),
            })
        }
        Err(e) => json!({ "error": e.kind() }),
    }
}

fn built_key_entry(user: &str, thread: &str) -> Value {
    match IsolationKey::new(user, thread) {
        Ok(k) => json!({ "key": k.to_string() }),
        Err(e) => json!({ "error": e.kind() }),
    }
}

// ---- errors.json ----------------------------------------------------------------------

fn context_result(fields: &Value) -> Value {
    let f = |k: &str| fields[k].as_str().unwrap_or("").to_owned();
    let rules = if fields["test_mode"].as_bool().unwrap_or(false) {
        ValidationRules::TEST
    } else {
        ValidationRules::PRODUCTION
    };
    let r = UserContext::builder(f("user_id"), f("thread_id"), f("run_id"))
        .rules(rules)
        .build_with_request_id(
            fields["request_id"]
                .as_str()
                .unwrap_or("req_vectors_1_abcdef12")
                .to_owned(),
        );
    match r {
        Ok(_) => json!({ "ok": true }),
        Err(e) => json!({ "error": e.kind() }),
    }
}

/// The result of one call of `errors.json`, by the call's neutral name.
fn error_case(call: &str, args: &Value) -> Value {
    let kind = |r: Result<(), &'static str>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(k) => json!({ "error": k }),
    };
    match call {
        "parse_id" => kind(parse_id(s(&args[0])).map(|_| ()).map_err(|e| e.kind())),
        "parse_context_id" => kind(
            parse_context_id(s(&args[0]))
                .map(|_| ())
                .map_err(|e| e.kind()),
        ),
        "isolation_key_parse" => kind(
            IsolationKey::parse(s(&args[0]))
                .map(|_| ())
                .map_err(|e| e.kind()),
        ),
        "isolation_key_new" => kind(
            IsolationKey::new(s(&args[0]), s(&args[1]))
                .map(|_| ())
                .map_err(|e| e.kind()),
        ),
        "user_context" => context_result(&args[0]),
        "user_context_ids" => {
            let g = IdGenerator::new(Arc::new(ManualClock::new(0)), SeededEntropy::from_seed(0));
            kind(
                g.user_context_ids(s(&args[0]), s(&args[1]))
                    .map(|_| ())
                    .map_err(|e| e.kind()),
            )
        }
        "base_id" => {
            let g = IdGenerator::new(Arc::new(ManualClock::new(0)), SeededEntropy::from_seed(0));
            kind(
                g.base_id(
                    s(&args[0]),
                    args[1].as_bool().expect("bool"),
                    args[2].as_u64().expect("len") as usize,
                )
                .map(|_| ())
                .map_err(|e| e.kind()),
            )
        }
        "tracker_bounded" => kind(
            Tracker::bounded(0, args[0].as_u64().expect("capacity") as usize)
                .map(|_| ())
                .map_err(|e| e.kind()),
        ),
        "take_snapshot" => {
            let mut t = Tracker::new(0);
            kind(
                t.take_snapshot(SnapshotInput::new(s(&args[0])), 0)
                    .map(|_| ())
                    .map_err(|e| e.kind()),
            )
        }
        "tracker_from_json" => {
            let mut limits = ReportLimits::default();
            if let Some(b) = args[1]["max_bytes"].as_u64() {
                limits.max_bytes = b as usize;
            }
            if let Some(d) = args[1]["max_depth"].as_u64() {
                limits.max_depth = d as usize;
            }
            kind(
                Tracker::from_json(s(&args[0]), limits)
                    .map(|_| ())
                    .map_err(|e| e.kind()),
            )
        }
        other => panic!("unknown call {other}"),
    }
}

// ---- tracker-*.json ---------------------------------------------------------------

/// One step of a tracker sequence; inputs use the core's snake_case names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Step {
    TakeSnapshot {
        at_ms: u64,
        operation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_context_thread_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        websocket_client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manager_thread_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manager_instance_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isolation_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cleanup_lookup_thread_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Metadata>,
    },
    SimulateCleanupLookup {
        at_ms: u64,
        target_thread_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Metadata>,
    },
    RecordViolation {
        at_ms: u64,
        #[serde(rename = "type")]
        kind: String,
        severity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operation: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Metadata>,
    },
}

/// Runs a sequence; returns the tracker and each step's outcome (a snapshot outcome,
/// or a violation index).
fn run(started_ms: u64, capacity: Option<usize>, steps: &[Step]) -> (Tracker, Vec<Value>) {
    let mut t = match capacity {
        None => Tracker::new(started_ms),
        Some(c) => Tracker::bounded(started_ms, c).expect("capacity"),
    };
    let mut outcomes = Vec::new();
    for step in steps {
        let out = match step.clone() {
            Step::TakeSnapshot {
                at_ms,
                operation,
                user_id,
                user_context_thread_id,
                websocket_client_id,
                manager_thread_id,
                manager_instance_id,
                isolation_key,
                cleanup_lookup_thread_id,
                metadata,
            } => {
                let input = SnapshotInput {
                    operation: &operation,
                    user_id: user_id.as_deref(),
                    user_context_thread_id: user_context_thread_id.as_deref(),
                    websocket_client_id: websocket_client_id.as_deref(),
                    manager_thread_id: manager_thread_id.as_deref(),
                    manager_instance_id,
                    isolation_key: isolation_key.as_deref(),
                    cleanup_lookup_thread_id: cleanup_lookup_thread_id.as_deref(),
                    metadata,
                };
                serde_json::to_value(t.take_snapshot(input, at_ms).expect("valid step"))
            }
            Step::SimulateCleanupLookup {
                at_ms,
                target_thread_id,
                user_id,
                metadata,
            } => serde_json::to_value(
                t.simulate_cleanup_lookup(&target_thread_id, user_id.as_deref(), metadata, at_ms)
                    .expect("valid step"),
            ),
            Step::RecordViolation {
                at_ms,
                kind,
                severity,
                operation,
                details,
            } => serde_json::to_value(
                t.record_violation(
                    &kind,
                    &severity,
                    operation.as_deref(),
                    details.unwrap_or_default(),
                    at_ms,
                )
                .expect("valid step"),
            ),
        };
        outcomes.push(out.expect("serialisable"));
    }
    (t, outcomes)
}

fn tracker_expected(doc: &Value) -> Value {
    let steps: Vec<Step> = serde_json::from_value(doc["steps"].clone()).expect("steps");
    let started = doc["started_ms"].as_u64().expect("started_ms");
    let capacity = doc["capacity"].as_u64().map(|c| c as usize);
    let at = doc["report_at_ms"].as_u64().expect("report_at_ms");
    let (t, outcomes) = run(started, capacity, &steps);
    json!({
        "outcomes": outcomes,
        "analysis": t.analyze(at),
        "report_text": t.report_text(at),
        "json": t.to_json(at),
    })
}

// ---- the checks ------------------------------------------------------------------------

#[test]
fn ids_parse_as_the_vectors_say() {
    let v = read("ids.json");
    for case in v["parse"].as_array().expect("parse") {
        assert_eq!(
            parse_entry(s(&case["id"])),
            case["expected"],
            "parse_id {}",
            case["id"]
        );
    }
    for case in v["context_ids"].as_array().expect("context_ids") {
        assert_eq!(context_entry(s(&case["id"])), case["expected"], "{case}");
    }
    for case in v["run_readings"].as_array().expect("run_readings") {
        assert_eq!(
            readings_entry(s(&case["run_id"])),
            case["expected"],
            "{case}"
        );
    }
    for case in v["correlation"].as_array().expect("correlation") {
        let got = correlation_entry(s(&case["thread_id"]), s(&case["run_id"]));
        assert_eq!(got, case["expected"], "{case}");
    }
    for case in v["validity"].as_array().expect("validity") {
        let got = validity_entry(
            s(&case["id"]),
            opt_s(&case["expected_prefix"]),
            case["now_ms"].as_u64().expect("now_ms"),
        );
        assert_eq!(got, case["expected"], "{case}");
    }
    for g in v["minted"].as_array().expect("minted") {
        let got = minted(
            g["seed"].as_u64().expect("seed"),
            g["start_ms"].as_u64().expect("start_ms"),
            g["calls"].as_array().expect("calls"),
        );
        assert_eq!(Value::from(got), g["expected"], "seed {}", g["seed"]);
    }
}

#[test]
fn keys_parse_as_the_vectors_say() {
    let v = read("keys.json");
    for case in v["parse"].as_array().expect("parse") {
        assert_eq!(key_entry(s(&case["key"])), case["expected"], "{case}");
    }
    for case in v["build"].as_array().expect("build") {
        let got = built_key_entry(s(&case["user_id"]), s(&case["thread_id"]));
        assert_eq!(got, case["expected"], "{case}");
    }
}

#[test]
fn invalid_inputs_fail_with_the_vectors_kinds() {
    let v = read("errors.json");
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20);
    for case in cases {
        let got = error_case(s(&case["call"]), &case["args"]);
        assert_eq!(got, case["expected"], "{case}");
    }
}

#[test]
fn tracker_sequences_give_the_vectors_reports() {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir()).expect("vectors dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if !(name.starts_with("tracker-") && name.ends_with(".json")) {
            continue;
        }
        seen += 1;
        let doc = read(&name);
        let got = tracker_expected(&doc);
        let want = &doc["expected"];
        assert_eq!(got["outcomes"], want["outcomes"], "{name}: outcomes");
        assert_eq!(got["analysis"], want["analysis"], "{name}: analysis");
        assert_eq!(
            got["report_text"], want["report_text"],
            "{name}: report text"
        );
        assert_eq!(got["json"], want["json"], "{name}: json");
        // The file's JSON loads back to a tracker that prints the same report.
        let back = Tracker::from_json(s(&want["json"]), ReportLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            back.report_text(0),
            s(&want["report_text"]),
            "{name}: reload"
        );
        assert_eq!(back.to_json(0), s(&want["json"]), "{name}: reload json");
    }
    assert!(
        seen >= 3,
        "expected at least 3 tracker vectors, found {seen}"
    );
}

// ---- the generator (run by hand) ---------------------------------------------------------

const T0: u64 = 1_764_000_000_000;
const T: &str = "thread_websocket_factory_1234567890_abc_def123";
const LEGACY: &str = "user123_thread_websocket_factory_1234567890_abc_def123_run456";

fn snap(at_ms: u64, operation: &str) -> Step {
    Step::TakeSnapshot {
        at_ms,
        operation: operation.into(),
        user_id: None,
        user_context_thread_id: None,
        websocket_client_id: None,
        manager_thread_id: None,
        manager_instance_id: None,
        isolation_key: None,
        cleanup_lookup_thread_id: None,
        metadata: None,
    }
}

fn with(mut step: Step, f: impl FnOnce(&mut Step)) -> Step {
    f(&mut step);
    step
}

fn snapshot_fields(
    step: &mut Step,
) -> (
    &mut Option<String>,
    &mut Option<String>,
    &mut Option<String>,
    &mut Option<String>,
) {
    match step {
        Step::TakeSnapshot {
            user_id,
            user_context_thread_id,
            manager_thread_id,
            isolation_key,
            ..
        } => (
            user_id,
            user_context_thread_id,
            manager_thread_id,
            isolation_key,
        ),
        _ => unreachable!("a snapshot step"),
    }
}

/// A snapshot with user, user-context thread, manager thread and key.
fn full(
    at_ms: u64,
    op: &str,
    user: &str,
    ctx: Option<&str>,
    mgr: Option<&str>,
    key: Option<&str>,
) -> Step {
    with(snap(at_ms, op), |st| {
        let (u, c, m, k) = snapshot_fields(st);
        *u = Some(user.into());
        *c = ctx.map(Into::into);
        *m = mgr.map(Into::into);
        *k = key.map(Into::into);
    })
}

fn tracker_doc(
    name: &str,
    description: &str,
    started_ms: u64,
    capacity: Option<usize>,
    report_at_ms: u64,
    steps: Vec<Step>,
) -> Value {
    let mut doc = json!({
        "name": name,
        "description": description,
        "started_ms": started_ms,
        "capacity": capacity,
        "report_at_ms": report_at_ms,
        "steps": steps,
    });
    doc["expected"] = tracker_expected(&doc);
    doc
}

fn write(name: &str, v: &Value) {
    let text = serde_json::to_string_pretty(v).expect("serialisable") + "\n";
    std::fs::write(dir().join(name), text).expect("write vector");
}

#[test]
#[ignore = "writes tests/vectors/*.json; run by hand"]
fn write_vectors() {
    if std::env::var_os("THREADLINE_WRITE_VECTORS").is_none() {
        return;
    }
    std::fs::create_dir_all(dir()).expect("vectors dir");

    // ids.json
    let parse_ids = [
        "session_web_user1234_1700000000000_42_deadbeef",
        "req_1700000000000_7",
        "id_42_1700000000000_5",
        "msg_chat_bob_abcdef12_1764000000000_6_0a1b2c3d",
        "ws_client_user-123_1764000000000_1_89abcdef",
        "ws_conn_bob_1700000000500_2_01234567",
        "agent_triage_bob_1764000000000_4_cafebabe",
        "batch_1764000000000_3_a1b2c",
        "",
        "_",
        "a_b",
        "x_1_2_XYZ",
        "_1_2",
        "x_-1_2",
        "x_99999999999999999999999_1",
        "thread_websocket_factory_5_abcd1234",
    ];
    let context_ids = [
        "thread_websocket_factory_1_0a1b2c3d",
        "run_websocket_factory_1_0a1b2c3d",
        "req_websocket_factory_2_ffeeddcc",
        "thread_thread_consistency_test_5_abcd1234",
        "thread_ws_1_ABCDEF12",
        "thread_ws_1_abcdef1",
        "session_ws_1_abcdef12",
        "thread__1_abcdef12",
    ];
    let run_ids = [
        "run_thread_consistency_test_5_abcd1234",
        "run_websocket_factory_7_0a1b2c3d",
        "run_different-thread-abcd1234_12345_0f0f0f0f",
        "run_thread_websocket_factory_1_0a1b2c3d_0_12345678",
        "run_t_0_abcdef12",
        "run_t_00_abcdef12",
        "run_t_123456_abcdef12",
        "thread_ws_1_abcdef12",
        "run_",
        "run_x_1_ABCDEF12",
    ];
    let correlations = [
        (
            "thread_consistency_test",
            "run_thread_consistency_test_5_abcd1234",
        ),
        (
            "thread_thread_consistency_test_5_abcd1234",
            "run_thread_consistency_test_5_abcd1234",
        ),
        (
            "thread_consistency",
            "run_thread_consistency_test_5_abcd1234",
        ),
        (
            "thread_consistency_test_5",
            "run_thread_consistency_test_5_abcd1234",
        ),
        (
            "different-thread-abcd1234",
            "run_different-thread-abcd1234_12345_0f0f0f0f",
        ),
        ("t", "run_t_0_abcdef12"),
        ("t", "run_t_00_abcdef12"),
        ("t", "run_t_123456_abcdef12"),
        ("", "run_t_0_abcdef12"),
        (
            "thread_websocket_factory_1_0a1b2c3d",
            "run_websocket_factory_2_0a1b2c3d",
        ),
    ];
    let validity: [(&str, Option<&str>, u64); 8] = [
        ("req_1764000000000_1_abcdef12", None, T0),
        ("req_1764000000000_1_abcdef12", Some("re"), T0),
        ("req_1764000000000_1_abcdef12", Some("msg"), T0),
        (
            "req_1764000000000_1_abcdef12",
            None,
            T0 + 365 * 24 * 3600 * 1000,
        ),
        (
            "req_1764000000000_1_abcdef12",
            None,
            T0 + 365 * 24 * 3600 * 1000 + 1,
        ),
        ("req_1764000000000_1_abcdef12", None, T0 - 3600 * 1000),
        ("req_1764000000000_1_abcdef12", None, T0 - 3600 * 1000 - 1),
        ("nope", None, T0),
    ];
    let calls = json!([
        { "call": "user_context_ids", "args": ["user123", "websocket_factory"] },
        { "call": "user_context_ids", "args": ["user123", "thread_consistency_test"] },
        { "call": "base_id", "args": ["id", true, 8] },
        { "call": "base_id", "args": ["req", false, 8] },
        { "call": "base_id", "args": ["x", true, 5], "advance_ms": 250 },
        { "call": "simple_id", "args": ["conn"] },
        { "call": "websocket_client_id", "args": ["user-1234567890", null] },
        { "call": "websocket_connection_id", "args": ["bob", 1700000000.5] },
        { "call": "session_id", "args": ["alice_long_name", "web"] },
        { "call": "agent_execution_id", "args": ["triage", "bob"] },
        { "call": "message_id", "args": ["chat", "bob", null] },
        { "call": "message_id", "args": ["chat", "bob", "thread_ws_7_abcdef1234"] },
        { "call": "batch_ids", "args": ["evt", 3, false], "advance_ms": 5 },
        { "call": "manager_run_id", "args": ["different-thread-abcd1234"], "advance_ms": 12345 },
        { "call": "uuid_v4", "args": [] },
        { "call": "base_id", "args": ["x", false, 8], "advance_ms": -5000 },
        { "call": "user_context_ids", "args": ["a:b", "op"] },
        { "call": "base_id", "args": ["bad prefix", true, 8] }
    ]);
    let calls_vec = calls.as_array().expect("calls").clone();
    let ids = json!({
        "description": "Netra's ID formats: base ids to parse (from the right), generator context ids, run ids with every reading (generator first), thread/run correlation, the validity window, and what a seeded generator with a manual clock mints. A failure is {\"error\": kind}.",
        "parse": parse_ids.iter().map(|id| json!({ "id": id, "expected": parse_entry(id) })).collect::<Vec<_>>(),
        "context_ids": context_ids.iter().map(|id| json!({ "id": id, "expected": context_entry(id) })).collect::<Vec<_>>(),
        "run_readings": run_ids.iter().map(|r| json!({ "run_id": r, "expected": readings_entry(r) })).collect::<Vec<_>>(),
        "correlation": correlations.iter().map(|(t, r)| json!({ "thread_id": t, "run_id": r, "expected": correlation_entry(t, r) })).collect::<Vec<_>>(),
        "validity": validity.iter().map(|(id, p, now)| json!({ "id": id, "expected_prefix": p, "now_ms": now, "expected": validity_entry(id, *p, *now) })).collect::<Vec<_>>(),
        "minted": [
            { "seed": 1, "start_ms": T0, "calls": calls_vec.clone(), "expected": minted(1, T0, &calls_vec) },
            { "seed": 42, "start_ms": 1_700_000_000_000u64, "calls": calls_vec.clone(), "expected": minted(42, 1_700_000_000_000, &calls_vec) }
        ],
    });
    write("ids.json", &ids);

    // keys.json
    let keys = [
        LEGACY,
        "user123:thread_websocket_factory_5_abcd1234",
        "user123:thread_websocket_factory_1234567890_abc_def123",
        "u:a:b",
        "user123:different-thread-abcd1234",
        "alice_4821_thread_websocket_factory_3_0a1b2c3d_run_x",
        "user123_thread_websocket_factory_1_0a1b2c3d_run_websocket_factory_1_0a1b2c3d",
        "",
        ":",
        "u:",
        ":t",
        "plain",
        "user123_thread_",
        "user123_thread_x",
        "_thread_a_b",
        "u:\n",
        "u\u{0}:t",
        "u: ",
    ];
    let built = [
        ("user123", "thread_websocket_factory_5_abcd1234"),
        ("u", "different-thread-abcd1234"),
        ("u", "a:b"),
        ("a:b", "t"),
        ("a", " "),
        ("", "t"),
        ("u", "t\u{7}"),
    ];
    let keys_doc = json!({
        "description": "Isolation keys: canonical {user_id}:{thread_id} and the older {user_id}_{thread_id}_{run token}; the thread id comes out whole. `display` is the key in the form it was read in. A failure is {\"error\": kind}.",
        "parse": keys.iter().map(|k| json!({ "key": k, "expected": key_entry(k) })).collect::<Vec<_>>(),
        "build": built.iter().map(|(u, t)| json!({ "user_id": u, "thread_id": t, "expected": built_key_entry(u, t) })).collect::<Vec<_>>(),
    });
    write("keys.json", &keys_doc);

    // errors.json
    let report = {
        let (t, _) = run(
            T0,
            None,
            &[full(
                T0 + 1,
                "manager_creation",
                "u1",
                Some("thread_a"),
                Some("thread_a"),
                Some("u1:thread_a"),
            )],
        );
        t.to_json(T0 + 2)
    };
    let half = &report[..report.len() / 2];
    let ctx = |u: &str, t: &str, r: &str| json!({ "user_id": u, "thread_id": t, "run_id": r });
    let cases: Vec<(&str, Value)> = vec![
        ("parse_id", json!(["nope"])),
        ("parse_id", json!([""])),
        ("parse_id", json!(["x".repeat(2000)])),
        ("parse_id", json!(["req_1700000000000_7"])),
        ("parse_context_id", json!(["thread_ws_1_ABCDEF12"])),
        ("parse_context_id", json!(["session_ws_1_abcdef12"])),
        ("isolation_key_parse", json!(["plain"])),
        ("isolation_key_parse", json!([""])),
        ("isolation_key_parse", json!(["x".repeat(3000)])),
        ("isolation_key_new", json!(["a:b", "t"])),
        ("isolation_key_new", json!(["a", " "])),
        ("isolation_key_new", json!(["a", "x".repeat(1025)])),
        ("isolation_key_new", json!(["u", "t\u{0}"])),
        (
            "user_context",
            json!([ctx("", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx("   ", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx("NULL", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx("user123", "placeholder", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx(
                "mock_user",
                "thread_ws_1_abcdef12",
                "run_ws_1_abcdef12"
            )]),
        ),
        (
            "user_context",
            json!([ctx(
                "test_user",
                "thread_ws_1_abcdef12",
                "run_ws_1_abcdef12"
            )]),
        ),
        (
            "user_context",
            json!([{ "user_id": "test_user", "thread_id": "thread_ws_1_abcdef12", "run_id": "run_ws_1_abcdef12", "test_mode": true }]),
        ),
        (
            "user_context",
            json!([ctx("mock_user_with_a_long_name", "thread_x", "run_x")]),
        ),
        (
            "user_context",
            json!([ctx("a:b", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx("a\u{0}b", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")]),
        ),
        (
            "user_context",
            json!([ctx("u1", "thread_x", &"x".repeat(1025))]),
        ),
        ("user_context_ids", json!(["a:b", "op"])),
        ("user_context_ids", json!(["u1", "bad op"])),
        ("user_context_ids", json!(["u1", ""])),
        ("base_id", json!(["x", true, 0])),
        ("base_id", json!(["x", true, 65])),
        ("base_id", json!(["", true, 8])),
        ("tracker_bounded", json!([0])),
        ("take_snapshot", json!([""])),
        ("take_snapshot", json!(["x".repeat(257)])),
        ("tracker_from_json", json!(["{", {}])),
        ("tracker_from_json", json!(["[]", {}])),
        ("tracker_from_json", json!(["{\"schema\":\"x/2\"}", {}])),
        ("tracker_from_json", json!(["{}", {}])),
        ("tracker_from_json", json!(["[".repeat(100), {}])),
        (
            "tracker_from_json",
            json!([report.clone(), { "max_bytes": 10 }]),
        ),
        ("tracker_from_json", json!([half, {}])),
        ("tracker_from_json", json!([report, {}])),
    ];
    let errors = json!({
        "description": "Inputs and the error kind ({concern}.{case}) the core gives, or {\"ok\": true}. Calls: parse_id(id), parse_context_id(id), isolation_key_parse(key), isolation_key_new(user_id, thread_id), user_context({user_id, thread_id, run_id, test_mode?}) with request id req_vectors_1_abcdef12, user_context_ids(user_id, operation), base_id(prefix, include_random, random_length), tracker_bounded(capacity), take_snapshot(operation), tracker_from_json(text, {max_bytes?, max_depth?}).",
        "cases": cases.iter().map(|(call, args)| json!({ "call": call, "args": args, "expected": error_case(call, args) })).collect::<Vec<_>>(),
    });
    write("errors.json", &errors);

    // tracker-seed-sample.json: the seed's sample report.
    let seed_steps = vec![
        full(
            1_641_234_567_123,
            "user_context_creation",
            "user123",
            Some(T),
            None,
            None,
        ),
        full(
            1_641_234_567_456,
            "manager_creation",
            "user123",
            Some(T),
            Some(T),
            Some(LEGACY),
        ),
        full(
            1_641_234_567_789,
            "inconsistent_context_creation",
            "user123",
            Some("different-thread-abcd1234"),
            Some(T),
            Some(LEGACY),
        ),
    ];
    write(
        "tracker-seed-sample.json",
        &tracker_doc(
            "seed-sample",
            "The seed's sample report: a legacy isolation key read whole, one mismatch.",
            1_641_234_565_000,
            None,
            1_641_234_567_450,
            seed_steps,
        ),
    );

    // tracker-lifecycle.json: lookups, unparsable key, violations with details, metadata.
    let a = "thread_websocket_factory_1_0a1b2c3d";
    let b = "thread_websocket_factory_2_ffeeddcc";
    let mut meta = Metadata::new();
    meta.insert("attempt".into(), json!(2));
    meta.insert("note".into(), json!("it's \"quoted\"\n"));
    meta.insert(
        "nested".into(),
        json!({ "ok": true, "list": [1, 2.5, null] }),
    );
    let steps = vec![
        full(
            T0 + 10,
            "user_context_creation",
            "user123",
            Some(a),
            None,
            None,
        ),
        with(
            full(
                T0 + 20,
                "manager_creation",
                "user123",
                Some(a),
                Some(a),
                Some(&format!("user123:{a}")),
            ),
            |st| {
                if let Step::TakeSnapshot {
                    manager_instance_id,
                    websocket_client_id,
                    metadata,
                    ..
                } = st
                {
                    *manager_instance_id = Some(0);
                    *websocket_client_id =
                        Some("ws_client_user123_1764000000000_3_89abcdef".into());
                    *metadata = Some(meta.clone());
                }
            },
        ),
        Step::SimulateCleanupLookup {
            at_ms: T0 + 30,
            target_thread_id: a.into(),
            user_id: Some("user123".into()),
            metadata: None,
        },
        full(
            T0 + 40,
            "second_context",
            "user123",
            Some(b),
            Some(a),
            Some(&format!("user123:{a}")),
        ),
        Step::SimulateCleanupLookup {
            at_ms: T0 + 50,
            target_thread_id: b.into(),
            user_id: Some("user123".into()),
            metadata: Some(meta.clone()),
        },
        full(
            T0 + 60,
            "manager_creation",
            "alice_4821",
            None,
            None,
            Some("garbage-key"),
        ),
        Step::RecordViolation {
            at_ms: T0 + 70,
            kind: "resource_leak".into(),
            severity: "ERROR".into(),
            operation: Some("force_cleanup".into()),
            details: Some(meta.clone()),
        },
        Step::RecordViolation {
            at_ms: T0 + 80,
            kind: "custom".into(),
            severity: "WARNING".into(),
            operation: None,
            details: None,
        },
        Step::SimulateCleanupLookup {
            at_ms: T0 + 90,
            target_thread_id: "thread_nobody".into(),
            user_id: Some("nobody".into()),
            metadata: None,
        },
        full(
            T0 + 100,
            "legacy_key_check",
            "user123",
            Some("thread_websocket_factory_1234567890_abc_def123"),
            None,
            Some(LEGACY),
        ),
    ];
    write(
        "tracker-lifecycle.json",
        &tracker_doc(
            "lifecycle",
            "Cleanup lookups (matching, by the wrong thread, for an unknown user), an unparsable key (kept whole, WARNING), caller-recorded violations with details (printed as Python reprs), metadata with quotes and nesting, a legacy key.",
            T0,
            None,
            T0 + 1_234,
            steps,
        ),
    );

    // tracker-bounded.json: a bounded tracker keeps the last snapshots, counts stay exact.
    let mut steps = Vec::new();
    for i in 0..7u64 {
        let mgr = if i == 3 || i == 5 {
            "thread_b"
        } else {
            "thread_a"
        };
        let user = if i % 2 == 0 { "u1" } else { "u2" };
        steps.push(full(
            T0 + i * 100,
            "op",
            user,
            Some("thread_a"),
            Some(mgr),
            None,
        ));
    }
    write(
        "tracker-bounded.json",
        &tracker_doc(
            "bounded",
            "Capacity 3: the last 3 snapshots and violations are kept, every count stays exact, and the report notes what was dropped.",
            T0,
            Some(3),
            T0 + 5_000,
            steps,
        ),
    );

    // tracker-empty.json: nothing recorded.
    write(
        "tracker-empty.json",
        &tracker_doc(
            "empty",
            "No snapshots: score 100, no violations section.",
            T0,
            None,
            T0 + 1,
            Vec::new(),
        ),
    );
}
