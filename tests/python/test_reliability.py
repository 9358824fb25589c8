"""Reliability of the Python package (issue 7): threads and asyncio tasks racing on one
factory, and bad input at every entry point. A bad input gets the documented exception
and changes nothing; no Rust panic ever reaches Python (it would arrive as
`pyo3_runtime.PanicException`, which these tests treat as a failure)."""

import asyncio
import collections
import math
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import threadline
from threadline import _native, netra

THREADS = 8
OPS_PER_THREAD = 10_000
MAX_PER_USER = 5


def is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException"


class FastWebSocket:
    """Records what it is sent; never sleeps (so 80,000 operations stay quick)."""

    def __init__(self) -> None:
        self.sent = 0

    async def send_json(self, data: Dict[str, Any]) -> None:
        self.sent += 1


def connection(cid: str, user_id: str) -> netra.WebSocketConnection:
    return netra.WebSocketConnection(cid, user_id, FastWebSocket(), datetime.now(timezone.utc))


def native_ctx(user: str, thread: str) -> _native.UserContext:
    return _native.UserContext(user, thread, f"run_{thread}", f"req_{thread}")


class EventCounter:
    """A factory observer: counts the registry's created and cleaned-up events."""

    def __init__(self) -> None:
        self.created = 0
        self.cleaned = 0
        self.refused = 0

    def observe(self, ev: _native.RegistryEvent) -> None:
        if ev.kind == "created":
            self.created += 1
        elif ev.kind == "cleaned_up":
            self.cleaned += 1
        elif ev.kind == "limit_exceeded":
            self.refused += 1


def check_factory(factory: netra.WebSocketManagerFactory, full: bool) -> None:
    """Invariants, read under the factory's lock so the view is consistent."""
    reg = factory._registry
    with factory._lock:
        stats = reg.stats()
        counts = dict(reg.user_counts())
        keys = reg.keys()
        per_key_user = collections.Counter(k.split(":", 1)[0] for k in keys)
        assert counts == dict(per_key_user), "counts differ from the keys held"
        assert all(n <= MAX_PER_USER for n in counts.values()), counts
        assert stats["managers_created"] - stats["managers_cleaned_up"] == stats["managers_registered"]
        assert stats["managers_registered"] == len(keys) == len(reg)
        if full:
            conns = 0
            for user in counts:
                for info in reg.user_managers(user):
                    for c in info.connections():
                        assert c["user_id"] == info.user_id, "a manager holds another user's connection"
                    conns += len(info.connection_ids)
            assert conns == stats["connections"]


def test_threads_hammer_one_factory() -> None:
    factory = netra.WebSocketManagerFactory(max_managers_per_user=MAX_PER_USER)
    events = EventCounter()
    factory.add_observer(events)
    tallies: List[Dict[str, int]] = []
    failures: List[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        tally = collections.Counter()
        rng_state = [0x9E3779B9 ^ (t + 1)]

        def rnd(n: int) -> int:
            x = rng_state[0]
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            rng_state[0] = x
            return x % n

        managers: List[netra.IsolatedWebSocketManager] = []

        async def run() -> None:
            start.wait()
            for i in range(OPS_PER_THREAD):
                user = "hot" if rnd(10) < 7 else f"user{t}"
                choice = rnd(100)
                try:
                    if choice < 35:
                        m = await factory.create_manager(native_ctx(user, f"thread_{rnd(12)}"))
                        managers.append(m)
                        tally["created_or_reused"] += 1
                    elif choice < 55 and managers:
                        m = managers[rnd(len(managers))]
                        owner = m.user_context.user_id
                        wrong = rnd(10) == 0
                        await m.add_connection(connection(f"c{t}_{rnd(4)}", "intruder" if wrong else owner))
                        assert not wrong, "another user's connection was admitted"
                    elif choice < 70 and managers:
                        m = managers[rnd(len(managers))]
                        await m.send_to_user(m.user_context.user_id, {"n": i})
                    elif choice < 85 and managers:
                        m = managers.pop(rnd(len(managers)))
                        tally["cleanup_true"] += int(await factory.cleanup_manager(m.isolation_key))
                    elif choice < 90:
                        tally["forced"] += await factory.force_cleanup_user_managers(user)
                    elif choice < 95 and managers:
                        await managers[rnd(len(managers))].cleanup_all_connections()
                    else:
                        tally["expired"] += await factory.force_cleanup_all_expired()
                except threadline.ManagerLimitError:
                    tally["refused"] += 1
                    assert factory._registry.user_count(user) <= MAX_PER_USER
                except threadline.IsolationViolationError:
                    tally["isolation"] += 1
                except threadline.InactiveManagerError:
                    tally["inactive"] += 1
                if len(managers) > 64:
                    del managers[:32]
                check_factory(factory, full=(i % 200 == 0))
                tally["ops"] += 1

        try:
            asyncio.run(run())
        except BaseException as e:  # reported below, with panics named
            failures.append(e)
        tallies.append(tally)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not any(is_panic(e) for e in failures), failures
    assert not failures, failures
    total = collections.Counter()
    for t in tallies:
        total.update(t)
    check_factory(factory, full=True)
    stats = factory._registry.stats()
    assert total["ops"] == THREADS * OPS_PER_THREAD
    # Nothing lost: the events account for every manager, and the refusals for the hits.
    assert events.created == stats["managers_created"]
    assert events.cleaned == stats["managers_cleaned_up"]
    assert events.created - events.cleaned == len(factory._registry)
    assert total["refused"] == stats["limit_hits"] == events.refused
    assert total["isolation"] == stats["isolation_violations"]
    assert total["refused"] > 100, "the race for the hot user's slots never happened"
    print(
        f"\npython threads: {THREADS} x {OPS_PER_THREAD} ops; created {stats['managers_created']}, "
        f"refused at the limit {stats['limit_hits']}, cleaned {stats['managers_cleaned_up']}, "
        f"isolation refusals {stats['isolation_violations']}, held {len(factory._registry)}"
    )


def test_asyncio_tasks_race_for_the_last_slots() -> None:
    async def round_(factory: netra.WebSocketManagerFactory, held: int, n: int) -> Tuple[int, int]:
        await factory.force_cleanup_user_managers("hot")
        for i in range(held):
            await factory.create_manager(native_ctx("hot", f"thread_held_{i}"))

        async def one(k: int) -> bool:
            await asyncio.sleep(0)
            try:
                await factory.create_manager(native_ctx("hot", f"thread_{n}_{k}"))
                return True
            except threadline.ManagerLimitError as e:
                assert "hot" in str(e) and str(MAX_PER_USER) in str(e)
                return False

        results = await asyncio.gather(*(one(k) for k in range(32)))
        return sum(results), len(results) - sum(results)

    factory = netra.WebSocketManagerFactory(max_managers_per_user=MAX_PER_USER)
    for n in range(50):
        held = n % MAX_PER_USER
        admitted, refused = asyncio.run(round_(factory, held, n))
        assert admitted == MAX_PER_USER - held
        assert refused == 32 - admitted
        assert factory._registry.user_count("hot") == MAX_PER_USER
        check_factory(factory, full=True)


def test_threads_each_running_tasks_race_for_the_same_slots() -> None:
    factory = netra.WebSocketManagerFactory(max_managers_per_user=MAX_PER_USER)
    admitted: List[int] = []
    start = threading.Barrier(4)

    def worker(t: int) -> None:
        async def go() -> int:
            start.wait()

            async def one(k: int) -> int:
                await asyncio.sleep(0)
                try:
                    await factory.create_manager(native_ctx("hot", f"thread_{t}_{k}"))
                    return 1
                except threadline.ManagerLimitError:
                    return 0

            return sum(await asyncio.gather(*(one(k) for k in range(16))))

        admitted.append(asyncio.run(go()))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(admitted) == MAX_PER_USER
    assert factory._registry.stats()["limit_hits"] == 4 * 16 - MAX_PER_USER
    check_factory(factory, full=True)


# ---- bad input -----------------------------------------------------------------------

TEN_MB = "x" * (10 * 1024 * 1024)
SURROGATE = "user\ud800"
ESCAPED_BYTES = b"user\xff\xfe".decode("utf-8", "surrogateescape")  # invalid UTF-8, as Python keeps it

# (label, bad value, exception the native layer raises for a required str argument)
BAD_TEXT: List[Tuple[str, Any, Tuple[type, ...]]] = [
    ("None", None, (TypeError,)),
    ("int", 7, (TypeError,)),
    ("float", 1.5, (TypeError,)),
    ("bytes", b"user", (TypeError,)),
    ("invalid utf-8 bytes", b"\xff\xfe", (TypeError,)),
    ("list", ["user"], (TypeError,)),
    ("object", object(), (TypeError,)),
    ("lone surrogate", SURROGATE, (UnicodeEncodeError,)),
    ("surrogate-escaped bytes", ESCAPED_BYTES, (UnicodeEncodeError,)),
    ("empty", "", (threadline.ThreadlineError,)),
    ("blank", "   ", (threadline.ThreadlineError,)),
    ("NUL", "us\0er", (threadline.ThreadlineError,)),
    ("control", "us\x1ber", (threadline.ThreadlineError,)),
    ("10 MB", TEN_MB, (threadline.ThreadlineError,)),
]


def expect(exc: Tuple[type, ...], fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except BaseException as e:  # a panic must never arrive here
        assert not is_panic(e), f"a Rust panic crossed into Python: {e!r}"
        assert isinstance(e, exc), f"{type(e).__name__}: {e} (expected {exc})"
        assert len(str(e)) < 2048, "error messages stay short whatever the input"
        return e
    raise AssertionError(f"no exception (expected {exc})")


class World:
    """One of every stateful object, and a fingerprint of all their state."""

    def __init__(self) -> None:
        self.ids = _native.IdGenerator(seed=1, clock_ms=1_764_000_000_000)
        self.reg = _native.Registry(2)
        self.ctx = _native.UserContext("alice", "thread_a", "run_a", "req_a", ids=self.ids)
        self.reg.create(self.ctx, now_ms=1_764_000_000_000)
        self.reg.add_connection("alice:thread_a", "c1", "alice", now_ms=1_764_000_000_000)
        self.reg.drain_events()
        self.tracker = _native.Tracker(started_ms=1_764_000_000_000)
        self.tracker.take_snapshot("manager_creation", isolation_key="alice:thread_a", now_ms=1_764_000_000_001)
        self.sessions = _native.SessionStore(ids=self.ids)
        self.sessions.get_or_create("alice", now_ms=1_764_000_000_000)
        self.factory = netra.WebSocketManagerFactory(max_managers_per_user=2)

    def fingerprint(self) -> Tuple[Any, ...]:
        infos = [
            (k, i.manager_id, i.active, i.last_activity_ms, i.connection_ids)
            for k in self.reg.keys()
            for i in [self.reg.get(k)]
            if i is not None
        ]
        s = self.reg.stats()
        return (
            self.ids.counter,
            self.ids.clock_regressions,
            infos,
            s["managers_created"],
            s["managers_cleaned_up"],
            s["connections"],
            self.reg.pending_events(),
            self.tracker.to_json(now_ms=0),
            self.sessions.active_count(),
            self.sessions.get_existing("alice"),
            self.factory._registry.stats(),
        )


# Entry points where None is a documented "not given".
OPTIONAL = {"UserContext.request_id"}


def text_entry_points(w: World) -> List[Tuple[str, Callable[[Any], Any]]]:
    """Every entry point that takes an id or name, with the bad value in one place."""
    return [
        ("UserContext.user_id", lambda v: _native.UserContext(v, "thread_a", "run_a", "req_a")),
        ("UserContext.thread_id", lambda v: _native.UserContext("alice", v, "run_a", "req_a")),
        ("UserContext.run_id", lambda v: _native.UserContext("alice", "thread_a", v, "req_a")),
        ("UserContext.request_id", lambda v: _native.UserContext("alice", "thread_a", "run_a", v)),
        ("IsolationKey.user", lambda v: _native.IsolationKey(v, "thread_a")),
        ("IsolationKey.thread", lambda v: _native.IsolationKey("alice", v)),
        ("IsolationKey.parse", lambda v: _native.IsolationKey.parse(v)),
        ("parse_id", lambda v: _native.parse_id(v)),
        ("ids.websocket_client_id", lambda v: w.ids.websocket_client_id(v)),
        ("ids.user_context_ids", lambda v: w.ids.user_context_ids(v)),
        ("ids.base_id prefix", lambda v: w.ids.base_id(v)),
        ("ids.manager_run_id", lambda v: w.ids.manager_run_id(v)),
        ("sessions.get_or_create", lambda v: w.sessions.get_or_create(v, now_ms=1)),
        ("registry.add_connection id", lambda v: w.reg.add_connection("alice:thread_a", v, "alice")),
        ("tracker.take_snapshot operation", lambda v: w.tracker.take_snapshot(v)),
        ("tracker.record_violation type", lambda v: w.tracker.record_violation(v, "WARNING")),
    ]


@pytest.mark.parametrize("label,value,exc", BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
def test_bad_text_gets_the_documented_exception_and_changes_nothing(label: str, value: Any, exc: Tuple[type, ...]) -> None:
    w = World()
    before = w.fingerprint()
    for name, call in text_entry_points(w):
        if value is None and name in OPTIONAL:
            continue  # None means "not given" there (a request id is then minted)
        if label in ("blank", "NUL", "control") and name.startswith("tracker."):
            continue  # tracker names are any text of 1 to 256 bytes (tested below)
        try:
            expect(exc, lambda: call(value))
        except AssertionError as e:
            raise AssertionError(f"{name} with {label}: {e}") from None
    assert w.fingerprint() == before


def test_tracker_names_accept_any_short_text_and_refuse_long_or_empty() -> None:
    w = World()
    before = w.fingerprint()
    for bad in ["", TEN_MB, "o" * 257]:
        expect((threadline.ReportError,), lambda: w.tracker.take_snapshot(bad))
        expect((threadline.ReportError,), lambda: w.tracker.record_violation(bad, "WARNING"))
    for bad in [None, 5, b"op", SURROGATE]:
        expect((TypeError, UnicodeEncodeError), lambda: w.tracker.take_snapshot(bad))
    assert w.fingerprint() == before


def test_netra_layer_refuses_bad_ids_with_invalid_context_error() -> None:
    for label, value, _ in BAD_TEXT:
        e = expect(
            (netra.InvalidContextError,),
            lambda: netra.UserExecutionContext(value, "thread_a", "run_a"),
        )
        assert isinstance(e, ValueError), label
    expect((netra.InvalidContextError,), lambda: netra.UserExecutionContext("a:b", "thread_a", "run_a"))
    for depth in [-1, 10_001, 2**64 - 1, 1.5, True, None]:
        expect((netra.InvalidContextError,), lambda: netra.UserExecutionContext("alice", "thread_a", "run_a", operation_depth=depth))
    # The factory refuses a bad context and changes nothing.
    factory = netra.WebSocketManagerFactory(max_managers_per_user=2)
    before = factory.get_factory_stats()
    for bad in [None, 5, "alice:thread", object()]:
        expect((netra.InvalidContextError,), lambda: asyncio.run(factory.create_manager(bad)))
    assert factory.get_factory_stats() == before
    # Parsers answer None for anything that does not parse.
    for label, value, _ in BAD_TEXT:
        assert netra.UnifiedIdGenerator.parse_id(value) is None, label


def test_netra_depth_past_u64_is_an_invalid_context_error() -> None:
    expect((netra.InvalidContextError,), lambda: netra.UserExecutionContext("alice", "thread_a", "run_a", operation_depth=2**70))


def test_colon_in_a_user_id() -> None:
    w = World()
    before = w.fingerprint()
    e = expect((threadline.InvalidContextError,), lambda: _native.UserContext("alice:admin", "thread_a", "run_a", "req_a"))
    assert "':'" in str(e)
    expect((threadline.InvalidKeyError,), lambda: _native.IsolationKey("alice:admin", "thread_a"))
    expect((threadline.InvalidIdError,), lambda: w.ids.websocket_connection_id("alice:admin"))
    expect((threadline.InvalidContextError,), lambda: w.sessions.get_or_create("alice:admin", now_ms=1))
    k = _native.IsolationKey.parse("alice:admin:thread_a")
    assert (k.user_id, k.thread_id) == ("alice", "admin:thread_a")
    assert w.fingerprint() == before


BAD_NUMBERS = [-1, -(2**63), 2**64, 2**200]


def test_negative_and_huge_numbers() -> None:
    w = World()
    before = w.fingerprint()
    for n in BAD_NUMBERS:
        # A limit, count or length that does not fit gets the core's error for any
        # value out of range; the other numbers are OverflowError.
        e = expect((threadline.InvalidConfigError,), lambda: _native.Registry(n))
        assert str(e) == f"registry setting max_managers_per_user = {n} is invalid: expected 1 to 1000000"
        e = expect((threadline.InvalidIdError,), lambda: w.ids.batch_ids("x", n))
        assert str(e) == f"batch count {n} is out of range: expected 0 to 100000"
        e = expect((threadline.InvalidIdError,), lambda: w.ids.base_id("x", True, n))
        assert str(e) == f"random_length {n} is out of range: expected 1 to 64 hex characters"
        expect((OverflowError,), lambda: w.reg.create(w.ctx, now_ms=n))
        expect((OverflowError,), lambda: w.reg.expire_idle(now_ms=n))
        expect((OverflowError,), lambda: w.tracker.take_snapshot("op", now_ms=n))
        expect((OverflowError,), lambda: _native.Tracker(n))
        expect((OverflowError,), lambda: _native.Tracker.from_json("{}", max_bytes=n))
        expect((OverflowError,), lambda: w.sessions.cleanup_expired(n, now_ms=1))
        expect((OverflowError,), lambda: _native.UserContext("alice", "thread_a", "run_a", "req_a", operation_depth=n))
    for n in [0, 1_000_001]:
        expect((threadline.InvalidConfigError,), lambda: _native.Registry(n))
    for secs in [-1.0, math.nan, math.inf, -math.inf, 1e300]:
        expect((threadline.InvalidConfigError,), lambda: _native.Registry(20, secs))
        expect((threadline.InvalidIdError,), lambda: w.ids.websocket_client_id("alice", secs))
    expect((threadline.InvalidIdError,), lambda: w.ids.batch_ids("x", 10**12))
    expect((threadline.InvalidIdError,), lambda: w.ids.base_id("x", True, 0))
    expect((threadline.InvalidIdError,), lambda: w.ids.base_id("x", True, 2**40))
    expect((threadline.ReportError,), lambda: _native.Tracker(0))
    expect((TypeError,), lambda: _native.Registry("20"))
    expect((TypeError,), lambda: _native.Registry(None))  # type: ignore[arg-type]
    assert w.fingerprint() == before
    # The largest representable times are not an error, and do not overflow.
    big = 2**64 - 1
    w.reg.touch("alice:thread_a", now_ms=big)
    assert w.reg.expire_idle(now_ms=big) == 0
    assert _native.id_age_ms("x_1_2", now_ms=big) == 2**63 - 1


def test_a_clock_going_backwards_keeps_ids_unique_and_is_counted() -> None:
    g = _native.IdGenerator(seed=3, clock_ms=1_764_000_000_000)
    seen = set()
    for i in range(1000):
        if i % 100 == 50:
            g.advance_clock_ms(-3_600_000)
        else:
            g.advance_clock_ms(1)
        for make in (lambda: g.base_id("req", False), lambda: g.websocket_connection_id("alice")):
            ident = make()
            assert ident not in seen
            seen.add(ident)
    assert len(seen) == 2000
    assert g.clock_regressions > 0
    g.set_clock_ms(0)
    assert _native.parse_id(g.base_id("x")).timestamp >= 1_764_000_000_000


def test_reports_truncated_wrong_schema_oversized_or_deep_are_refused() -> None:
    tr = _native.Tracker(started_ms=1_764_000_000_000)
    tr.take_snapshot("manager_creation", user_id="alice", user_context_thread_id="thread_a", isolation_key="alice:thread_b", now_ms=1_764_000_000_001)
    text = tr.to_json(now_ms=1_764_000_000_002)
    assert _native.Tracker.from_json(text).to_json() == text
    for cut in range(0, len(text), 7):
        e = expect((threadline.ReportError,), lambda: _native.Tracker.from_json(text[:cut]))
        assert str(e).startswith("report cannot be read: ")
    for schema in ['"threadline.report/2"', '"threadline.report/0"', "null"]:
        e = expect((threadline.ReportError,), lambda: _native.Tracker.from_json(text.replace('"threadline.report/1"', schema, 1)))
        assert "schema" in str(e)
    expect((threadline.ReportError,), lambda: _native.Tracker.from_json(text.replace('"threadline.report/1"', "1", 1)))
    e = expect((threadline.ReportError,), lambda: _native.Tracker.from_json(text, max_bytes=len(text) - 1))
    assert "bytes" in str(e)
    assert _native.Tracker.from_json(text, max_bytes=len(text)).total_snapshots == 1
    for deep in ["[" * 100_000, '{"a":' * 100_000, "[" * (10 * 1024 * 1024)]:
        e = expect((threadline.ReportError,), lambda: _native.Tracker.from_json(deep))
        assert "deep" in str(e)
    expect((TypeError,), lambda: _native.Tracker.from_json(text.encode()))  # type: ignore[arg-type]
    expect((TypeError,), lambda: _native.Tracker.from_json(None))  # type: ignore[arg-type]
    expect((UnicodeEncodeError,), lambda: _native.Tracker.from_json(text[:-1] + "\ud800}"))
    # The netra tracker refuses the same way.
    expect((threadline.ReportError,), lambda: netra.ThreadIDConsistencyTracker.from_json(text[:10]))


def test_no_panic_from_a_sweep_of_odd_calls() -> None:
    """Every public callable of the native module with odd arguments: whatever it raises
    is an ordinary exception, never a panic."""
    w = World()
    odd: List[Any] = [None, "", "x", SURROGATE, -1, 0, 2**64, 1.5, math.nan, b"\xff", [], {}, object()]
    targets: List[Callable[..., Any]] = [
        _native.parse_id,
        _native.is_valid_id,
        _native.id_age_ms,
        _native.parse_context_id,
        _native.run_readings,
        _native.thread_id_for_run,
        _native.are_correlated,
        _native.correlation,
        _native.IsolationKey.parse,
        _native.Tracker.from_json,
        w.reg.get,
        w.reg.cleanup,
        w.reg.user_count,
        w.reg.force_cleanup_user,
        w.reg.send_to_user,
        w.reg.find_by_run,
        w.reg.manager,
        w.reg.cleanup_id,
        w.tracker.simulate_cleanup_lookup,
        w.tracker.snapshot,
        w.sessions.get_existing,
        w.sessions.invalidate_user,
        w.ids.simple_id,
        w.ids.session_id,
        w.ids.message_id,
    ]
    calls = 0
    for fn in targets:
        for a in odd:
            for args in [(a,), (a, a), ("alice:thread_a", a)]:
                try:
                    fn(*args)
                except BaseException as e:
                    assert not is_panic(e), f"{fn!r}{args!r}: panic {e!r}"
                    assert isinstance(e, Exception)
                calls += 1
    assert calls == len(targets) * len(odd) * 3
