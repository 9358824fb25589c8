"""Bad inputs at the drop-in: None, int, bytes, empty, 10 MB strings, lone surrogates,
':' in a user id. Each raises the documented exception (see `threadline.netra`) and
changes nothing."""

import asyncio
import math
import uuid
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest

from threadline import InvalidConfigError, InvalidIdError, ReportError
from threadline.netra import (
    InvalidContextError,
    ThreadIDConsistencyTracker,
    UnifiedIDManager,
    UnifiedIdGenerator,
    UserContextFactory,
    UserExecutionContext,
    WebSocketManagerFactory,
    cleanup_expired_sessions,
    get_active_sessions_count,
    get_or_create_user_session,
)

TEN_MB = "u" * 10_000_000
BAD_USER_IDS = {
    "None": None,
    "int": 42,
    "bytes": b"user-1",
    "empty": "",
    "10 MB": TEN_MB,
    "lone surrogate": "user-\ud800",
    "colon": "user:1",
}
BAD_THREAD_IDS = {k: v for k, v in BAD_USER_IDS.items() if k != "colon"}


@pytest.mark.parametrize("value", BAD_USER_IDS.values(), ids=BAD_USER_IDS.keys())
def test_bad_user_id_everywhere(value):
    f = WebSocketManagerFactory()
    tr = ThreadIDConsistencyTracker()
    tr.observe_factory(f)
    sessions_before = get_active_sessions_count()

    with pytest.raises(InvalidContextError) as e:
        UserExecutionContext(value, "thread_a_1_abcdef12", "run_a_1_abcdef12")
    assert isinstance(e.value, ValueError)
    assert len(str(e.value)) < 300  # a 10 MB value is never echoed whole
    with pytest.raises(InvalidContextError):
        UserExecutionContext.from_websocket_request(value)
    with pytest.raises(InvalidContextError):
        get_or_create_user_session(value)
    duck = SimpleNamespace(user_id=value, thread_id="thread_a_1_abcdef12", run_id="run_a_1_abcdef12")
    with pytest.raises(InvalidContextError):
        asyncio.run(f.create_manager(duck))
    assert len(f._active_managers) == 0
    assert f.get_factory_stats()["factory_metrics"]["managers_created"] == 0
    assert get_active_sessions_count() == sessions_before
    assert tr.analyze()["total_snapshots"] == 0 and tr.violations == []


@pytest.mark.parametrize("value", BAD_THREAD_IDS.values(), ids=BAD_THREAD_IDS.keys())
def test_bad_thread_and_run_ids(value):
    with pytest.raises(InvalidContextError):
        UserExecutionContext("user-1", value, "run_a")
    with pytest.raises(InvalidContextError):
        UserExecutionContext("user-1", "thread_a", value)
    before = get_active_sessions_count()
    if value is not None:  # thread_id=None means "the default session"
        with pytest.raises(InvalidContextError):
            get_or_create_user_session(f"user-{uuid.uuid4().hex[:8]}", thread_id=value)
    assert get_active_sessions_count() == before


@pytest.mark.parametrize("value", list(BAD_USER_IDS.values()) + ["nope", "_1_2"], ids=list(BAD_USER_IDS) + ["word", "no prefix"])
def test_parsers_return_none(value):
    assert UnifiedIdGenerator.parse_id(value) is None
    assert UnifiedIdGenerator.get_id_age(value) == -1
    assert UnifiedIdGenerator.is_valid_id(value) is False
    assert UnifiedIDManager.extract_thread_id(value) is None


def test_generator_errors_are_documented():
    with pytest.raises(TypeError):
        UnifiedIdGenerator.generate_user_context_ids(None)  # type: ignore[arg-type]
    for bad in ("", "a:b", TEN_MB):
        with pytest.raises(ValueError):
            UnifiedIdGenerator.generate_user_context_ids(bad)
    with pytest.raises(ValueError):
        UnifiedIdGenerator.generate_user_context_ids("\ud800")
    with pytest.raises(ValueError):
        UnifiedIdGenerator.generate_base_id("bad prefix")


def test_tracker_bad_operation_records_nothing():
    tr = ThreadIDConsistencyTracker()
    for bad in ("", "o" * 300):
        with pytest.raises(ReportError):
            tr.take_snapshot(bad)
    with pytest.raises(TypeError):
        tr.take_snapshot(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tr.take_snapshot(b"op")  # type: ignore[arg-type]
    assert tr.analyze()["total_snapshots"] == 0
    # An unparsable key is kept whole and warned about, not an error.
    s = tr.take_snapshot("op", isolation_key="garbage")
    assert s.thread_id_isolation_key == "garbage"
    assert [v["severity"] for v in tr.violations] == ["WARNING"]
    # A 10 MB key does not parse: kept whole (the core's rule), warned about with a
    # short error message.
    s = tr.take_snapshot("op", isolation_key="k" * 10_000_000)
    assert s.thread_id_isolation_key == "k" * 10_000_000
    v = tr.violations[-1]
    assert v["type"] == "isolation_key_unparsable" and len(v["details"]["error"]) < 300


# ---- cleanup_expired_sessions: max_age_hours is checked before any work -----------


@pytest.mark.parametrize(
    "value,shown",
    [
        ("24", "'24' (str)"),
        (-1, "-1 (int)"),
        (-0.5, "-0.5 (float)"),
        (math.nan, "nan (float)"),
        (math.inf, "inf (float)"),
        (None, "None (NoneType)"),
        (True, "True (bool)"),
        (Decimal("1"), "Decimal('1') (Decimal)"),
        ("x" * 10_000_000, "'" + "x" * 63 + "... (10000002 characters) (str)"),
    ],
    ids=["str", "negative int", "negative float", "nan", "inf", "None", "bool", "Decimal", "10 MB str"],
)
def test_cleanup_expired_sessions_refuses_a_bad_max_age(value, shown):
    get_or_create_user_session(f"user-{uuid.uuid4().hex[:8]}")
    before = get_active_sessions_count()
    with pytest.raises(InvalidContextError) as e:
        cleanup_expired_sessions(value)
    assert str(e.value) == (
        f"max_age_hours {shown} is invalid: expected a finite number of hours from 0 (int or float)"
    )
    with pytest.raises(InvalidContextError):
        UnifiedIdGenerator.cleanup_expired_sessions(value)
    assert get_active_sessions_count() == before


@pytest.mark.parametrize("value", [24, 0.5, Fraction(1, 2), 10**30, 1e300, 10**400], ids=str)
def test_cleanup_expired_sessions_takes_any_finite_age_from_0(value):
    get_or_create_user_session(f"user-{uuid.uuid4().hex[:8]}")
    before = get_active_sessions_count()
    assert cleanup_expired_sessions(value) == 0  # nothing is that old
    assert get_active_sessions_count() == before


# ---- the factory: bad ids are InvalidContextError, lookups by bad keys find nothing --


BAD_LOOKUP_IDS = [None, 5, b"alice", "alice-\ud800", "\ud800"]


@pytest.mark.parametrize("value", BAD_LOOKUP_IDS, ids=["None", "int", "bytes", "surrogate in id", "surrogate"])
def test_factory_refuses_bad_user_ids_and_finds_nothing_under_bad_keys(value):
    async def body():
        f = WebSocketManagerFactory()
        ctx = UserExecutionContext.from_websocket_request("alice")
        m = await f.create_manager(ctx)
        stats = f.get_factory_stats()
        with pytest.raises(InvalidContextError, match=r"^user_id "):
            await f.force_cleanup_user_managers(value)
        with pytest.raises(InvalidContextError, match=r"^user_id "):
            f.enforce_resource_limits(value)
        assert f.get_manager(value) is None
        assert value not in f._active_managers
        assert await f.cleanup_manager(value) is False
        assert f.get_manager(ctx.isolation_key) is m and m._is_active
        assert f.get_factory_stats() == stats

    asyncio.run(body())


def test_factory_user_id_messages():
    f = WebSocketManagerFactory()
    with pytest.raises(InvalidContextError) as e:
        asyncio.run(f.force_cleanup_user_managers(None))
    assert str(e.value) == "user_id must be a str: got NoneType"
    with pytest.raises(InvalidContextError) as e:
        f.enforce_resource_limits("\ud800")
    assert str(e.value) == "user_id is not valid Unicode text (it holds a lone surrogate): expected printable text"


@pytest.mark.parametrize("value,message", [
    (None, "operation must be a str: got NoneType"),
    (5, "operation must be a str: got int"),
    ("op\ud800", "operation is not valid Unicode text (it holds a lone surrogate): expected printable text"),
], ids=["None", "int", "surrogate"])
def test_context_builders_refuse_a_bad_operation(value, message):
    for build in (
        lambda: UserExecutionContext.from_websocket_request("u1", operation=value),
        lambda: UserContextFactory.create_for_websocket("u1", operation=value),
        lambda: UserContextFactory.create_context("u1", operation=value),
    ):
        with pytest.raises(InvalidContextError) as e:
            build()
        assert str(e.value) == message


# ---- ints that do not fit: the core's error for any value out of range -------------


@pytest.mark.parametrize("n", [-1, -(2**63), 2**64, 2**200], ids=str)
def test_out_of_range_ints_get_the_errors_of_any_value_out_of_range(n):
    with pytest.raises(InvalidIdError) as e:
        UnifiedIdGenerator.generate_batch_ids("p", n)
    assert str(e.value) == f"batch count {n} is out of range: expected 0 to 100000"
    assert e.value.kind == "id.batch_count"
    with pytest.raises(InvalidIdError) as e:
        UnifiedIdGenerator.generate_base_id("p", True, n)
    assert str(e.value) == f"random_length {n} is out of range: expected 1 to 64 hex characters"
    with pytest.raises(InvalidConfigError) as e:
        WebSocketManagerFactory(max_managers_per_user=n)
    assert str(e.value) == f"registry setting max_managers_per_user = {n} is invalid: expected 1 to 1000000"
    assert e.value.kind == "registry.config"


def test_out_of_range_ints_are_shown_short_and_as_numbers():
    class Shy(int):
        def __str__(self):
            return "shy"

        __repr__ = __str__

    with pytest.raises(InvalidConfigError) as e:
        WebSocketManagerFactory(max_managers_per_user=Shy(-5))
    assert str(e.value) == "registry setting max_managers_per_user = -5 is invalid: expected 1 to 1000000"
    with pytest.raises(InvalidIdError) as e:
        UnifiedIdGenerator.generate_batch_ids("p", 10**100)
    assert str(e.value) == "batch count 1" + "0" * 63 + "… (101 digits) is out of range: expected 0 to 100000"
    # Not an int: still a TypeError; a bad prefix is named before the count.
    with pytest.raises(TypeError):
        UnifiedIdGenerator.generate_batch_ids("p", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WebSocketManagerFactory(max_managers_per_user="20")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdError, match="^prefix "):
        UnifiedIdGenerator.generate_batch_ids("bad prefix", -1)
    assert UnifiedIdGenerator.generate_batch_ids("p", 0) == []
