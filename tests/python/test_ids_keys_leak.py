"""Section-1 formats round-trip through the parser; the seed's legacy key; run/thread
correlation; the 20-manager leak and its fix through the session store."""

import asyncio
import re
import time
import uuid
from datetime import datetime, timezone

import pytest

from threadline import IsolationKey, Registry, UserContext, _native, parse_context_id
from threadline.netra import (
    ManagerLimitError,
    ThreadIDConsistencyTracker,
    UnifiedIDManager,
    UnifiedIdGenerator,
    UserExecutionContext,
    WebSocketConnection,
    WebSocketManagerFactory,
    get_or_create_user_session,
    parse_id,
)

from conftest import RecordingWebSocket

G = UnifiedIdGenerator
LEGACY_KEY = "user123_thread_websocket_factory_1234567890_abc_def123_run456"
LEGACY_THREAD = "thread_websocket_factory_1234567890_abc_def123"
HEX8 = re.compile(r"^[0-9a-f]{8}$")


def now_ms() -> int:
    return int(time.time() * 1000)


def check(id_: str, prefix: str, random_len: int = 8, ts: "int | None" = None) -> None:
    c = parse_id(id_)
    assert c is not None, id_
    assert c.prefix == prefix
    assert c.full_id == id_
    assert len(c.random) == random_len and re.fullmatch(r"[0-9a-f]*", c.random)
    if ts is None:
        assert abs(c.timestamp - now_ms()) < 60_000
    else:
        assert c.timestamp == ts
    assert id_ == f"{c.prefix}_{c.timestamp}_{c.counter}" + (f"_{c.random}" if c.random else "")
    if ts is None:
        assert G.is_valid_id(id_)
        assert G.is_valid_id(id_, prefix[:3])
        assert not G.is_valid_id(id_, "nomatch")
        assert 0 <= G.get_id_age(id_) < 60_000
    else:
        # A given connection time: valid only within a year of now.
        assert G.is_valid_id(id_) == (now_ms() - ts <= 365 * 24 * 3600 * 1000)
        assert G.get_id_age(id_) >= now_ms() - ts - 60_000


def test_base_ids_round_trip():
    check(G.generate_base_id(), "id")
    check(G.generate_base_id("req"), "req")
    check(G.generate_base_id("req", include_random=False), "req", random_len=0)
    check(G.generate_base_id("x", True, 5), "x", random_len=5)
    a, b = parse_id(G.generate_base_id("req")), parse_id(G.generate_base_id("req"))
    assert b.counter == a.counter + 1


def test_user_scoped_ids_round_trip():
    check(G.generate_websocket_client_id("user-1234567890"), "ws_client_user-123")
    check(G.generate_websocket_connection_id("bob"), "ws_conn_bob")
    check(G.generate_websocket_connection_id("bob", 1_700_000_000.5), "ws_conn_bob", ts=1_700_000_000_500)
    check(G.generate_websocket_client_id("bob", 1_700_000_000.0), "ws_client_bob", ts=1_700_000_000_000)
    check(G.generate_session_id("alice_long_name"), "session_web_alice_lo")
    check(G.generate_session_id("bob", "mobile"), "session_mobile_bob")
    check(G.generate_agent_execution_id("triage", "user-1234567890"), "agent_triage_user-123")
    check(G.generate_message_id("chat", "bob"), "msg_chat_bob")
    check(G.generate_message_id("chat", "bob", "thread_ws_7_abcdef1234"), "msg_chat_bob_abcdef12")
    # Any user id a context accepts: its first 8 characters as they are.
    check(G.generate_session_id("user@example.com"), "session_web_user@exa")
    check(G.generate_agent_execution_id("triage", "日本語のユーザーID"), "agent_triage_日本語のユーザー")
    check(G.generate_message_id("chat", "user 1", "a:b"), "msg_chat_user 1_a:b")


def test_batch_ids_share_one_ms():
    ids = G.generate_batch_ids("evt", 3)
    parsed = [parse_id(i) for i in ids]
    assert len({p.timestamp for p in parsed}) == 1
    assert [p.counter - parsed[0].counter for p in parsed] == [0, 1, 2]
    assert all(p.prefix == "evt" and HEX8.match(p.random) for p in parsed)
    plain = G.generate_batch_ids("evt", 2, include_random=False)
    assert all(parse_id(i).random == "" for i in plain)
    assert G.generate_batch_ids("evt", 0) == []


def test_simple_id_format():
    i = G.generate_id("conn")
    assert re.fullmatch(r"conn_[0-9a-f]{8}", i)


def test_user_context_ids_are_correlated_and_parse():
    thread_id, run_id, request_id = G.generate_user_context_ids("user123", "websocket_factory")
    t, r, q = parse_context_id(thread_id), parse_context_id(run_id), parse_context_id(request_id)
    assert (t[0], r[0], q[0]) == ("thread", "run", "request")
    assert t[1] == r[1] == q[1] == "websocket_factory"
    assert t[2] == r[2] and q[2] == t[2] + 1
    assert t[3] == r[3] and HEX8.match(t[3]) and HEX8.match(q[3])
    assert thread_id == f"thread_websocket_factory_{t[2]}_{t[3]}"
    # The generator run id and its thread are correlated, both ways.
    assert UnifiedIDManager.extract_thread_id(run_id) == thread_id
    assert UnifiedIDManager.are_correlated(thread_id, run_id)
    _, other_run, _ = G.generate_user_context_ids("user123", "websocket_factory")
    assert not UnifiedIDManager.are_correlated(thread_id, other_run)
    # An operation with underscores is not cut at the first '_'.
    th, run, _ = G.generate_user_context_ids("u1", "thread_consistency_test")
    assert UnifiedIDManager.extract_thread_id(run) == th


def test_manager_run_ids_round_trip():
    thread_id = "different-thread-abcd1234"
    run_id = UnifiedIDManager.generate_run_id(thread_id)
    m = re.fullmatch(r"run_different-thread-abcd1234_(\d{1,5})_([0-9a-f]{8})", run_id)
    assert m and (m.group(1) == "0" or not m.group(1).startswith("0"))
    assert UnifiedIDManager.are_correlated(thread_id, run_id)
    assert (thread_id, "manager") in UnifiedIDManager.run_readings(run_id)
    assert _native.correlation(thread_id, run_id) == "manager"


def test_ambiguous_run_id_reads_generator_first():
    run = "run_thread_consistency_test_5_abcd1234"
    assert UnifiedIDManager.extract_thread_id(run) == "thread_thread_consistency_test_5_abcd1234"
    assert UnifiedIDManager.run_readings(run) == [
        ("thread_thread_consistency_test_5_abcd1234", "generator"),
        ("thread_consistency_test", "manager"),
    ]
    assert UnifiedIDManager.are_correlated("thread_consistency_test", run)
    assert not UnifiedIDManager.are_correlated("thread_consistency", run)


def test_sessions_hand_out_the_same_thread():
    user = f"session-user-{uuid.uuid4().hex[:8]}"
    a = get_or_create_user_session(user)
    b = get_or_create_user_session(user)
    assert set(a) == {"thread_id", "run_id", "request_id"}
    assert a["thread_id"] == b["thread_id"] and a["run_id"] == b["run_id"]
    assert a["request_id"] != b["request_id"]
    assert UnifiedIDManager.are_correlated(a["thread_id"], a["run_id"])
    c = get_or_create_user_session(user, run_id="run_other_1_abcdef12")
    assert c["thread_id"] == a["thread_id"] and c["run_id"] == "run_other_1_abcdef12"
    given = get_or_create_user_session(user, thread_id="thread_chat_9_abcdef12")
    assert given["thread_id"] == "thread_chat_9_abcdef12"
    assert UnifiedIDManager.are_correlated(given["thread_id"], given["run_id"])
    assert G.get_existing_session(user)["thread_id"] == a["thread_id"]
    assert G.get_existing_session(user, "thread_nope") is None
    before = G.get_active_sessions_count()
    assert G.invalidate_user_sessions(user) == 2
    assert G.get_active_sessions_count() == before - 2
    assert G.cleanup_expired_sessions() >= 0


def test_seed_legacy_key():
    k = IsolationKey.parse(LEGACY_KEY)
    assert (k.user_id, k.thread_id, k.form, k.run_token) == ("user123", LEGACY_THREAD, "legacy", "run456")
    assert str(k) == LEGACY_KEY
    assert k.canonical() == f"user123:{LEGACY_THREAD}"
    tr = ThreadIDConsistencyTracker()
    ctx = UserExecutionContext("user123", LEGACY_THREAD, "run456")
    s = tr.take_snapshot("manager_creation", user_context=ctx, isolation_key=LEGACY_KEY)
    assert s.thread_id_isolation_key == LEGACY_THREAD
    assert not s.has_thread_id_mismatch()
    # The seed's canonical-key form of the defect: `user:thread_websocket_...` agrees too.
    s = tr.take_snapshot("manager_creation", user_context=ctx, isolation_key=f"user123:{LEGACY_THREAD}")
    assert s.thread_id_isolation_key == LEGACY_THREAD and not s.has_thread_id_mismatch()
    assert tr.analyze_consistency()["total_violations"] == 0

    async def body():
        f = WebSocketManagerFactory()
        m = await f.create_manager(ctx)
        assert f.get_manager(LEGACY_KEY) is m
        assert await f.cleanup_manager(LEGACY_KEY)
        assert len(f._active_managers) == 0

    asyncio.run(body())


def _conn(user_id):
    cid = f"conn-{uuid.uuid4().hex[:8]}"
    return WebSocketConnection(cid, user_id, RecordingWebSocket(cid), datetime.now(timezone.utc), {})


def test_twenty_manager_leak_and_session_store_fix():
    user = f"leak-user-{uuid.uuid4().hex[:8]}"

    async def body():
        leaky = WebSocketManagerFactory(max_managers_per_user=20)
        tracker = ThreadIDConsistencyTracker()
        leaky.add_observer(tracker)
        # A new thread id per connection (the bug): each connection a new, fresh manager.
        for _ in range(20):
            m = await leaky.create_manager(UserExecutionContext.from_websocket_request(user))
            await m.add_connection(_conn(user))
        assert len(leaky._active_managers) == 20
        assert all(m._is_active for _, m in leaky._active_managers.items())
        with pytest.raises(RuntimeError, match=r"User .* has reached the maximum number of WebSocket managers \(20\)") as e:
            await leaky.create_manager(UserExecutionContext.from_websocket_request(user))
        assert isinstance(e.value, ManagerLimitError) and user in str(e.value)
        assert len(leaky._active_managers) == 20  # the refused create changed nothing
        a = tracker.analyze()
        assert a["managers_created"] == 20 and a["leaked_managers"] == 20
        assert [v["type"] for v in tracker.violations] == ["manager_limit_exceeded"]
        # Fixed: force cleanup removes ALL of the user's (fresh) managers.
        assert await leaky.force_cleanup_user_managers(user) == 20
        assert len(leaky._active_managers) == 0
        assert tracker.analyze()["leaked_managers"] == 0

        # The fix at the root: the session store gives every connection the same thread.
        fixed = WebSocketManagerFactory(max_managers_per_user=20)
        managers = set()
        for _ in range(25):
            s = get_or_create_user_session(user)
            m = await fixed.create_manager(UserExecutionContext(user, s["thread_id"], s["run_id"], s["request_id"]))
            await m.add_connection(_conn(user))
            managers.add(id(m))
        assert len(managers) == 1
        assert len(fixed._active_managers) == 1
        assert fixed.get_factory_stats()["user_distribution"] == {user: 1}

    asyncio.run(body())


def test_stale_managers_make_room_at_the_limit():
    r = Registry(20)
    t0 = 1_764_000_000_000
    ids = _native.IdGenerator(seed=5, clock_ms=t0)
    for i in range(20):
        r.create(UserContext("u1", f"thread_{i}", f"run_{i}", ids=ids), now_ms=t0)
    with pytest.raises(ManagerLimitError):
        r.create(UserContext("u1", "thread_20", "run_20", ids=ids), now_ms=t0 + 1000)
    c = r.create(UserContext("u1", "thread_20", "run_20", ids=ids), now_ms=t0 + 11_001)
    assert c.stale_cleaned == 20 and not c.reused
    assert r.user_count("u1") == 1
