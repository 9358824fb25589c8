"""The seed's scenarios, run through the Netra drop-in (`threadline.netra`).

Each scenario returns a `ScenarioResult` with its tracker, the expected verdict and
whether the run met it. `python -m threadline demo` prints them; the tests assert them.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Dict, List

from . import netra
from .netra import (
    ThreadIDConsistencyTracker,
    UnifiedIDManager,
    UnifiedIdGenerator,
    UserExecutionContext,
    WebSocketConnection,
    WebSocketManagerFactory,
)


class RecordingWebSocket:
    """A websocket that keeps what it was sent."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.messages_sent: List[Dict[str, Any]] = []

    async def send_json(self, data: Dict[str, Any]) -> None:
        self.messages_sent.append(data)
        await asyncio.sleep(0)


@dataclass
class ScenarioResult:
    name: str
    title: str
    tracker: ThreadIDConsistencyTracker
    #: What the scenario shows when it behaves as the seed expects.
    verdict: str
    passed: bool
    details: Dict[str, Any] = field(default_factory=dict)
    #: One line of evidence for the verdict.
    summary: str = ""


def connection(user_id: str) -> WebSocketConnection:
    cid = f"conn-{uuid.uuid4().hex[:8]}"
    return WebSocketConnection(cid, user_id, RecordingWebSocket(cid), datetime.now(timezone.utc), {})


def context(tracker: ThreadIDConsistencyTracker, user_id: str, **overrides: str) -> UserExecutionContext:
    thread_id, run_id, request_id = UnifiedIdGenerator.generate_user_context_ids(user_id, "thread_consistency_test")
    ctx = UserExecutionContext(
        user_id=user_id,
        thread_id=overrides.get("thread_id", thread_id),
        run_id=overrides.get("run_id", run_id),
        request_id=overrides.get("request_id", request_id),
        websocket_client_id=overrides.get("websocket_client_id", f"ws-{uuid.uuid4().hex[:8]}"),
    )
    tracker.take_snapshot(
        "user_context_creation", user_context=ctx, metadata={"user_id": user_id, "context_created": True}
    )
    return ctx


def key_of(factory: WebSocketManagerFactory, manager: Any) -> str:
    for key, m in factory._active_managers.items():
        if m is manager:
            return key
    raise LookupError("manager not registered")


async def user_context_consistency() -> ScenarioResult:
    tr = ThreadIDConsistencyTracker()
    user = "test-user-consistency-1001"
    c1 = context(tr, user)
    c2 = context(tr, user)
    tr.take_snapshot("context_comparison", user_context=c1, metadata={"thread_id": c1.thread_id})
    tr.take_snapshot("context_comparison", user_context=c2, metadata={"thread_id": c2.thread_id})
    c3 = context(tr, user, thread_id="manual-thread-12345")
    tr.take_snapshot("manual_thread_id_test", user_context=c3)
    extracted = UnifiedIDManager.extract_thread_id(c1.run_id)
    tr.take_snapshot("thread_id_extraction", metadata={"run_id": c1.run_id, "extracted_thread_id": extracted})
    a = tr.analyze_consistency()
    ok = (
        a["total_violations"] == 0
        and a["consistency_score"] == 100.0
        and c3.thread_id == "manual-thread-12345"
        and extracted == c1.thread_id
    )
    return ScenarioResult("user_context_consistency", "UserExecutionContext creation", tr, "consistent", ok,
                          {"extracted_thread_id": extracted},
                          f"{a['total_violations']} violations, score {a['consistency_score']:.1f}%, "
                          "run id gives its whole thread id")


async def manager_creation_inconsistency() -> ScenarioResult:
    tr = ThreadIDConsistencyTracker()
    factory = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    user = "test-user-inconsistency-2001"
    ctx = context(tr, user)
    manager = await factory.create_manager(ctx)
    tr.take_snapshot("manager_creation", user_context=ctx, manager=manager)
    key = key_of(factory, manager)
    tr.take_snapshot("isolation_key_found", user_context=ctx, manager=manager, isolation_key=key)
    bad = UserExecutionContext(
        user_id=user,
        thread_id=f"different-thread-{uuid.uuid4().hex[:8]}",
        run_id=f"different-run-{uuid.uuid4().hex[:8]}",
        request_id=str(uuid.uuid4()),
        websocket_client_id=ctx.websocket_client_id,
    )
    tr.take_snapshot("inconsistent_context_creation", user_context=bad, metadata={"bug_simulation": True})
    tr.simulate_cleanup_lookup(bad.thread_id)
    cleaned = await factory.cleanup_manager(key)
    tr.take_snapshot("cleanup_attempt", isolation_key=key, metadata={"cleanup_success": cleaned})
    a = tr.analyze_consistency()
    await factory.shutdown()
    return ScenarioResult("manager_creation_inconsistency", "thread id mismatch at cleanup lookup", tr,
                          "bug reproduced", a["total_violations"] > 0, {"cleanup_success": cleaned},
                          f"{a['total_violations']} violation{'' if a['total_violations'] == 1 else 's'} at "
                          f"{', '.join(a['operation_violations'])}, "
                          f"score {a['consistency_score']:.1f}%")


async def manager_lifecycle() -> ScenarioResult:
    tr = ThreadIDConsistencyTracker()
    factory = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    ctx = UserExecutionContext.from_websocket_request("thread-test-user-5001")
    tr.take_snapshot("authenticated_context_creation", user_context=ctx)
    manager = await factory.create_manager(ctx)
    tr.take_snapshot("authenticated_manager_creation", user_context=ctx, manager=manager)
    conn = connection(ctx.user_id)
    await manager.add_connection(conn)
    tr.take_snapshot("websocket_connection_added", user_context=ctx, manager=manager,
                     metadata={"manager_connections": len(manager._connections)})
    await manager.send_to_user(ctx.user_id, {"type": "thread_consistency_test", "thread_id": ctx.thread_id})
    sent = len(conn.websocket.messages_sent)
    tr.take_snapshot("message_sent_through_websocket", user_context=ctx, manager=manager,
                     metadata={"messages_in_connection": sent})
    key = key_of(factory, manager)
    tr.take_snapshot("isolation_key_discovery", user_context=ctx, manager=manager, isolation_key=key)
    cleaned = await factory.cleanup_manager(key)
    tr.take_snapshot("lifecycle_cleanup_completion", isolation_key=key,
                     metadata={"cleanup_success": cleaned, "manager_active_after_cleanup": manager._is_active})
    a = tr.analyze_consistency()
    ok = cleaned and not manager._is_active and sent == 1 and a["total_violations"] == 0
    return ScenarioResult("manager_lifecycle", "WebSocket manager lifecycle", tr, "consistent", ok,
                          {"cleanup_success": cleaned, "messages_sent": sent},
                          f"cleanup {'succeeded' if cleaned else 'failed'}, manager "
                          f"{'active' if manager._is_active else 'inactive'}, {a['total_violations']} violations")


async def concurrent_users() -> ScenarioResult:
    tr = ThreadIDConsistencyTracker()
    factory = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    contexts = []
    for i in range(3):
        c = UserExecutionContext.from_websocket_request(f"concurrent-user-{i + 3001}")
        contexts.append(c)
        tr.take_snapshot(f"concurrent_user_{i}_context_creation", user_context=c, metadata={"user_index": i})
    managers = await asyncio.gather(*(factory.create_manager(c) for c in contexts))
    conns = []
    for i, (c, m) in enumerate(zip(contexts, managers)):
        tr.take_snapshot(f"concurrent_manager_{i}_created", user_context=c, manager=m)
        conn = connection(c.user_id)
        await m.add_connection(conn)
        conns.append(conn)
    await asyncio.gather(*(m.send_to_user(c.user_id, {"user_index": i})
                           for i, (c, m) in enumerate(zip(contexts, managers))))
    keys = [key_of(factory, m) for m in managers]
    for i, (c, k) in enumerate(zip(contexts, keys)):
        tr.take_snapshot(f"concurrent_isolation_key_{i}_found", user_context=c, isolation_key=k)
    results = await asyncio.gather(*(factory.cleanup_manager(k) for k in keys))
    for i, (k, r) in enumerate(zip(keys, results)):
        tr.take_snapshot(f"concurrent_cleanup_{i}_completed", isolation_key=k, metadata={"cleanup_success": r})
    a = tr.analyze_consistency()
    delivered = [len(c.websocket.messages_sent) for c in conns]
    ok = (
        all(results)
        and not any(m._is_active for m in managers)
        and len({c.thread_id for c in contexts}) == 3
        and a["unique_thread_ids_found"] == 3
        and a["total_violations"] == 0
        and delivered == [1, 1, 1]
    )
    return ScenarioResult("concurrent_users", "3 concurrent users", tr, "consistent", ok,
                          {"cleanup_results": list(results), "messages_delivered": delivered},
                          f"{a['unique_thread_ids_found']} distinct thread ids, {a['total_violations']} violations")


async def recovery_after_mismatch() -> ScenarioResult:
    tr = ThreadIDConsistencyTracker()
    factory = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    user = "test-user-recovery-4001"
    ctx = context(tr, user)
    manager = await factory.create_manager(ctx)
    tr.take_snapshot("recovery_test_manager_creation", user_context=ctx, manager=manager)
    key = key_of(factory, manager)
    tr.take_snapshot("recovery_test_isolation_key_found", user_context=ctx, manager=manager, isolation_key=key)
    mismatched = UserExecutionContext(user, f"mismatched-thread-{uuid.uuid4().hex[:8]}",
                                      f"mismatched-run-{uuid.uuid4().hex[:8]}")
    tr.take_snapshot("recovery_test_mismatch_simulation", user_context=mismatched, manager=manager)
    first = await factory.cleanup_manager(key)
    tr.take_snapshot("recovery_strategy_1_cleanup", isolation_key=key, metadata={"cleanup_success": first})
    forced = 0
    if not first or manager._is_active:
        forced = await factory.force_cleanup_user_managers(user)
        tr.take_snapshot("recovery_strategy_2_force_cleanup", metadata={"cleaned_managers": forced})
    left = len(factory._active_managers)
    return ScenarioResult("recovery_after_mismatch", "recovery after a thread id mismatch", tr, "recovered",
                          not manager._is_active and left == 0,
                          {"strategy_1_success": first, "forced": forced, "managers_left": left},
                          f"{left} managers left")


async def manager_leak() -> ScenarioResult:
    """The 20-manager leak (a new thread id per connection) and its fix (the session
    store hands every connection of a conversation the same thread id)."""
    tr = ThreadIDConsistencyTracker()
    user = "leak-user-6001"
    leaky = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    leaky.add_observer(tr)
    refused = None
    for i in range(21):
        ctx = UserExecutionContext.from_websocket_request(user)
        try:
            m = await leaky.create_manager(ctx)
            await m.add_connection(connection(user))
        except RuntimeError as e:
            refused = (i + 1, str(e))
            break
    leaked = len(leaky._active_managers)
    fixed = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
    store = netra._native.SessionStore(test_mode=True)
    managers = set()
    for _ in range(25):
        s = store.get_or_create(user)
        ctx = UserExecutionContext(user, s["thread_id"], s["run_id"], s["request_id"])
        m = await fixed.create_manager(ctx)
        tr.take_snapshot("session_connection", user_context=ctx, manager=m, isolation_key=m.isolation_key)
        managers.add(id(m))
    after_fix = len(fixed._active_managers)
    await leaky.shutdown()
    await fixed.shutdown()
    ok = refused is not None and refused[0] == 21 and leaked == 20 and after_fix == 1 and len(managers) == 1
    return ScenarioResult("manager_leak", "20-manager leak and the session-store fix", tr, "leak prevented", ok,
                          {"refused_at": refused[0] if refused else None,
                           "refusal": refused[1] if refused else None,
                           "managers_leaked": leaked, "managers_after_fix": after_fix},
                          f"create {refused[0] if refused else '-'} refused at the limit of 20; "
                          f"25 connections through the session store: {after_fix} manager")


SCENARIOS: List[Callable[[], Awaitable[ScenarioResult]]] = [
    user_context_consistency,
    manager_creation_inconsistency,
    manager_lifecycle,
    concurrent_users,
    recovery_after_mismatch,
    manager_leak,
]


def run_all() -> List[ScenarioResult]:
    async def go() -> List[ScenarioResult]:
        return [await s() for s in SCENARIOS]

    return asyncio.run(go())
