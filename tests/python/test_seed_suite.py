"""The seed's six tests (tests/thread_id_consistency), ported to threadline by changing
imports only, with the seed's expected results ASSERTED rather than logged."""

import asyncio
import random
import time
import uuid
from datetime import datetime, timezone

import pytest

from threadline.netra import ThreadIDConsistencyTracker, install_import_aliases

install_import_aliases()

from netra_backend.app.core.unified_id_manager import UnifiedIDManager  # noqa: E402
from netra_backend.app.services.user_execution_context import (  # noqa: E402
    UserContextFactory,
    UserExecutionContext,
)
from netra_backend.app.websocket_core.unified_manager import WebSocketConnection  # noqa: E402
from netra_backend.app.websocket_core.websocket_manager_factory import (  # noqa: E402
    IsolatedWebSocketManager,
    WebSocketManagerFactory,
    create_websocket_manager,
    get_websocket_manager_factory,
)
from shared.id_generation.unified_id_generator import UnifiedIdGenerator  # noqa: E402

from conftest import RecordingWebSocket  # noqa: E402


def create_authenticated_user_context(user_id: str) -> UserExecutionContext:
    """Stands in for the suite's E2E auth helper: a context with correlated ids."""
    return UserExecutionContext.from_websocket_request(user_id)


class TestThreadIdConsistencyComprehensive:
    def setup_method(self, method=None):
        self.thread_id_tracker = ThreadIDConsistencyTracker()
        self.factory = WebSocketManagerFactory(max_managers_per_user=20, connection_timeout_seconds=300)
        self.test_user_contexts = {}
        self.created_managers = []

    def teardown_method(self, method=None):
        print("\n" + self.thread_id_tracker.get_detailed_report())
        asyncio.run(self.factory.shutdown())
        assert len(self.factory._active_managers) == 0

    def create_test_user_context(self, user_id=None, **kwargs):
        if user_id is None:
            user_id = f"test-user-{random.randint(10000, 99999)}"
        thread_id, run_id, request_id = UnifiedIdGenerator().generate_user_context_ids(
            user_id=user_id, operation="thread_consistency_test"
        )
        context = UserExecutionContext(
            user_id=user_id,
            thread_id=kwargs.get("thread_id", thread_id),
            run_id=kwargs.get("run_id", run_id),
            request_id=kwargs.get("request_id", request_id),
            websocket_client_id=kwargs.get("websocket_client_id", f"ws-{str(uuid.uuid4())[:8]}"),
        )
        self.thread_id_tracker.take_snapshot(
            operation="user_context_creation",
            user_context=context,
            metadata={"user_id": user_id, "id_generator_used": "UnifiedIdGenerator", "context_created": True},
        )
        self.test_user_contexts[user_id] = context
        return context

    def create_test_websocket_connection(self, user_id, connection_id=None):
        if connection_id is None:
            connection_id = f"conn-{str(uuid.uuid4())[:8]}"
        return WebSocketConnection(
            connection_id=connection_id,
            user_id=user_id,
            websocket=RecordingWebSocket(connection_id),
            connected_at=datetime.now(timezone.utc),
            metadata={},
        )

    def _key_of(self, manager):
        for key, active_manager in self.factory._active_managers.items():
            if active_manager == manager:
                return key
        return None

    def test_thread_id_consistency_user_context_creation(self):
        async def body():
            user_id = "test-user-consistency-1001"
            context1 = self.create_test_user_context(user_id)
            context2 = self.create_test_user_context(user_id)
            for label, c in (("first_context", context1), ("second_context", context2)):
                self.thread_id_tracker.take_snapshot(
                    operation="context_comparison",
                    user_context=c,
                    metadata={"context_type": label, "thread_id": c.thread_id, "run_id": c.run_id},
                )
            manual_thread_id = "manual-thread-12345"
            context3 = self.create_test_user_context(user_id, thread_id=manual_thread_id)
            self.thread_id_tracker.take_snapshot(
                operation="manual_thread_id_test",
                user_context=context3,
                metadata={"expected_thread_id": manual_thread_id, "actual_thread_id": context3.thread_id},
            )
            assert context3.thread_id == manual_thread_id
            extracted = UnifiedIDManager.extract_thread_id(context1.run_id)
            # Fixed: a generator run id gives its whole thread id, not the operation.
            assert extracted == context1.thread_id
            self.thread_id_tracker.take_snapshot(
                operation="thread_id_extraction",
                metadata={"run_id": context1.run_id, "extracted_thread_id": extracted},
            )
            analysis = self.thread_id_tracker.analyze_consistency()
            assert analysis["total_violations"] == 0
            assert analysis["consistency_score"] == 100.0
            assert analysis["total_snapshots"] == 7

        asyncio.run(body())

    def test_thread_id_inconsistency_websocket_manager_creation(self):
        async def body():
            user_id = "test-user-inconsistency-2001"
            context = self.create_test_user_context(user_id)
            original_thread_id = context.thread_id
            manager = await self.factory.create_manager(context)
            assert isinstance(manager, IsolatedWebSocketManager)
            self.created_managers.append(manager)
            self.thread_id_tracker.take_snapshot(
                operation="manager_creation",
                user_context=context,
                manager=manager,
                metadata={"original_thread_id": original_thread_id, "manager_active": manager._is_active},
            )
            isolation_key = self._key_of(manager)
            assert isolation_key is not None
            snap = self.thread_id_tracker.take_snapshot(
                operation="isolation_key_found",
                user_context=context,
                manager=manager,
                isolation_key=isolation_key,
                metadata={"isolation_key": isolation_key},
            )
            # Fixed: the key's whole thread id, so agreeing snapshots agree.
            assert snap.thread_id_isolation_key == original_thread_id
            assert not snap.has_thread_id_mismatch()
            inconsistent_context = UserExecutionContext(
                user_id=user_id,
                thread_id=f"different-thread-{uuid.uuid4().hex[:8]}",
                run_id=f"different-run-{uuid.uuid4().hex[:8]}",
                request_id=str(uuid.uuid4()),
                websocket_client_id=context.websocket_client_id,
            )
            self.thread_id_tracker.take_snapshot(
                operation="inconsistent_context_creation",
                user_context=inconsistent_context,
                metadata={"bug_simulation": True},
            )
            lookup = self.thread_id_tracker.simulate_cleanup_lookup(inconsistent_context.thread_id)
            # Fixed: the lookup takes part in the mismatch check.
            assert lookup.thread_id_cleanup_lookup == inconsistent_context.thread_id
            assert lookup.has_thread_id_mismatch()
            cleanup_success = await self.factory.cleanup_manager(isolation_key)
            assert cleanup_success
            self.thread_id_tracker.take_snapshot(
                operation="cleanup_attempt",
                isolation_key=isolation_key,
                metadata={
                    "cleanup_success": cleanup_success,
                    "thread_id_in_key": self.thread_id_tracker.snapshots[-2].thread_id_isolation_key,
                },
            )
            analysis = self.thread_id_tracker.analyze_consistency()
            # BUG REPRODUCED: the mismatched lookup is a violation.
            assert analysis["total_violations"] > 0
            assert analysis["operation_violations"] == {"cleanup_lookup": 1}
            assert analysis["consistency_score"] < 100.0

        asyncio.run(body())

    def test_websocket_manager_lifecycle_thread_id_consistency(self):
        async def body():
            authenticated_context = create_authenticated_user_context("thread-test-user-5001")
            user_id = str(authenticated_context.user_id)
            self.thread_id_tracker.take_snapshot(
                operation="authenticated_context_creation",
                user_context=authenticated_context,
                metadata={"authentication_used": True},
            )
            manager = await self.factory.create_manager(authenticated_context)
            self.thread_id_tracker.take_snapshot(
                operation="authenticated_manager_creation", user_context=authenticated_context, manager=manager
            )
            connection = self.create_test_websocket_connection(user_id)
            await manager.add_connection(connection)
            assert len(manager._connections) == 1
            test_message = {"type": "thread_consistency_test", "timestamp": time.time(),
                            "thread_id": str(authenticated_context.thread_id)}
            await manager.send_to_user(user_id, test_message)
            assert connection.websocket.messages_sent == [test_message]
            self.thread_id_tracker.take_snapshot(
                operation="message_sent_through_websocket",
                user_context=authenticated_context,
                manager=manager,
                metadata={"messages_in_connection": len(connection.websocket.messages_sent)},
            )
            isolation_key = self._key_of(manager)
            assert isolation_key is not None
            self.thread_id_tracker.take_snapshot(
                operation="isolation_key_discovery",
                user_context=authenticated_context,
                manager=manager,
                isolation_key=isolation_key,
            )
            cleanup_success = await self.factory.cleanup_manager(isolation_key)
            self.thread_id_tracker.take_snapshot(
                operation="lifecycle_cleanup_completion",
                isolation_key=isolation_key,
                metadata={"cleanup_success": cleanup_success, "manager_active_after_cleanup": manager._is_active},
            )
            analysis = self.thread_id_tracker.analyze_consistency()
            assert cleanup_success, f"Cleanup failed with isolation_key: {isolation_key}"
            assert not manager._is_active, "Manager should be inactive after cleanup"
            assert analysis["total_violations"] == 0
            assert analysis["consistency_score"] == 100.0

        asyncio.run(body())

    def test_concurrent_websocket_operations_thread_id_isolation(self):
        async def body():
            user_count = 3
            user_contexts = []
            for i in range(user_count):
                context = create_authenticated_user_context(f"concurrent-user-{i + 3001}")
                user_contexts.append(context)
                self.thread_id_tracker.take_snapshot(
                    operation=f"concurrent_user_{i}_context_creation", user_context=context, metadata={"user_index": i}
                )
            managers = await asyncio.gather(*(self.factory.create_manager(c) for c in user_contexts))
            for i, (context, manager) in enumerate(zip(user_contexts, managers)):
                self.thread_id_tracker.take_snapshot(
                    operation=f"concurrent_manager_{i}_created", user_context=context, manager=manager,
                    metadata={"manager_id": id(manager)},
                )
            connections = []
            for i, (context, manager) in enumerate(zip(user_contexts, managers)):
                connection = self.create_test_websocket_connection(str(context.user_id))
                await manager.add_connection(connection)
                connections.append(connection)
            await asyncio.gather(*(
                manager.send_to_user(str(context.user_id), {"type": "concurrent_thread_test", "user_index": i})
                for i, (context, manager) in enumerate(zip(user_contexts, managers))
            ))
            # Each message reached its own user's connection only.
            for i, connection in enumerate(connections):
                assert [m["user_index"] for m in connection.websocket.messages_sent] == [i]
            isolation_keys = [self._key_of(m) for m in managers]
            assert None not in isolation_keys
            for i, (context, key) in enumerate(zip(user_contexts, isolation_keys)):
                self.thread_id_tracker.take_snapshot(
                    operation=f"concurrent_isolation_key_{i}_found", user_context=context, isolation_key=key
                )
            cleanup_results = await asyncio.gather(*(self.factory.cleanup_manager(k) for k in isolation_keys))
            analysis = self.thread_id_tracker.analyze_consistency()
            assert all(cleanup_results), f"Some concurrent cleanups failed: {cleanup_results}"
            assert all(not m._is_active for m in managers)
            assert len(analysis["thread_ids"]) == user_count
            assert len({c.thread_id for c in user_contexts}) == user_count
            assert analysis["total_violations"] == 0
            assert analysis["operation_violations"] == {}

        asyncio.run(body())

    def test_thread_id_recovery_after_mismatch(self):
        async def body():
            user_id = "test-user-recovery-4001"
            original_context = self.create_test_user_context(user_id)
            manager = await self.factory.create_manager(original_context)
            self.thread_id_tracker.take_snapshot(
                operation="recovery_test_manager_creation", user_context=original_context, manager=manager
            )
            isolation_key = self._key_of(manager)
            assert isolation_key is not None
            mismatched_context = UserExecutionContext(
                user_id=user_id,
                thread_id=f"mismatched-thread-{uuid.uuid4().hex[:8]}",
                run_id=f"mismatched-run-{uuid.uuid4().hex[:8]}",
                request_id=str(uuid.uuid4()),
                websocket_client_id=original_context.websocket_client_id,
            )
            snap = self.thread_id_tracker.take_snapshot(
                operation="recovery_test_mismatch_simulation", user_context=mismatched_context, manager=manager
            )
            assert snap.has_thread_id_mismatch()
            recovery_cleanup_1 = await self.factory.cleanup_manager(isolation_key)
            if not recovery_cleanup_1 or manager._is_active:
                await self.factory.force_cleanup_user_managers(user_id)
            assert recovery_cleanup_1
            assert not manager._is_active
            assert len(self.factory._active_managers) == 0

        asyncio.run(body())

    def test_thread_id_consistency_test_suite_coverage(self):
        required_tests = [
            "test_thread_id_consistency_user_context_creation",
            "test_thread_id_inconsistency_websocket_manager_creation",
            "test_websocket_manager_lifecycle_thread_id_consistency",
            "test_concurrent_websocket_operations_thread_id_isolation",
            "test_thread_id_recovery_after_mismatch",
        ]
        test_methods = [m for m in dir(self) if m.startswith("test_") and callable(getattr(self, m))]
        assert [t for t in required_tests if t not in test_methods] == []
        assert len(test_methods) >= 6
        assert hasattr(self, "thread_id_tracker")


def test_module_level_factory_and_create_websocket_manager():
    async def body():
        factory = get_websocket_manager_factory()
        assert get_websocket_manager_factory() is factory
        ctx = UserContextFactory.create_context("module-level-user-7001")
        manager = await create_websocket_manager(ctx)
        assert factory.get_manager(f"{ctx.user_id}:{ctx.thread_id}") is manager
        assert await factory.cleanup_manager(f"{ctx.user_id}:{ctx.thread_id}")

    asyncio.run(body())
