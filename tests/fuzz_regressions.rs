//! Replays every file under `tests/fuzz-inputs/<target>/` through the checks the fuzz
//! target `<target>` runs (`fuzz/checks.rs`, shared byte for byte), under plain
//! `cargo test`. Crashes found by `make fuzz` / `make test-fuzz` are copied there and so
//! stay fixed; the `seed-*` files are the fuzzers' starting corpus.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-inputs")
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(target: &str) -> usize {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target named {target}"));
    let dir = inputs_root().join(target);
    if !dir.is_dir() {
        return 0;
    }
    let files = files_of(&dir);
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).expect("readable input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    files.len()
}

#[test]
fn every_input_directory_names_a_fuzz_target() {
    for entry in std::fs::read_dir(inputs_root()).expect("tests/fuzz-inputs exists") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            path.is_dir() && checks::TARGETS.iter().any(|(t, _)| *t == name),
            "tests/fuzz-inputs/{name} is not the directory of a fuzz target: its inputs would never be replayed"
        );
    }
}

macro_rules! replay_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            let n = replay(stringify!($name));
            assert!(n > 0, "no inputs for {}", stringify!($name));
        }
    };
}

replay_test!(parse_ids);
replay_test!(correlation);
replay_test!(keys);
replay_test!(context);
replay_test!(report_json);
replay_test!(registry_ops);
replay_test!(id_generator);
replay_test!(tracker_ops);

/// The canonical registry encoding is what the fuzz target writes and this file reads.
#[test]
fn registry_encoding_round_trips() {
    use checks::{decode_ops, encode_ops, Op, Setup};
    let setup = Setup {
        max: 3,
        percent: 60,
        stale_idle: 1,
        stale_unconnected: 2,
        timeout: 3,
        events: 4,
        epoch: 1,
    };
    let ops = vec![
        Op::Create { user: 1, thread: 2 },
        Op::AddConnection {
            user: 1,
            thread: 2,
            conn: 3,
            conn_user: 0,
        },
        Op::RemoveConnection {
            user: 1,
            thread: 2,
            conn: 3,
        },
        Op::Send {
            user: 1,
            thread: 2,
            as_user: 2,
        },
        Op::Deactivate { user: 0, thread: 0 },
        Op::Touch { user: 0, thread: 0 },
        Op::Cleanup {
            user: 2,
            thread: 5,
            legacy: true,
        },
        Op::CleanupHandle { pick: 9 },
        Op::CleanupStale { user: 1 },
        Op::ForceCleanup { user: 1 },
        Op::ExpireIdle,
        Op::Enforce { user: 2 },
        Op::Advance { ms: -12_345 },
        Op::DrainEvents,
        Op::Shutdown,
    ];
    let bytes = encode_ops(&setup, &ops);
    assert_eq!(bytes.len(), checks::HEADER_LEN + ops.len() * checks::OP_LEN);
    assert_eq!(decode_ops(&bytes), (setup, ops));
}

/// The checks are not vacuous: a registry that admitted one manager too many, or a
/// report that changed on its second round trip, is caught.
#[test]
fn checks_catch_a_broken_invariant() {
    use threadline::registry::{Registry, RegistryConfig};
    use threadline::UserContext;
    let config = RegistryConfig {
        max_managers_per_user: 2,
        ..RegistryConfig::default()
    };
    let mut r = Registry::new(RegistryConfig {
        max_managers_per_user: 3,
        ..RegistryConfig::default()
    })
    .unwrap();
    for t in ["thread_a", "thread_b", "thread_c"] {
        let c = UserContext::builder("alice", t, format!("run_{t}"))
            .build_with_request_id("req_x_1_abcdef12".into())
            .unwrap();
        r.create(c, 0).unwrap();
    }
    // Three managers held against a limit of two: the check must refuse.
    let caught = std::panic::catch_unwind(|| checks::check_registry(&r, &config));
    assert!(caught.is_err());
    checks::check_registry(
        &r,
        &RegistryConfig {
            max_managers_per_user: 3,
            ..config
        },
    );
}
