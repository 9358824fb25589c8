//! Native timings on demand, for the JS bench (`benches/js/`) and for profiling.
//!
//!     bench_native inputs FILE N          # writes the snapshot inputs (JSON) the JS bench replays
//!     bench_native tracker FILE REPS      # replays them natively, prints timings as JSON
//!     bench_native loop OP N              # runs one operation N times (for perf / callgrind)
//!
//! OP: user_context_ids, parse_id (borrowed parts), parse_id_owned, pair, pair100k,
//! take_snapshot.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use threadline::ids::{parse_id, parse_id_parts, IdGenerator};
use threadline::registry::{Registry, RegistryConfig};
use threadline::tracker::{SnapshotInput, Tracker};

#[path = "../benches/common/mod.rs"]
mod common;

/// One user's ids, as the JS bench and this program both read them.
#[derive(Serialize, Deserialize)]
struct UserIds {
    user_id: String,
    thread_id: String,
    websocket_client_id: String,
    isolation_key: String,
}

/// The replayed workload: snapshot i uses user i % users, as a manager creation with
/// context, manager and key; every 100th looks its manager up by a wrong thread.
#[derive(Serialize, Deserialize)]
struct Inputs {
    snapshots: usize,
    started_ms: u64,
    wrong_thread: String,
    users: Vec<UserIds>,
}

fn input_of<'a>(inp: &'a Inputs, i: usize) -> SnapshotInput<'a> {
    let u = &inp.users[i % inp.users.len()];
    let mut s = SnapshotInput::new("manager_creation");
    s.user_id = Some(&u.user_id);
    s.user_context_thread_id = Some(&u.thread_id);
    s.websocket_client_id = Some(&u.websocket_client_id);
    s.manager_thread_id = Some(&u.thread_id);
    s.manager_instance_id = Some((i % inp.users.len()) as u64);
    s.isolation_key = Some(&u.isolation_key);
    if i % 100 == 99 {
        s.cleanup_lookup_thread_id = Some(&inp.wrong_thread);
    }
    s
}

/// One create+cleanup pair, the context already cloned: out of line so that
/// `valgrind --tool=callgrind --toggle-collect='*pair_once*'` counts the pair alone.
#[inline(never)]
fn pair_once(reg: &mut Registry, c: threadline::UserContext, key: &str) {
    reg.create(c, common::T0).unwrap();
    reg.cleanup(key, common::T0);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "inputs" => {
            let n: usize = arg(2).parse().expect("N");
            let users = (n / 10).max(1);
            let inp = Inputs {
                snapshots: n,
                started_ms: common::T0,
                wrong_thread: "thread_websocket_factory_0_00000000".into(),
                users: common::contexts(users)
                    .iter()
                    .map(|c| UserIds {
                        user_id: c.user_id().into(),
                        thread_id: c.thread_id().into(),
                        websocket_client_id: c.websocket_client_id().unwrap_or_default().into(),
                        isolation_key: common::key(c),
                    })
                    .collect(),
            };
            std::fs::write(arg(1), serde_json::to_string(&inp).unwrap()).unwrap();
        }
        "tracker" => {
            let inp: Inputs =
                serde_json::from_str(&std::fs::read_to_string(arg(1)).unwrap()).unwrap();
            let reps: usize = arg(2).parse().unwrap_or(5);
            let mut t = Tracker::new(inp.started_ms);
            let start = Instant::now();
            for i in 0..inp.snapshots {
                black_box(t.take_snapshot(input_of(&inp, i), inp.started_ms).unwrap());
            }
            let fill = start.elapsed().as_secs_f64();
            let time = |f: &dyn Fn()| {
                median(
                    (0..reps)
                        .map(|_| {
                            let s = Instant::now();
                            f();
                            s.elapsed().as_secs_f64()
                        })
                        .collect(),
                )
            };
            let analyze = time(&|| {
                black_box(t.analyze(inp.started_ms + 1));
            });
            let report = time(&|| {
                black_box(t.report_text(inp.started_ms + 1));
            });
            println!(
                "{}",
                serde_json::json!({
                    "snapshots": inp.snapshots,
                    "take_snapshot_ns": fill * 1e9 / inp.snapshots as f64,
                    "analyze_ms": analyze * 1e3,
                    "report_text_ms": report * 1e3,
                    "inconsistent": t.analyze(inp.started_ms).inconsistent_snapshots,
                })
            );
        }
        "loop" => {
            let n: usize = arg(2).parse().expect("N");
            match arg(1).as_str() {
                "user_context_ids" => {
                    let g = IdGenerator::system().unwrap();
                    for _ in 0..n {
                        black_box(g.user_context_ids(
                            black_box("user-12345678"),
                            black_box("websocket_factory"),
                        ))
                        .unwrap();
                    }
                }
                "parse_id" => {
                    let g = IdGenerator::system().unwrap();
                    let id = g.base_id("req", true, 8).unwrap();
                    for _ in 0..n {
                        black_box(parse_id_parts(black_box(&id))).unwrap();
                    }
                }
                "parse_id_owned" => {
                    let g = IdGenerator::system().unwrap();
                    let id = g.base_id("req", true, 8).unwrap();
                    for _ in 0..n {
                        black_box(parse_id(black_box(&id))).unwrap();
                    }
                }
                op @ ("pair" | "pair100k") => {
                    let events: usize = std::env::var("EVENTS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(65_536);
                    let mut reg = Registry::new(RegistryConfig {
                        event_capacity: events,
                        ..RegistryConfig::default()
                    })
                    .unwrap();
                    if op == "pair100k" {
                        for c in common::contexts(100_000) {
                            reg.create(c, common::T0).unwrap();
                        }
                    }
                    let g = common::generator(7);
                    let ctxs: Vec<_> = (0..1000)
                        .map(|i| common::context(&g, 10_000_000 + i))
                        .collect();
                    let keys: Vec<String> = ctxs.iter().map(common::key).collect();
                    let start = Instant::now();
                    for i in 0..n {
                        let c = ctxs[i % 1000].clone();
                        pair_once(&mut reg, c, &keys[i % 1000]);
                    }
                    eprintln!(
                        "{:.1} ns per pair (with a context clone)",
                        start.elapsed().as_nanos() as f64 / n as f64
                    );
                }
                "take_snapshot" => {
                    let ctxs = common::contexts(1000);
                    let keys: Vec<String> = ctxs.iter().map(common::key).collect();
                    let mut t = Tracker::new(common::T0);
                    let start = Instant::now();
                    for i in 0..n {
                        let u = i % 1000;
                        black_box(
                            t.take_snapshot(
                                common::snapshot_input(&ctxs[u], &keys[u], u as u64),
                                common::T0,
                            )
                            .unwrap(),
                        );
                    }
                    eprintln!(
                        "{:.1} ns per snapshot",
                        start.elapsed().as_nanos() as f64 / n as f64
                    );
                }
                other => panic!("unknown op {other}"),
            }
        }
        _ => eprintln!("usage: bench_native inputs FILE N | tracker FILE REPS | loop OP N"),
    }
}
