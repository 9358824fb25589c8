//! Criterion benches of the core (issue 6). `cargo bench -p threadline --bench core`.
//!
//! Small operations run with criterion's defaults shortened; the 100,000 and 1,000,000
//! snapshot ones with 10-20 samples, so the whole run stays at a few minutes on 2 cores.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use threadline::ids::{are_correlated, parse_id, parse_id_parts, IdGenerator};
use threadline::key::IsolationKey;
use threadline::registry::{Registry, RegistryConfig};
use threadline::tracker::{ReportLimits, Tracker};

mod common;
use common::*;

fn ids(c: &mut Criterion) {
    let mut g = c.benchmark_group("ids");
    // The production generator: system clock, OS-seeded CSPRNG.
    let sys = IdGenerator::system().unwrap();
    g.bench_function("user_context_ids", |b| {
        b.iter(|| sys.user_context_ids(black_box("user-12345678"), black_box("websocket_factory")))
    });
    // The floor under `user_context_ids` on this machine, measured in the same run: what
    // any implementation returning the three ids as one owned text does at the least
    // (one lock of the generator's kind, one 64-bit ChaCha12 draw, one allocation of the
    // finished text, its copy and its free), with the text already made. The rest is
    // validation and formatting.
    let floor = spin::mutex::SpinMutex::<_, spin::relax::Yield>::new(ChaCha12Rng::seed_from_u64(1));
    let made = sys
        .user_context_ids("user-12345678", "websocket_factory")
        .unwrap();
    let text = format!("{}{}{}", made.thread_id(), made.run_id(), made.request_id());
    g.bench_function("user_context_ids_floor", |b| {
        b.iter(|| {
            let r = floor.lock().next_u64();
            (r, Box::<str>::from(black_box(text.as_str())))
        })
    });
    g.bench_function("base_id", |b| {
        b.iter(|| sys.base_id(black_box("req"), true, 8))
    });
    let base: Vec<String> = (0..1024)
        .map(|_| sys.base_id("req", true, 8).unwrap())
        .collect();
    // "parse of a base id": the borrowed parser, parts as slices of the id.
    let mut i = 0;
    g.bench_function("parse_id", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            parse_id_parts(black_box(&base[i]))
        })
    });
    // The owned `IdComponents` (three Strings): what the bindings return.
    g.bench_function("parse_id_owned", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            parse_id(black_box(&base[i]))
        })
    });
    let scoped = sys.session_id("user-12345678", "web").unwrap();
    g.bench_function("parse_id_session", |b| {
        b.iter(|| parse_id(black_box(&scoped)))
    });
    let ctx = sys
        .user_context_ids("user-1", "thread_consistency_test")
        .unwrap();
    g.bench_function("correlation_generator", |b| {
        b.iter(|| are_correlated(black_box(ctx.thread_id()), black_box(ctx.run_id())))
    });
    let mrun = sys.manager_run_id(ctx.thread_id()).unwrap();
    g.bench_function("correlation_manager", |b| {
        b.iter(|| are_correlated(black_box(ctx.thread_id()), black_box(&mrun)))
    });
    g.finish();
}

fn keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("key");
    let sys = IdGenerator::system().unwrap();
    let ctx = sys.user_context_ids("user-1", "websocket_factory").unwrap();
    g.bench_function("build_canonical", |b| {
        b.iter(|| {
            IsolationKey::new(black_box("user-12345678"), black_box(ctx.thread_id()))
                .unwrap()
                .canonical()
        })
    });
    let canonical = format!("user-12345678:{}", ctx.thread_id());
    g.bench_function("parse_canonical", |b| {
        b.iter(|| IsolationKey::parse(black_box(&canonical)))
    });
    let legacy = "user123_thread_websocket_factory_1234567890_abc_def123_run456";
    g.bench_function("parse_legacy", |b| {
        b.iter(|| IsolationKey::parse(black_box(legacy)))
    });
    g.finish();
}

fn registry(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    // The pair cycles over 1,000 users' contexts, as the reference model's benchmark does.
    let pair_ctxs = {
        let gen = generator(7);
        (0..1000)
            .map(|i| context(&gen, 10_000_000 + i))
            .collect::<Vec<_>>()
    };
    let pair_keys: Vec<String> = pair_ctxs.iter().map(key).collect();
    for live_users in [0usize, 100_000] {
        let mut reg = Registry::new(RegistryConfig::default()).unwrap();
        for c in contexts(live_users) {
            reg.create(c, T0).unwrap();
        }
        reg.drain_events();
        let mut i = 0;
        g.bench_function(
            format!("create_cleanup_pair/{live_users}_users_live"),
            |b| {
                b.iter_batched(
                    || {
                        i = (i + 1) % pair_ctxs.len();
                        (pair_ctxs[i].clone(), i)
                    },
                    |(ctx, i)| {
                        let made = reg.create(ctx, T0).unwrap();
                        let gone = reg.cleanup(&pair_keys[i], T0);
                        (made, gone)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        assert_eq!(reg.len(), live_users);
    }
    g.finish();
}

fn tracker(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracker");
    // take_snapshot with context, manager and key, 1,000 users cycled (the reference
    // model's inputs), into a fresh tracker per sample.
    let ctxs = contexts(1000);
    let keys: Vec<String> = ctxs.iter().map(key).collect();
    g.bench_function("take_snapshot", |b| {
        b.iter_custom(|iters| {
            let mut t = Tracker::new(T0);
            let start = Instant::now();
            for i in 0..iters as usize {
                let u = i % 1000;
                black_box(
                    t.take_snapshot(snapshot_input(&ctxs[u], &keys[u], u as u64), T0)
                        .unwrap(),
                );
            }
            let d = start.elapsed();
            drop(t);
            d
        })
    });
    g.bench_function("take_snapshot_with_metadata", |b| {
        b.iter_custom(|iters| {
            let mut t = Tracker::new(T0);
            let start = Instant::now();
            for i in 0..iters as usize {
                let u = i % 1000;
                let input = snapshot_input(&ctxs[u], &keys[u], u as u64).metadata(metadata(i));
                black_box(t.take_snapshot(input, T0).unwrap());
            }
            let d = start.elapsed();
            drop(t);
            d
        })
    });
    g.finish();

    for (n, samples, secs) in [(100_000usize, 20, 4), (1_000_000, 10, 8)] {
        let mut g = c.benchmark_group(format!("tracker_{n}"));
        g.sample_size(samples)
            .measurement_time(Duration::from_secs(secs))
            .warm_up_time(Duration::from_secs(1));
        // 1 snapshot in 100 is a mismatch, so the report has a violations section.
        let t = common::tracker(n, false, 100);
        g.bench_function("analyze", |b| b.iter(|| t.analyze(black_box(T0 + 1))));
        g.bench_function("report_text", |b| {
            b.iter(|| t.report_text(black_box(T0 + 1)))
        });
        if n == 100_000 {
            g.bench_function("to_json", |b| b.iter(|| t.to_json(black_box(T0 + 1))));
            let json = t.to_json(T0 + 1);
            g.bench_function("from_json", |b| {
                b.iter(|| Tracker::from_json(black_box(&json), ReportLimits::default()).unwrap())
            });
            g.bench_function("json_round_trip", |b| {
                b.iter(|| {
                    Tracker::from_json(&t.to_json(black_box(T0 + 1)), ReportLimits::default())
                        .unwrap()
                })
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = ids, keys, registry, tracker
}
criterion_main!(benches);
