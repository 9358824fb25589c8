//! Memory per live manager and per snapshot (issue 6).
//!
//!     cargo run --release --example memory            # both, each in its own process
//!     cargo run --release --example memory managers   # 1,000,000 managers (100,000 users x 10)
//!     cargo run --release --example memory tracker    # a tracker holding 1,000,000 snapshots
//!
//! Two views: exact heap bytes requested, counted by a global allocator, and the
//! process's resident memory (VmRSS, VmHWM from /proc/self/status), which adds
//! malloc's own per-block overhead.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use threadline::registry::{Registry, RegistryConfig};
use threadline::tracker::Tracker;
use threadline::UserContext;

#[path = "../benches/common/mod.rs"]
mod common;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            let now = LIVE.fetch_add(new, Ordering::Relaxed) + new - l.size();
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// (VmRSS, VmHWM) in bytes.
fn rss() -> (usize, usize) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Heap bytes held by a context's id strings (their capacities) and their lengths.
fn id_bytes(c: &UserContext) -> (usize, usize) {
    let lens = c.user_id().len()
        + c.thread_id().len()
        + c.run_id().len()
        + c.request_id().len()
        + c.websocket_client_id().map_or(0, str::len);
    // A context keeps its ids in one exact-size allocation; the heap view below
    // measures what they really hold.
    (lens, lens)
}

fn managers() {
    const USERS: usize = 100_000;
    const PER_USER: usize = 10;
    let n = USERS * PER_USER;
    let g = common::generator(11);
    let (rss0, _) = rss();
    let heap0 = live();
    let mut ctxs: Vec<UserContext> = Vec::with_capacity(n);
    for u in 0..USERS {
        let user = format!("user-{u:08}");
        for _ in 0..PER_USER {
            let ids = g.user_context_ids(&user, "websocket_factory").unwrap();
            let ws = g.websocket_client_id(&user, None).unwrap();
            ctxs.push(
                UserContext::builder(user.clone(), ids.thread_id(), ids.run_id())
                    .websocket_client_id(Some(ws))
                    .build_with_request_id(ids.request_id().to_owned())
                    .unwrap(),
            );
        }
    }
    let id_len: usize = ctxs.iter().map(|c| id_bytes(c).0).sum();
    // Heap held by the id strings: everything allocated since heap0 except the Vec.
    let id_heap = live() - heap0 - ctxs.capacity() * std::mem::size_of::<UserContext>();
    let (rss1, _) = rss();
    let mut reg = Registry::new(RegistryConfig::default()).unwrap();
    for c in ctxs.drain(..) {
        reg.create(c, common::T0).unwrap();
    }
    drop(ctxs);
    assert_eq!(reg.len(), n);
    let heap2 = live();
    let (rss2, hwm) = rss();
    let per = |b: usize| b as f64 / n as f64;
    println!("managers: {n} live ({USERS} users x {PER_USER}), registry events not drained");
    println!(
        "  id strings: {:.1} bytes of text, {:.1} bytes of heap per manager",
        per(id_len),
        per(id_heap)
    );
    println!(
        "  heap beyond id strings: {:.1} bytes per manager (total heap {:.1})",
        per(heap2 - heap0 - id_heap),
        per(heap2 - heap0)
    );
    // The strictest view: everything but the ids' text bytes, so the context's own
    // allocation header (and the ':' of the isolation key it starts with) count as
    // overhead too. The key has no text of its own: it is the start of the context's.
    println!(
        "  heap beyond the ids' text bytes alone: {:.1} bytes per manager",
        per(heap2 - heap0 - id_len)
    );
    println!(
        "  RSS: {:.1} bytes per manager in all, {:.1} beyond the id strings' RSS; peak RSS (VmHWM) {:.1} MiB",
        per(rss2.saturating_sub(rss0)),
        per(rss2.saturating_sub(rss0)) - per(rss1.saturating_sub(rss0))
            + per(ctxs_vec_bytes(n)),
        hwm as f64 / 1048576.0
    );
    std::hint::black_box(&reg);
}

/// The Vec of contexts counted in the RSS taken before the registry was filled.
fn ctxs_vec_bytes(n: usize) -> usize {
    n * std::mem::size_of::<UserContext>()
}

fn tracker(with_metadata: bool) {
    const N: usize = 1_000_000;
    let (rss0, _) = rss();
    let heap0 = live();
    let t: Tracker = common::tracker(N, with_metadata, 100);
    let heap1 = live();
    let (rss1, hwm) = rss();
    assert_eq!(t.total_snapshots(), N as u64);
    let per = |b: usize| b as f64 / N as f64;
    println!(
        "tracker: {N} snapshots{} ({} users' threads, 1 in 100 a mismatch)",
        if with_metadata {
            " with one metadata entry each"
        } else {
            ""
        },
        N / 10
    );
    println!(
        "  heap: {:.1} bytes per snapshot (everything: snapshots, violations, interned ids, aggregates)",
        per(heap1 - heap0)
    );
    println!(
        "  RSS: {:.1} bytes per snapshot; peak RSS (VmHWM) {:.1} MiB",
        per(rss1.saturating_sub(rss0)),
        hwm as f64 / 1048576.0
    );
    std::hint::black_box(&t);
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    match arg.as_str() {
        "managers" => managers(),
        "tracker" => tracker(false),
        "tracker-metadata" => tracker(true),
        _ => {
            let me = std::env::current_exe().unwrap();
            for mode in ["managers", "tracker", "tracker-metadata"] {
                let ok = std::process::Command::new(&me)
                    .arg(mode)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "{mode} failed");
            }
        }
    }
}
