"""The native API: error tree, determinism, thread safety, GIL release, tracker JSON,
bounded mode, registry events."""

import json
import threading
import time

import pytest

import threadline
from threadline import (
    IdGenerator,
    Registry,
    Snapshot,
    Tracker,
    UserContext,
    _native,
)

T0 = 1_764_000_000_000


def test_exception_tree():
    base = threadline.ThreadlineError
    assert issubclass(base, Exception)
    for cls in (threadline.InvalidIdError, threadline.InvalidContextError, threadline.InvalidKeyError,
                threadline.IsolationViolationError, threadline.InvalidConfigError, threadline.ReportError):
        assert issubclass(cls, base) and issubclass(cls, ValueError), cls
    assert issubclass(threadline.ManagerLimitError, RuntimeError)
    assert issubclass(threadline.ManagerLimitError, base)
    assert issubclass(threadline.UnknownManagerError, LookupError)
    assert issubclass(threadline.InactiveManagerError, RuntimeError)
    with pytest.raises(threadline.InvalidContextError) as e:
        UserContext("", "thread_a", "run_a")
    assert e.value.kind == "context.empty"
    assert str(e.value) == 'user_id is required: got "", expected a non-empty, non-blank id'
    with pytest.raises(threadline.InvalidConfigError) as e:
        Registry(0)
    assert str(e.value) == "registry setting max_managers_per_user = 0 is invalid: expected 1 to 1000000"


def test_seeded_generator_is_deterministic():
    a, b = IdGenerator(seed=7, clock_ms=T0), IdGenerator(seed=7, clock_ms=T0)
    assert [a.base_id("x") for _ in range(3)] == [b.base_id("x") for _ in range(3)]
    assert a.counter == 3
    a.reset_counter()
    assert a.base_id("x", False) == f"x_{T0}_1"
    a.advance_clock_ms(-5_000)
    assert a.base_id("x", False) == f"x_{T0}_2"  # the clock never goes back in ids
    assert a.clock_regressions == 1
    with pytest.raises(threadline.ThreadlineError):
        IdGenerator().set_clock_ms(1)


def test_generator_shared_between_threads_gives_unique_ids():
    g = IdGenerator()
    out: list = []
    lock = threading.Lock()

    def work():
        ids = [g.base_id("t") for _ in range(2000)]
        with lock:
            out.extend(ids)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 16000 == len(set(out))
    assert g.counter == 16000


def test_tracker_shared_between_threads_counts_exactly():
    tr = Tracker()

    def work(i):
        for j in range(500):
            tr.take_snapshot("op", user_id=f"u{i}", user_context_thread_id=f"thread_{i}",
                             manager_thread_id=f"thread_{i}" if j % 10 else f"other_{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a = tr.analyze()
    assert a["total_snapshots"] == 2000
    assert a["inconsistent_snapshots"] == a["total_violations"] == 200


def test_long_report_work_releases_the_gil():
    tr = Tracker()
    for i in range(150_000):
        tr.take_snapshot("manager_creation", user_id="u1", user_context_thread_id="thread_a",
                         manager_thread_id="thread_a", isolation_key="u1:thread_a", now_ms=T0 + i)
    done = threading.Event()
    result: list = []

    def report():
        result.append(tr.report_text())
        result.append(tr.to_json())
        done.set()

    t = threading.Thread(target=report)
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.0005)
    t.join()
    assert result[0].startswith("=== THREAD_ID CONSISTENCY TRACKING REPORT ===")
    # With the GIL held for the whole call this loop could not have run meanwhile.
    assert ticks > 5, ticks


def test_json_round_trip_and_bad_json():
    tr = Tracker(started_ms=T0)
    tr.take_snapshot("a", user_context_thread_id="thread_a", metadata={"n": 1, "s": "x", "l": [1, None]}, now_ms=T0 + 1)
    tr.take_snapshot("b", user_context_thread_id="thread_a", manager_thread_id="thread_b", now_ms=T0 + 2)
    tr.record_violation("custom", "WARNING", "op", {"attempt": 3}, now_ms=T0 + 3)
    j = tr.to_json(now_ms=T0 + 10)
    back = Tracker.from_json(j)
    assert back.to_json() == j
    assert back.report_text() == tr.report_text(now_ms=T0 + 10)
    assert back.snapshots()[0].metadata == {"n": 1, "s": "x", "l": [1, None]}
    assert back.violations()[1]["attempt"] == 3 and back.violations()[1]["details"] == {"attempt": 3}
    for bad, kind in (("{", "report.json"), ('{"schema":"x/2"}', "report.schema"), ("[" * 100_000, "report.too_deep")):
        with pytest.raises(threadline.ReportError) as e:
            Tracker.from_json(bad)
        assert e.value.kind == kind
    with pytest.raises(threadline.ReportError) as e:
        Tracker.from_json(j, max_bytes=10)
    assert e.value.kind == "report.too_large"


def test_bounded_tracker_keeps_counts_exact():
    tr = Tracker(2, started_ms=0)
    for i in range(5):
        tr.take_snapshot("op", user_context_thread_id="thread_a",
                         manager_thread_id="thread_b" if i == 3 else "thread_a", now_ms=i)
    assert len(tr) == 2 and tr.capacity == 2
    a = tr.analyze(now_ms=10)
    assert (a["total_snapshots"], a["retained_snapshots"], a["inconsistent_snapshots"]) == (5, 2, 1)
    assert "(3 earlier snapshots not retained)" in tr.report_text(now_ms=10)
    with pytest.raises(threadline.ReportError):
        Tracker(0)


def test_bounded_tracker_read_back_judges_lookups_as_the_original():
    # u1's manager snapshot is dropped (capacity 2), and its report carries it: a lookup
    # of u1 by the wrong thread is compared with it before and after the round trip.
    tr = Tracker(2, started_ms=0)
    tr.take_snapshot("manager_creation", user_id="u1", manager_thread_id="thread_a",
                     manager_instance_id=7, isolation_key="u1:thread_a", now_ms=1)
    for t in (2, 3):
        tr.take_snapshot("manager_creation", user_id="u2", manager_thread_id="thread_b",
                         isolation_key="u2:thread_b", now_ms=t)
    j = tr.to_json(now_ms=4)
    assert [(s["index"], s["isolation_key"]) for s in json.loads(j)["lookup_snapshots"]] == [(0, "u1:thread_a")]
    back = Tracker.from_json(j)
    assert back.to_json(now_ms=4) == j
    for t in (tr, back):
        s = t.simulate_cleanup_lookup("thread_z", "u1", now_ms=5)
        assert s.mismatch
        assert (s.thread_id_manager_context, s.thread_id_cleanup_lookup) == ("thread_a", "thread_z")
        assert s.manager_instance_id == 7
    assert back.to_json(now_ms=6) == tr.to_json(now_ms=6)


def test_snapshot_constructor_uses_core_rule():
    s = Snapshot(1641234567.123, "x", "thread_a", "thread_a", None, "")
    assert not s.has_thread_id_mismatch()
    s = Snapshot(1641234567.123, "x", "thread_a", None, "thread_b")
    assert s.has_thread_id_mismatch() and s.mismatch
    assert s.get_thread_id_summary() == {"user_context": "thread_a", "manager_context": "None",
                                         "isolation_key": "thread_b", "cleanup_lookup": "None"}
    assert s.timestamp == 1641234567.123


def test_registry_events_feed_a_tracker():
    r = Registry(2)
    tr = Tracker(started_ms=T0)
    ids = IdGenerator(seed=3, clock_ms=T0)
    c1 = UserContext("u1", "thread_a", "run_a", ids=ids)
    created = r.create(c1, now_ms=T0)
    assert not created.reused and created.key == "u1:thread_a"
    assert r.create(c1, now_ms=T0 + 1).reused
    r.add_connection("u1:thread_a", "c1", "u1", now_ms=T0 + 2)
    with pytest.raises(threadline.IsolationViolationError) as e:
        r.add_connection("u1:thread_a", "c2", "u2", now_ms=T0 + 2)
    assert e.value.kind == "registry.isolation_violation"
    assert r.send_to_user("u1:thread_a", "u1") == ["c1"]
    r.create(UserContext("u1", "thread_b", "run_b", ids=ids), now_ms=T0 + 3)
    with pytest.raises(threadline.ManagerLimitError):
        r.create(UserContext("u1", "thread_c", "run_c", ids=ids), now_ms=T0 + 4)
    assert r.force_cleanup_user("u1", now_ms=T0 + 5) == 2
    events = r.drain_events()
    kinds = [e.kind for e in events]
    assert kinds == ["created", "reused", "connection_added", "created", "limit_exceeded",
                     "cleaned_up", "cleaned_up"]
    assert {e.reason for e in events if e.kind == "cleaned_up"} == {"forced"}
    assert events[0].to_dict()["thread_id"] == "thread_a"
    for e in events:
        tr.observe(e)
    a = tr.analyze(now_ms=T0 + 6)
    assert (a["managers_created"], a["managers_cleaned_up"], a["leaked_managers"]) == (2, 2, 0)
    assert [v["type"] for v in tr.violations()] == ["manager_limit_exceeded"]
    with pytest.raises(threadline.UnknownManagerError):
        r.touch("u1:thread_a")


def test_registry_find_by_run_and_legacy_key():
    r = Registry()
    r.create(UserContext("u1", "thread_ws_5_abcd1234", "run_ws_5_abcd1234"))
    assert r.find_by_run("u1", "run_ws_5_abcd1234").thread_id == "thread_ws_5_abcd1234"
    assert r.find_by_thread("u2", "thread_ws_5_abcd1234") is None
    assert r.get("u1_thread_ws_5_abcd1234_run9").key == "u1:thread_ws_5_abcd1234"
    assert "u1:thread_ws_5_abcd1234" in r and len(r) == 1
    assert r.deactivate("u1:thread_ws_5_abcd1234") == 0
    with pytest.raises(threadline.InactiveManagerError):
        r.send_to_user("u1:thread_ws_5_abcd1234", "u1")
    assert r.stats()["active_managers"] == 0


def test_compare_and_filter():
    before = Tracker(started_ms=0)
    before.take_snapshot("op", user_id="u1", user_context_thread_id="thread_a", manager_thread_id="thread_b", now_ms=1)
    before.take_snapshot("op2", user_id="u1", user_context_thread_id="thread_a", now_ms=2)
    after = Tracker(started_ms=0)
    assert before.filter(mismatches_only=True) == [0]
    assert before.filter(operation="op2") == [1]
    c = before.compare(after, now_ms=3)
    assert c["violations_delta"] == -1
    assert c["changed_operations"] == [{"operation": "op", "before": 1, "after": 0}]


def test_session_store_native():
    s = _native.SessionStore(ids=IdGenerator(seed=2, clock_ms=T0))
    a = s.get_or_create("u1", now_ms=0)
    b = s.get_or_create("u1", now_ms=10)
    assert a["created"] and not b["created"] and a["thread_id"] == b["thread_id"]
    ctx = s.context("u1", websocket_client_id="ws-1", now_ms=20)
    assert ctx.thread_id == a["thread_id"] and ctx.websocket_client_id == "ws-1"
    assert s.get_existing("u1")["accesses"] == 3
    assert s.cleanup_expired(5, now_ms=100) == 1 and len(s) == 0


def test_snapshot_metadata_converts_like_every_other_metadata():
    """Tracker snapshots store metadata without the intermediate JSON map: the result is
    the same as the general conversion (keys as str, last duplicate wins, key order,
    floats, big ints, nesting cut at the depth limit)."""
    deep: dict = {}
    d = deep
    for _ in range(40):
        d["n"] = {}
        d = d["n"]
    md = {
        "b": [1, -2, 2.5, float("nan"), None, True, (1, "x")],
        1: "int key",
        "1": "str key wins (inserted last)",
        "a": {"z": {}, "y": 2**70, "x": -(2**63)},
        "deep": deep,
        "float": 3.0,
    }
    t = _native.Tracker()
    got = t.take_snapshot("op", metadata=md).metadata
    want = _native.Snapshot(0.0, "op", metadata=md).metadata
    assert got == want
    assert list(got) == sorted(got)
    assert got["1"] == "str key wins (inserted last)"
    assert t.snapshot(0).to_dict()["metadata"] == want
