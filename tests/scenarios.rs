//! The seed's scenarios must hold (issue: "Scenarios that must hold"). The example
//! `seed_scenarios` prints these same outcomes.

#[path = "../examples/seed_scenarios/scenarios.rs"]
#[allow(dead_code)]
mod scenarios;

use threadline::registry::CleanupReason;

#[test]
fn consistent_contexts_score_100_with_no_violations() {
    let o = scenarios::consistent_contexts();
    let a = o.tracker.analyze(o.now_ms);
    assert_eq!(a.total_violations, 0);
    assert_eq!(a.consistency_score, 100.0);
    assert_eq!(a.unique_thread_ids_found, 1);
    assert_eq!(o.fact("thread_run_correlated"), "true");
    assert!(o
        .tracker
        .report_text(o.now_ms)
        .contains("  Consistency Score: 100.0%\n"));
}

#[test]
fn bug_reproduction_finds_the_mismatch() {
    let o = scenarios::bug_reproduction();
    let a = o.tracker.analyze(o.now_ms);
    assert!(a.total_violations > 0);
    assert!(a.consistency_score < 100.0);
    assert_eq!(a.total_snapshots, 4);
    assert_eq!(
        a.inconsistent_snapshots, 2,
        "the wrong context and the wrong lookup"
    );
    assert_eq!(a.unique_thread_ids_found, 2);
    assert_eq!(a.first_divergence, Some(2));
    assert_eq!(a.last_consistent_before_divergence, Some(1));
    assert_eq!(
        a.users_with_multiple_thread_ids,
        vec!["user123".to_string()]
    );
    assert_eq!(
        a.operation_violations,
        vec![
            ("inconsistent_context_creation".to_string(), 1),
            ("cleanup_lookup".to_string(), 1)
        ]
    );
    assert_eq!(o.fact("wrong_thread_lookup_found"), "false");
    assert_eq!(o.fact("cleanup_with_wrong_key"), "false");
    assert_eq!(o.fact("cleanup_with_right_key"), "true");
    let text = o.tracker.report_text(o.now_ms);
    assert!(text.contains("      ⚠️  MISMATCH DETECTED\n"));
    assert!(text.contains(
        "  [0] thread_id_mismatch (CRITICAL)\n      Operation: inconsistent_context_creation\n"
    ));
    assert!(text.contains("  Consistency Score: 50.0%\n"));
}

#[test]
fn lifecycle_cleans_up_and_deactivates() {
    let o = scenarios::lifecycle();
    let a = o.tracker.analyze(o.now_ms);
    assert_eq!(a.total_violations, 0);
    assert_eq!(a.consistency_score, 100.0);
    assert!(o.fact("delivered_to").starts_with("ws_conn_user123_"));
    assert!(o
        .fact("found_key")
        .starts_with("user123:thread_websocket_factory_"));
    assert_eq!(o.fact("cleanup_succeeded"), "true");
    assert_eq!(o.fact("manager_active_after_cleanup"), "false");
    assert_eq!(o.fact("managers_registered_after"), "0");
    assert_eq!(
        (a.managers_created, a.managers_cleaned_up, a.leaked_managers),
        (1, 1, 0)
    );
}

#[test]
fn three_users_stay_isolated() {
    let o = scenarios::concurrent_users();
    let a = o.tracker.analyze(o.now_ms);
    assert_eq!(a.total_violations, 0);
    assert_eq!(a.unique_thread_ids_found, 3);
    assert_eq!(o.fact("distinct_thread_ids"), "3");
    assert_eq!(o.fact("cross_user_deliveries"), "0");
    assert_eq!(o.fact("refused_cross_user_sends"), "6");
    assert_eq!(o.fact("managers_registered_after"), "0");
    assert_eq!(a.thread_ids_by_user.len(), 3);
    assert!(a.thread_ids_by_user.iter().all(|(_, t)| t.len() == 1));
    assert!(o.registry.stats().isolation_violations >= 6);
}

#[test]
fn recovery_leaves_no_managers() {
    let o = scenarios::recovery_after_mismatch();
    assert_eq!(o.fact("managers_before"), "4");
    assert_eq!(
        o.fact("stale_cleanup_removed"),
        "0",
        "fresh managers are not stale"
    );
    assert_eq!(o.fact("force_cleanup_removed"), "4");
    assert_eq!(o.fact("managers_after"), "0");
    assert!(o.registry.is_empty());
    assert_eq!(o.registry.stats().forced_cleaned, 4);
    let a = o.tracker.analyze(o.now_ms);
    assert_eq!(a.total_violations, 3);
}

#[test]
fn leak_hits_the_limit_and_the_session_store_prevents_it() {
    let o = scenarios::leak_and_fix();
    assert_eq!(o.fact("first_failing_creation"), "21");
    assert_eq!(o.fact("managers_held_with_bug"), "20");
    assert_eq!(o.fact("limit_hits_with_bug"), "5");
    assert_eq!(o.fact("failures_with_session_store"), "0");
    assert_eq!(o.fact("managers_held_with_session_store"), "1");
    assert_eq!(o.fact("managers_created_with_session_store"), "1");
    let a = o.tracker.analyze(o.now_ms);
    // The five refused creates are recorded from registry events.
    assert_eq!(a.total_violations, 5);
    assert_eq!(
        a.operation_violations,
        vec![("create_manager".to_string(), 5)]
    );
    assert_eq!(a.unique_thread_ids_found, 1);
    assert_eq!(a.consistency_score, 100.0);
    assert_eq!(a.managers_created, 21);
    assert_eq!(a.managers_cleaned_up, 20);
    let _ = CleanupReason::Forced;
}

#[test]
fn reports_are_reproducible_and_survive_json() {
    for (a, b) in scenarios::all().into_iter().zip(scenarios::all()) {
        let ja = a.tracker.to_json(a.now_ms);
        assert_eq!(
            ja,
            b.tracker.to_json(b.now_ms),
            "{} is deterministic",
            a.name
        );
        let back =
            threadline::Tracker::from_json(&ja, threadline::ReportLimits::default()).unwrap();
        assert_eq!(
            back.report_text(0),
            a.tracker.report_text(a.now_ms),
            "{}",
            a.name
        );
        assert_eq!(back.to_json(0), ja, "{}", a.name);
    }
}
