"""The drop-in against contract section 3: names, signatures, async-ness, the live
read-only `_active_managers`, isolation of connections and messages, the section-4 fixes,
duck-typed tracker arguments."""

import asyncio
import copy
import importlib
import inspect
import pickle
import sys
import threading
import uuid
from dataclasses import FrozenInstanceError
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from threadline import netra
from threadline.netra import (
    InvalidContextError,
    IsolatedWebSocketManager,
    ThreadIDConsistencyTracker,
    ThreadIdSnapshot,
    UnifiedIdGenerator,
    UserExecutionContext,
    WebSocketConnection,
    WebSocketManagerFactory,
)

from conftest import RecordingWebSocket


def conn(user_id, cid=None):
    cid = cid or f"conn-{uuid.uuid4().hex[:8]}"
    return WebSocketConnection(cid, user_id, RecordingWebSocket(cid), datetime.now(timezone.utc), {})


def test_contract_names_and_async_methods():
    async_methods = {
        WebSocketManagerFactory: ["create_manager", "cleanup_manager", "force_cleanup_user_managers",
                                  "force_cleanup_all_expired", "shutdown"],
        IsolatedWebSocketManager: ["add_connection", "remove_connection", "send_to_user",
                                   "cleanup_all_connections"],
    }
    for cls, names in async_methods.items():
        for n in names:
            assert inspect.iscoroutinefunction(getattr(cls, n)), n
    for n in ["get_manager", "enforce_resource_limits", "get_factory_stats"]:
        assert not inspect.iscoroutinefunction(getattr(WebSocketManagerFactory, n)), n
    assert not inspect.iscoroutinefunction(IsolatedWebSocketManager.get_manager_stats)
    assert inspect.iscoroutinefunction(netra.create_websocket_manager)
    sig = inspect.signature(WebSocketManagerFactory)
    assert [(p.name, p.default) for p in sig.parameters.values()] == [
        ("max_managers_per_user", 20), ("connection_timeout_seconds", 1800)]
    sig = inspect.signature(UserExecutionContext)
    assert list(sig.parameters) == ["user_id", "thread_id", "run_id", "request_id", "websocket_client_id",
                                    "agent_context", "audit_metadata", "operation_depth", "parent_request_id"]
    sig = inspect.signature(ThreadIDConsistencyTracker.take_snapshot)
    assert list(sig.parameters) == ["self", "operation", "user_context", "manager", "isolation_key", "kwargs"]
    assert list(inspect.signature(UnifiedIdGenerator.generate_base_id).parameters) == [
        "prefix", "include_random", "random_length"]
    assert list(inspect.signature(netra.get_or_create_user_session).parameters) == [
        "user_id", "thread_id", "run_id", "operation"]
    assert issubclass(InvalidContextError, ValueError)


def test_import_aliases():
    netra.install_import_aliases()
    for name in netra.ALIASED_MODULES:
        assert importlib.import_module(name) is netra
    from netra_backend.app.websocket_core.websocket_manager_factory import WebSocketManagerFactory as F
    from shared.id_generation.unified_id_generator import UnifiedIdGenerator as G
    assert F is WebSocketManagerFactory and G is UnifiedIdGenerator
    assert netra.install_import_aliases() == []  # idempotent
    assert sys.modules["netra_backend.app.core.unified_id_manager"].UnifiedIDManager is netra.UnifiedIDManager


def test_context_is_frozen_and_validated():
    c = UserExecutionContext("user-1", "thread_a_1_abcdef12", "run_a_1_abcdef12")
    assert len(c.request_id) == 36  # uuid4 by default
    with pytest.raises(FrozenInstanceError):
        c.thread_id = "other"  # type: ignore[misc]
    assert c.thread_id == "thread_a_1_abcdef12"
    for bad in ("none", "NULL", "placeholder", "0", "mock_user", "   "):
        with pytest.raises(InvalidContextError):
            UserExecutionContext(bad, "thread_a", "run_a")
    # test_ ids are allowed in test environments (we run under pytest).
    assert UserExecutionContext("test_user", "thread_a", "run_a").user_id == "test_user"
    w = UserExecutionContext.from_websocket_request("user-1")
    assert netra.UnifiedIDManager.extract_thread_id(w.run_id) == w.thread_id
    assert w.websocket_client_id.startswith("ws_client_user-1_")


def test_active_managers_is_live_and_read_only():
    async def body():
        f = WebSocketManagerFactory()
        view = f._active_managers
        assert len(view) == 0
        ctx = UserExecutionContext.from_websocket_request("user-live")
        m = await f.create_manager(ctx)
        assert len(view) == 1 and view[ctx.isolation_key] is m
        assert list(view.items()) == [(f"user-live:{ctx.thread_id}", m)]
        with pytest.raises(TypeError):
            view["x"] = m  # type: ignore[index]
        # Same key and active: the same manager object.
        assert await f.create_manager(ctx) is m
        # Cleanup while iterating is safe.
        for key, _ in view.items():
            assert await f.cleanup_manager(key)
        assert len(view) == 0 and not m._is_active
        assert await f.cleanup_manager(ctx.isolation_key) is False
        assert f.get_manager(ctx.isolation_key) is None

    asyncio.run(body())


def test_connections_and_messages_are_isolated():
    async def body():
        f = WebSocketManagerFactory()
        a = await f.create_manager(UserExecutionContext.from_websocket_request("alice-1"))
        b = await f.create_manager(UserExecutionContext.from_websocket_request("bob-1"))
        ca, cb = conn("alice-1"), conn("bob-1")
        await a.add_connection(ca)
        await b.add_connection(cb)
        with pytest.raises(ValueError):
            await a.add_connection(conn("bob-1"))
        assert list(a._connections) == [ca.connection_id]
        with pytest.raises(TypeError):
            a._connections["x"] = ca  # type: ignore[index]
        await a.send_to_user("alice-1", {"n": 1})
        with pytest.raises(ValueError):
            await a.send_to_user("bob-1", {"n": 2})
        assert ca.websocket.messages_sent == [{"n": 1}] and cb.websocket.messages_sent == []
        before = a._metrics.last_activity
        assert before.tzinfo is not None
        assert await a.remove_connection(ca.connection_id)
        assert not await a.remove_connection(ca.connection_id)
        stats = a.get_manager_stats()
        assert stats["user_id"] == "alice-1" and stats["connections"] == 0 and stats["messages_routed"] == 1
        await b.cleanup_all_connections()
        assert not b._is_active and len(b._connections) == 0
        # An inactive manager under the same key is replaced by a new one.
        b2 = await f.create_manager(b.user_context)
        assert b2 is not b and b2._is_active
        st = f.get_factory_stats()
        assert st["current_state"]["registered_managers"] == 2
        assert st["configuration"] == {"max_managers_per_user": 20, "connection_timeout_seconds": 1800}
        await f.shutdown()
        assert len(f._active_managers) == 0 and not a._is_active

    asyncio.run(body())


@pytest.mark.parametrize("observed", [False, True])
def test_replaced_and_cleaned_managers_leave_the_wrapper_table(observed):
    """The factory forgets the wrapper of a manager replaced under its key (found from
    the registry's events without observers, by a lookup before the create with them)
    and of a manager cleaned up, connection objects included."""

    async def body():
        f = WebSocketManagerFactory()
        if observed:
            f.add_observer(ThreadIDConsistencyTracker())
        ctx = UserExecutionContext.from_websocket_request("carol-1")
        m = await f.create_manager(ctx)
        c = conn("carol-1")
        await m.add_connection(c)
        await m.cleanup_all_connections()
        m2 = await f.create_manager(ctx)
        assert m2 is not m and list(f._wrappers.values()) == [m2]
        assert f._active_managers[ctx.isolation_key] is m2
        await m2.add_connection(conn("carol-1"))
        assert await f.cleanup_manager(ctx.isolation_key)
        assert f._wrappers == {} and len(m2._connections) == 0
        assert not await f.cleanup_manager(ctx.isolation_key)
        assert m2.created_at.tzinfo is not None and m2.get_manager_stats()["user_id"] == "carol-1"

    asyncio.run(body())


def test_force_cleanup_removes_fresh_managers_of_that_user_only():
    async def body():
        f = WebSocketManagerFactory()
        mine = [await f.create_manager(UserExecutionContext.from_websocket_request("stuck-user")) for _ in range(5)]
        for m in mine:
            await m.add_connection(conn("stuck-user"))
        other = await f.create_manager(UserExecutionContext.from_websocket_request("other-user"))
        assert f.enforce_resource_limits("stuck-user")
        assert await f.force_cleanup_all_expired() == 0  # all fresh
        assert await f.force_cleanup_user_managers("stuck-user") == 5
        assert not any(m._is_active for m in mine) and all(len(m._connections) == 0 for m in mine)
        assert list(f._active_managers.values()) == [other]

    asyncio.run(body())


def test_no_lock_is_held_across_awaits():
    """A send that awaits forever must not block the factory for other tasks."""
    async def body():
        f = WebSocketManagerFactory()
        gate = asyncio.Event()

        class SlowSocket:
            async def send_json(self, data):
                await gate.wait()

        m = await f.create_manager(UserExecutionContext.from_websocket_request("slow-user"))
        await m.add_connection(WebSocketConnection("c1", "slow-user", SlowSocket(), datetime.now(timezone.utc)))
        sending = asyncio.ensure_future(m.send_to_user("slow-user", {"x": 1}))
        await asyncio.sleep(0.01)
        other = await asyncio.wait_for(f.create_manager(UserExecutionContext.from_websocket_request("u-2")), 1)
        assert await asyncio.wait_for(f.cleanup_manager(other.isolation_key), 1)
        gate.set()
        await sending

    asyncio.run(body())


def test_factory_is_safe_across_threads():
    f = WebSocketManagerFactory(max_managers_per_user=1000)

    def work(i):
        async def body():
            for _ in range(50):
                m = await f.create_manager(UserExecutionContext.from_websocket_request(f"thread-user-{i}"))
                await m.add_connection(conn(f"thread-user-{i}"))
        asyncio.run(body())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(f._active_managers) == 200
    assert f.get_factory_stats()["user_distribution"] == {f"thread-user-{i}": 50 for i in range(4)}


def test_tracker_accepts_duck_typed_objects_and_kwargs():
    tr = ThreadIDConsistencyTracker()
    assert tr.analyze_consistency() == {"status": "insufficient_data", "snapshots_count": 0}
    ctx = SimpleNamespace(thread_id="thread_x", user_id="duck", websocket_client_id="ws-duck")
    mgr = SimpleNamespace(user_context=SimpleNamespace(thread_id="thread_x", user_id="duck"))
    s = tr.take_snapshot("duck_op", user_context=ctx, manager=mgr, isolation_key="duck:thread_x",
                         metadata={"i": 1}, extra=[1, 2])
    assert isinstance(s, ThreadIdSnapshot)
    assert (s.user_id, s.websocket_client_id, s.manager_instance_id) == ("duck", "ws-duck", id(mgr))
    assert s.metadata == {"metadata": {"i": 1}, "extra": [1, 2]}
    assert not s.has_thread_id_mismatch()
    assert tr.analyze_consistency()["status"] == "insufficient_data"
    s = tr.take_snapshot("lookup", thread_id_cleanup_lookup="thread_y", manager=mgr)
    assert s.thread_id_cleanup_lookup == "thread_y" and s.has_thread_id_mismatch()
    tr.record_violation("recovery_failure", "CRITICAL", operation="thread_id_recovery_test",
                        manager_still_active=True, recovery_strategies_tried=2)
    v = tr.violations[-1]
    assert (v["type"], v["severity"], v["operation"]) == ("recovery_failure", "CRITICAL", "thread_id_recovery_test")
    assert v["manager_still_active"] is True and v["recovery_strategies_tried"] == 2
    a = tr.analyze_consistency()
    assert set(a) == {"total_snapshots", "total_violations", "unique_thread_ids_found", "thread_ids",
                      "inconsistent_snapshots", "operation_violations", "consistency_score", "analysis_duration"}
    assert a["consistency_score"] == 50.0 and a["operation_violations"] == {"lookup": 1, "thread_id_recovery_test": 1}
    assert "⚠️  MISMATCH DETECTED" in tr.get_detailed_report()
    assert [x.operation for x in tr.snapshots] == ["duck_op", "lookup"]
    back = ThreadIDConsistencyTracker.from_json(tr.to_json())
    assert back.analyze_consistency()["total_violations"] == 2


def test_tracker_observes_a_factory():
    async def body():
        f = WebSocketManagerFactory(max_managers_per_user=1)
        tr = ThreadIDConsistencyTracker()
        tr.observe_factory(f)
        m = await f.create_manager(UserExecutionContext.from_websocket_request("obs-user"))
        await m.add_connection(conn("obs-user"))
        with pytest.raises(RuntimeError):
            await f.create_manager(UserExecutionContext.from_websocket_request("obs-user"))
        a = tr.analyze()
        assert a["managers_created"] == 1 and a["leaked_managers"] == 1
        await f.shutdown()
        assert tr.analyze()["leaked_managers"] == 0

    asyncio.run(body())


def test_snapshots_and_violations_are_live_views():
    tr = ThreadIDConsistencyTracker()
    snaps, viols = tr.snapshots, tr.violations
    assert snaps == [] and len(viols) == 0
    tr.take_snapshot("a", user_context=SimpleNamespace(thread_id="thread_a", user_id="u", websocket_client_id=None))
    tr.take_snapshot("b", thread_id_cleanup_lookup="thread_b", manager=SimpleNamespace(
        user_context=SimpleNamespace(thread_id="thread_c", user_id="u")))
    assert [s.operation for s in snaps] == ["a", "b"]
    assert snaps[-1].operation == "b" and snaps[-2].operation == "a"
    assert [s.operation for s in snaps[::-1]] == ["b", "a"]
    with pytest.raises(IndexError):
        snaps[2]
    assert len(viols) == 1 and viols[0]["operation"] == "b" and viols[-1] == viols[0]
    with pytest.raises(TypeError):
        snaps[0] = snaps[1]  # type: ignore[index]


@pytest.mark.parametrize("index", ["a", 1.0, None, slice, b"0"], ids=["str", "float", "None", "type", "bytes"])
def test_live_views_refuse_non_int_indexes_as_lists_do(index):
    tr = ThreadIDConsistencyTracker()
    tr.take_snapshot("a", isolation_key="garbage")  # one snapshot, one violation
    for view in (tr.snapshots, tr.violations):
        with pytest.raises(TypeError) as e:
            view[index]
        with pytest.raises(TypeError) as expected:
            [0][index]
        assert str(e.value) == str(expected.value)
        assert str(e.value) == f"list indices must be integers or slices, not {type(index).__name__}"


def test_live_views_take_what_lists_take():
    class Index:
        def __index__(self):
            return 0

    tr = ThreadIDConsistencyTracker()
    tr.take_snapshot("a")
    snaps = tr.snapshots
    assert snaps[Index()].operation == snaps[False].operation == snaps[-1].operation == "a"


def full_context():
    return UserExecutionContext(
        "alice", "thread_a_1_abcdef12", "run_a_1_abcdef12", "req_a_2_01234567", "ws_client_alice_1",
        agent_context={"agent": "triage", "nested": {"n": [1, 2.5, None]}}, audit_metadata={"source": "test"},
        operation_depth=3, parent_request_id="req_parent_1",
    )


FIELDS = ["user_id", "thread_id", "run_id", "request_id", "websocket_client_id", "agent_context",
          "audit_metadata", "operation_depth", "parent_request_id", "isolation_key"]


@pytest.mark.parametrize("how", ["copy", "deepcopy"] + [f"pickle {p}" for p in range(pickle.HIGHEST_PROTOCOL + 1)])
def test_contexts_copy_and_pickle(how):
    for ctx in (full_context(), UserExecutionContext.from_websocket_request("bob", "ws_bob")):
        if how == "copy":
            c = copy.copy(ctx)
        elif how == "deepcopy":
            c = copy.deepcopy(ctx)
        else:
            c = pickle.loads(pickle.dumps(ctx, protocol=int(how.split()[1])))
        assert type(c) is UserExecutionContext and c is not ctx
        assert c == ctx and hash(c) == hash(ctx)
        assert [getattr(c, n) for n in FIELDS] == [getattr(ctx, n) for n in FIELDS]
        with pytest.raises(FrozenInstanceError):
            c.user_id = "mallory"  # type: ignore[misc]
    # A deep copy is its own: a dict read from it is not the original's.
    ctx = full_context()
    c = copy.deepcopy(ctx)
    c.agent_context["agent"] = "changed"
    assert ctx.agent_context["agent"] == "triage"


def test_a_copied_context_works_with_the_factory():
    async def body():
        f = WebSocketManagerFactory()
        ctx = UserExecutionContext.from_websocket_request("carol")
        m = await f.create_manager(ctx)
        assert await f.create_manager(pickle.loads(pickle.dumps(ctx))) is m

    asyncio.run(body())


def _fields(s):
    d = s.to_dict()
    d.pop("timestamp_ms")
    return d


def test_tracker_take_snapshot_native_path_binds_arguments_like_python():
    async def body():
        f = WebSocketManagerFactory()
        ctx = UserExecutionContext.from_websocket_request("bind-user")
        mgr = await f.create_manager(ctx)
        key = mgr.isolation_key
        fast, slow = ThreadIDConsistencyTracker(), ThreadIDConsistencyTracker()

        class Ctx(UserExecutionContext):
            __slots__ = ()

        sub = Ctx(ctx.user_id, ctx.thread_id, ctx.run_id, ctx.request_id, ctx.websocket_client_id)

        class Key(str):  # its text is the key, whatever str() says
            def __str__(self) -> str:
                return f"{ctx.user_id}:thread_other"

        calls = [
            (("create",), dict(user_context=ctx, manager=mgr, isolation_key=key, metadata={"i": 1})),
            (("positional", ctx, mgr, key), {}),
            (("nones", None, None, None), {"extra": None}),
            (("empty_key",), dict(user_context=ctx, manager=mgr, isolation_key="")),
            (("context_only",), dict(user_context=ctx)),
            (("manager_only",), dict(manager=mgr)),
            (("key_only",), dict(isolation_key=key)),
            (("subclass_context",), dict(user_context=sub, manager=mgr, isolation_key=key)),
            (("lookup",), dict(user_context=ctx, manager=mgr, thread_id_cleanup_lookup="thread_other")),
            (("str_subclass_key",), dict(user_context=ctx, manager=mgr, isolation_key=Key(key))),
            (("nothing",), {}),
        ]
        for args, kwargs in calls:
            a = fast.take_snapshot(*args, **kwargs)
            assert fast.current_operation == args[0]
            b = slow._take_snapshot_general(*args, **dict(kwargs))
            assert _fields(a) == _fields(b), args[0]
        assert _fields(fast.snapshots[0])["manager_instance_id"] == id(mgr)
        assert fast.snapshots[0].metadata == {"metadata": {"i": 1}}
        assert [s.operation for s in fast.snapshots if s.has_thread_id_mismatch()] == ["lookup"]
        assert fast.native.total_violations == slow.native.total_violations == 1
        await f.shutdown()

    asyncio.run(body())


def test_tracker_take_snapshot_argument_errors_are_pythons():
    tr = ThreadIDConsistencyTracker()
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'operation'"):
        tr.take_snapshot()
    with pytest.raises(TypeError, match=r"takes from 2 to 5 positional arguments but 6 were given"):
        tr.take_snapshot("op", None, None, None, None)
    with pytest.raises(TypeError, match=r"got multiple values for argument 'user_context'"):
        tr.take_snapshot("op", None, user_context=None)
    with pytest.raises(TypeError, match=r"got multiple values for argument 'operation'"):
        tr.take_snapshot("op", operation="again")
    assert tr.take_snapshot(operation="by_name").operation == "by_name"
    # A non-str operation goes the general way and gets the core's error.
    with pytest.raises(TypeError):
        tr.take_snapshot(42)
    assert tr.current_operation == 42
    assert len(tr.snapshots) == 1
    assert "operation, user_context=None, manager=None, isolation_key=None, **kwargs" in str(
        inspect.signature(ThreadIDConsistencyTracker.take_snapshot))


def test_tracker_subclass_without_init_says_what_is_missing():
    class Forgetful(ThreadIDConsistencyTracker):
        def __init__(self) -> None:
            pass

    with pytest.raises(netra.ThreadlineError, match=r"no native tracker: ThreadIDConsistencyTracker.__init__"):
        Forgetful().take_snapshot("op")
    with pytest.raises(netra.ThreadlineError, match=r"no native tracker"):
        Forgetful().native


def test_tracker_subclass_with_its_own_arguments():
    class Named(ThreadIDConsistencyTracker):
        def __init__(self, name: str, *, capacity: int = 2) -> None:
            super().__init__(capacity)
            self.name = name

    t = Named("suite", capacity=2)
    for i in range(3):
        t.take_snapshot(f"op{i}")
    assert t.name == "suite" and [s.operation for s in t.snapshots] == ["op1", "op2"]


def test_tracker_in_a_reference_cycle_is_collected():
    import gc
    import weakref

    t = ThreadIDConsistencyTracker()
    t.take_snapshot("cycle")
    t.current_operation = t  # type: ignore[assignment]
    gone = weakref.ref(t)
    del t
    gc.collect()
    assert gone() is None


def test_returned_snapshots_stay_readable():
    import gc

    t = ThreadIDConsistencyTracker()
    s = t.take_snapshot("kept", isolation_key="u1:thread_1", extra={"k": [1, 2]})
    b = ThreadIDConsistencyTracker(capacity=1)
    first = b.take_snapshot("evicted", isolation_key="u1:thread_1")
    b.take_snapshot("second")
    del t
    gc.collect()
    assert (s.operation, s.thread_id_isolation_key, s.metadata) == ("kept", "thread_1", {"extra": {"k": [1, 2]}})
    assert repr(s) == ("Snapshot(index=0, operation='kept', user_context=None, manager_context=None, "
                       "isolation_key='thread_1', cleanup_lookup=None, mismatch=False)")
    assert s.to_dict()["isolation_key"] == "u1:thread_1"
    assert [x.operation for x in b.snapshots] == ["second"]
    assert (first.operation, first.index, first.thread_id_isolation_key) == ("evicted", 0, "thread_1")


def test_tracker_take_snapshot_from_threads_and_reentrant_metadata():
    async def body():
        f = WebSocketManagerFactory(max_managers_per_user=4)
        ctxs = [UserExecutionContext.from_websocket_request(f"t-user-{i}") for i in range(4)]
        mgrs = [await f.create_manager(c) for c in ctxs]
        tr = ThreadIDConsistencyTracker()

        def work(i):
            for n in range(500):
                tr.take_snapshot("threaded", user_context=ctxs[i], manager=mgrs[i],
                                 isolation_key=mgrs[i].isolation_key, n=n)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert tr.native.total_snapshots == 2000 and tr.native.total_violations == 0

        class Nested:
            """Metadata whose str() takes a snapshot of its own: no lock is held then."""

            def __str__(self) -> str:
                tr.take_snapshot("inner", user_context=ctxs[0])
                return "nested"

        s = tr.take_snapshot("outer", user_context=ctxs[0], manager=mgrs[0], value=Nested())
        assert s.metadata == {"value": "nested"}
        assert [x.operation for x in tr.snapshots[-2:]] == ["inner", "outer"]
        assert tr.current_operation == "inner"  # set as each call starts, as the seed does

    asyncio.run(body())


def test_tracker_copies_and_pickles_through_its_report():
    t = ThreadIDConsistencyTracker(capacity=3)
    for i in range(5):
        t.take_snapshot(f"op{i}", isolation_key=f"u{i}:thread_{i}")
    t.take_snapshot("lookup", thread_id_cleanup_lookup="thread_x", manager=SimpleNamespace(
        user_context=SimpleNamespace(thread_id="thread_y", user_id="u1")))
    for other in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert type(other) is ThreadIDConsistencyTracker and other is not t
        assert other.current_operation == "lookup"
        assert other.get_detailed_report() == t.get_detailed_report()
        assert other.native.capacity == 3 and other.native.total_snapshots == 6
        other.take_snapshot("more")
        assert other.native.total_snapshots == 7 and t.native.total_snapshots == 6
