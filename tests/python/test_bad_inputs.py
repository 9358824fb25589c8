"""Bad inputs at the drop-in: None, int, bytes, empty, 10 MB strings, lone surrogates,
':' in a user id. Each raises the documented exception (see `threadline.netra`) and
changes nothing."""

import asyncio
import uuid
from types import SimpleNamespace

import pytest

from threadline import ReportError
from threadline.netra import (
    InvalidContextError,
    ThreadIDConsistencyTracker,
    UnifiedIDManager,
    UnifiedIdGenerator,
    UserExecutionContext,
    WebSocketManagerFactory,
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
