"""Drop-in replacement for the Netra names its thread-id consistency suite imports.

Every rule (ID formats, context validation, isolation keys, the per-user manager limit
and its cleanup, mismatch detection, the report) is the Rust core's; this module only
adapts Netra's signatures, `async` methods and duck-typed arguments to it. It carries the
fixes of section 4 of the contract: the whole thread id is read from isolation keys,
cleanup lookups take part in the mismatch check, `extract_thread_id` of a generator run
id gives its thread, `force_cleanup_user_managers` removes ALL of a user's managers, and
no thread lock is ever held across an `await`.

`install_import_aliases()` makes Netra's module paths import from here.

Errors: contexts, sessions and the factory raise `InvalidContextError` (a `ValueError`)
for any bad id, including non-str values and strings with lone surrogates (and for a
bad `operation_depth` or `max_age_hours`); looking a manager up by isolation key
(`get_manager`, `cleanup_manager`) answers None or False for a key no manager can have,
non-str values and lone surrogates included; the limit
raises `ManagerLimitError` (a `RuntimeError`); another user's connection or message
raises `IsolationViolationError` (a `ValueError`). The ID generator functions raise
`InvalidIdError` (a `ValueError`) for strings the core refuses, `UnicodeEncodeError`
(a `ValueError`) for lone surrogates and `TypeError` for non-str arguments; the
parsers (`parse_id`, `extract_thread_id`) return None for anything that does not parse.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import sys
import threading
import types
from contextlib import contextmanager
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import _native
from ._native import (
    IdComponents,
    InactiveManagerError,
    InvalidContextError,
    InvalidIdError,
    InvalidKeyError,
    IsolationViolationError,
    ManagerLimitError,
    ThreadlineError,
)

__all__ = [
    "IdComponents",
    "InvalidContextError",
    "IsolatedWebSocketManager",
    "ThreadIDConsistencyTracker",
    "ThreadIdSnapshot",
    "UnifiedIDManager",
    "UnifiedIdGenerator",
    "UserContextFactory",
    "UserExecutionContext",
    "WebSocketConnection",
    "WebSocketManagerFactory",
    "cleanup_expired_sessions",
    "create_websocket_manager",
    "get_active_sessions_count",
    "get_existing_session",
    "get_or_create_user_session",
    "get_websocket_manager_factory",
    "install_import_aliases",
    "invalidate_user_sessions",
    "reset_global_counter",
]

#: The seed's snapshot type; snapshots the tracker returns are of this type.
ThreadIdSnapshot = _native.Snapshot

_ids = _native.IdGenerator.default()


def _is_test_environment() -> bool:
    """Netra allows `test_` ids in test environments: ENVIRONMENT=test or under pytest."""
    env = (os.environ.get("ENVIRONMENT") or os.environ.get("NETRA_ENV") or "").strip().lower()
    return env in ("test", "testing") or "pytest" in sys.modules


# ---- ID generation (shared.id_generation.unified_id_generator) -------------------


def _parse(id_string: Any) -> Optional[IdComponents]:
    if not isinstance(id_string, str) or not id_string:
        return None
    try:
        return _native.parse_id(id_string)
    except (InvalidIdError, UnicodeEncodeError):
        return None


class UnifiedIdGenerator:
    """Netra's ID generator: every format of contract section 1, minted by the core."""

    @staticmethod
    def generate_base_id(prefix: str = "id", include_random: bool = True, random_length: int = 8) -> str:
        return _ids.base_id(prefix, include_random, random_length)

    #: `(thread_id, run_id, request_id)`: the core generator's method itself. A Python
    #: function around it cost a frame per call (about 600 instructions, a seventh of
    #: the call); the parameters, defaults and errors are the same.
    generate_user_context_ids = staticmethod(_ids.user_context_ids)

    @staticmethod
    def generate_id(prefix: str) -> str:
        return _ids.simple_id(prefix)

    @staticmethod
    def generate_websocket_client_id(user_id: str, connection_timestamp: Optional[float] = None) -> str:
        return _ids.websocket_client_id(user_id, connection_timestamp)

    @staticmethod
    def generate_websocket_connection_id(user_id: str, connection_timestamp: Optional[float] = None) -> str:
        return _ids.websocket_connection_id(user_id, connection_timestamp)

    @staticmethod
    def generate_session_id(user_id: str, session_type: str = "web") -> str:
        return _ids.session_id(user_id, session_type)

    @staticmethod
    def generate_agent_execution_id(agent_type: str, user_id: str) -> str:
        return _ids.agent_execution_id(agent_type, user_id)

    @staticmethod
    def generate_message_id(message_type: str, user_id: str, thread_id: Optional[str] = None) -> str:
        return _ids.message_id(message_type, user_id, thread_id)

    @staticmethod
    def generate_batch_ids(prefix: str, count: int, include_random: bool = True) -> List[str]:
        return _ids.batch_ids(prefix, count, include_random)

    @staticmethod
    def parse_id(id_string: str) -> Optional[IdComponents]:
        """The id's parts, or None when it does not parse (or is not a non-empty str)."""
        return _parse(id_string)

    @staticmethod
    def is_valid_id(id_string: str, expected_prefix: Optional[str] = None) -> bool:
        if _parse(id_string) is None:
            return False
        if expected_prefix is not None and not isinstance(expected_prefix, str):
            return False
        try:
            return _native.is_valid_id(id_string, expected_prefix)
        except UnicodeEncodeError:
            return False

    @staticmethod
    def get_id_age(id_string: str) -> int:
        """Age in ms, or -1 when the id does not parse."""
        if _parse(id_string) is None:
            return -1
        return _native.id_age_ms(id_string)

    @staticmethod
    def reset_global_counter() -> None:
        _ids.reset_counter()

    @staticmethod
    def get_or_create_user_session(
        user_id: str, thread_id: Optional[str] = None, run_id: Optional[str] = None, operation: str = "session"
    ) -> Dict[str, str]:
        return get_or_create_user_session(user_id, thread_id, run_id, operation)

    @staticmethod
    def get_existing_session(user_id: str, thread_id: Optional[str] = None) -> Optional[Dict[str, str]]:
        return get_existing_session(user_id, thread_id)

    @staticmethod
    def cleanup_expired_sessions(max_age_hours: float = 24) -> int:
        return cleanup_expired_sessions(max_age_hours)

    @staticmethod
    def invalidate_user_sessions(user_id: str) -> int:
        return invalidate_user_sessions(user_id)

    @staticmethod
    def get_active_sessions_count() -> int:
        return get_active_sessions_count()


generate_base_id = UnifiedIdGenerator.generate_base_id
generate_user_context_ids = UnifiedIdGenerator.generate_user_context_ids
generate_id = UnifiedIdGenerator.generate_id
generate_websocket_client_id = UnifiedIdGenerator.generate_websocket_client_id
generate_websocket_connection_id = UnifiedIdGenerator.generate_websocket_connection_id
generate_session_id = UnifiedIdGenerator.generate_session_id
generate_agent_execution_id = UnifiedIdGenerator.generate_agent_execution_id
generate_message_id = UnifiedIdGenerator.generate_message_id
generate_batch_ids = UnifiedIdGenerator.generate_batch_ids
parse_id = UnifiedIdGenerator.parse_id
is_valid_id = UnifiedIdGenerator.is_valid_id
get_id_age = UnifiedIdGenerator.get_id_age
reset_global_counter = UnifiedIdGenerator.reset_global_counter


# ---- sessions ---------------------------------------------------------------------

_sessions_lock = threading.Lock()
_sessions: Optional[_native.SessionStore] = None


def _session_store() -> _native.SessionStore:
    global _sessions
    with _sessions_lock:
        if _sessions is None:
            _sessions = _native.SessionStore(test_mode=_is_test_environment(), ids=_ids)
        return _sessions


def get_or_create_user_session(
    user_id: str, thread_id: Optional[str] = None, run_id: Optional[str] = None, operation: str = "session"
) -> Dict[str, str]:
    """The SAME thread id for the same `user_id:thread_id` (or `user_id:default`) every
    call, a new request id every call; a different `run_id` starts a new run in the same
    thread. Raises `InvalidContextError` for an invalid id."""
    _require_text("user_id", user_id)
    _require_text("thread_id", thread_id, optional=True)
    _require_text("run_id", run_id, optional=True)
    _require_text("operation", operation)
    s = _session_store().get_or_create(user_id, thread_id, run_id, operation)
    return {"thread_id": s["thread_id"], "run_id": s["run_id"], "request_id": s["request_id"]}


def get_existing_session(user_id: str, thread_id: Optional[str] = None) -> Optional[Dict[str, str]]:
    if not isinstance(user_id, str) or not (thread_id is None or isinstance(thread_id, str)):
        return None
    try:
        s = _session_store().get_existing(user_id, thread_id)
    except UnicodeEncodeError:
        return None
    if s is None:
        return None
    return {"thread_id": s["thread_id"], "run_id": s["run_id"], "request_id": s["request_id"]}


def _shown(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut after 64 characters."""
    r = repr(value)
    return r if len(r) <= 64 else f"{r[:64]}... ({len(r)} characters)"


_U64_MAX = 2**64 - 1


def cleanup_expired_sessions(max_age_hours: float = 24) -> int:
    """Drops the sessions unused for more than `max_age_hours`; returns how many. Raises
    `InvalidContextError` (a `ValueError`) unless `max_age_hours` is a real number
    (not a bool) that is finite and not negative."""
    h = max_age_hours
    ok = isinstance(h, numbers.Real) and not isinstance(h, bool) and h >= 0
    if ok and not isinstance(h, int):
        try:
            ok = math.isfinite(h)
        except OverflowError:  # finite, but too large for a float (a huge Fraction)
            pass
    if not ok:
        raise InvalidContextError(
            f"max_age_hours {_shown(h)} ({type(h).__name__}) is invalid: "
            "expected a finite number of hours from 0 (int or float)"
        )
    # Past 2**64 - 1 ms (584 million years) no session is old enough either way.
    return _session_store().cleanup_expired(min(int(h * 3_600_000), _U64_MAX))


def invalidate_user_sessions(user_id: str) -> int:
    _require_text("user_id", user_id)
    return _session_store().invalidate_user(user_id)


def get_active_sessions_count() -> int:
    return _session_store().active_count()


# ---- UnifiedIDManager (netra_backend.app.core.unified_id_manager) -----------------


class UnifiedIDManager:
    """The older manager run format, and run-to-thread lookups that are right for both
    run formats (a generator run id gives its whole thread id)."""

    @staticmethod
    def generate_run_id(thread_id: str) -> str:
        return _ids.manager_run_id(thread_id)

    @staticmethod
    def extract_thread_id(run_id: str) -> Optional[str]:
        if not isinstance(run_id, str):
            return None
        try:
            return _native.thread_id_for_run(run_id)
        except UnicodeEncodeError:
            return None

    @staticmethod
    def validate_run_id(run_id: str) -> bool:
        return UnifiedIDManager.extract_thread_id(run_id) is not None

    @staticmethod
    def run_readings(run_id: str) -> List[Tuple[str, str]]:
        """Every `(thread_id, format)` reading of a run id, the generator reading first."""
        return _native.run_readings(run_id)

    @staticmethod
    def are_correlated(thread_id: str, run_id: str) -> bool:
        return _native.are_correlated(thread_id, run_id)


# ---- UserExecutionContext (netra_backend.app.services.user_execution_context) -----


def _require_text(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidContextError(f"{name} must be a str: got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidContextError(
            f"{name} is not valid Unicode text (it holds a lone surrogate): expected printable text"
        ) from None


def _require_dict(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise InvalidContextError(f"{name} must be a dict: got {type(value).__name__}")


class UserExecutionContext:
    """Netra's frozen user context. Raises `InvalidContextError` (a `ValueError`) when a
    required id is missing, empty, blank, a placeholder, not a str, or when the user id
    contains ':'."""

    __slots__ = ("_ctx",)
    _ctx: _native.UserContext

    def __init__(
        self,
        user_id: str,
        thread_id: str,
        run_id: str,
        request_id: Optional[str] = None,
        websocket_client_id: Optional[str] = None,
        agent_context: Optional[Dict[str, Any]] = None,
        audit_metadata: Optional[Dict[str, Any]] = None,
        operation_depth: int = 0,
        parent_request_id: Optional[str] = None,
    ) -> None:
        _require_text("user_id", user_id)
        _require_text("thread_id", thread_id)
        _require_text("run_id", run_id)
        _require_text("request_id", request_id, optional=True)
        _require_text("websocket_client_id", websocket_client_id, optional=True)
        _require_text("parent_request_id", parent_request_id, optional=True)
        _require_dict("agent_context", agent_context)
        _require_dict("audit_metadata", audit_metadata)
        if (
            isinstance(operation_depth, bool)
            or not isinstance(operation_depth, int)
            or not 0 <= operation_depth < 2**64
        ):
            raise InvalidContextError(
                f"operation_depth must be an int from 0 to 2**64 - 1: got {operation_depth!r}"
            )
        ctx = _native.UserContext(
            user_id,
            thread_id,
            run_id,
            request_id,
            websocket_client_id,
            agent_context,
            audit_metadata,
            operation_depth,
            parent_request_id,
            test_mode=_is_test_environment(),
            ids=_ids,
        )
        object.__setattr__(self, "_ctx", ctx)

    @classmethod
    def _from_native(cls, ctx: _native.UserContext) -> "UserExecutionContext":
        self = cls.__new__(cls)
        object.__setattr__(self, "_ctx", ctx)
        return self

    @classmethod
    def from_websocket_request(
        cls, user_id: str, websocket_client_id: Optional[str] = None, operation: str = "websocket_session"
    ) -> "UserExecutionContext":
        """A context whose thread, run and request ids come from one generator call."""
        _require_text("user_id", user_id)
        _require_text("websocket_client_id", websocket_client_id, optional=True)
        _require_text("operation", operation)
        try:
            ctx = _native.UserContext.for_websocket(
                user_id, operation, websocket_client_id, test_mode=_is_test_environment(), ids=_ids
            )
        except InvalidIdError as e:
            raise InvalidContextError(str(e)) from None
        return cls._from_native(ctx)

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        """`copy.copy`, `copy.deepcopy` and pickle: a context is rebuilt from its fields
        through the constructor, so a copy or an unpickled context is validated like
        any other (a `test_` id unpickled outside a test environment is refused)."""
        c = self._ctx
        return (
            type(self),
            (
                c.user_id,
                c.thread_id,
                c.run_id,
                c.request_id,
                c.websocket_client_id,
                c.agent_context,
                c.audit_metadata,
                c.operation_depth,
                c.parent_request_id,
            ),
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    @property
    def user_id(self) -> str:
        return self._ctx.user_id

    @property
    def thread_id(self) -> str:
        return self._ctx.thread_id

    @property
    def run_id(self) -> str:
        return self._ctx.run_id

    @property
    def request_id(self) -> str:
        return self._ctx.request_id

    @property
    def websocket_client_id(self) -> Optional[str]:
        return self._ctx.websocket_client_id

    @property
    def agent_context(self) -> Dict[str, Any]:
        return self._ctx.agent_context

    @property
    def audit_metadata(self) -> Dict[str, Any]:
        return self._ctx.audit_metadata

    @property
    def operation_depth(self) -> int:
        return self._ctx.operation_depth

    @property
    def parent_request_id(self) -> Optional[str]:
        return self._ctx.parent_request_id

    @property
    def isolation_key(self) -> str:
        return self._ctx.isolation_key

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UserExecutionContext):
            return self._ctx == other._ctx
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.user_id, self.thread_id, self.run_id, self.request_id))

    def __repr__(self) -> str:
        return (
            f"UserExecutionContext(user_id={self.user_id!r}, thread_id={self.thread_id!r}, "
            f"run_id={self.run_id!r}, request_id={self.request_id!r}, "
            f"websocket_client_id={self.websocket_client_id!r})"
        )


class UserContextFactory:
    """Builds contexts whose ids are correlated (the suite imports it beside the context)."""

    @staticmethod
    def create_context(
        user_id: str,
        thread_id: Optional[str] = None,
        run_id: Optional[str] = None,
        request_id: Optional[str] = None,
        websocket_client_id: Optional[str] = None,
        operation: str = "context",
    ) -> UserExecutionContext:
        _require_text("user_id", user_id)
        _require_text("operation", operation)
        if thread_id is None or run_id is None:
            try:
                t, r, q = _ids.user_context_ids(user_id, operation)
            except InvalidIdError as e:
                raise InvalidContextError(str(e)) from None
            thread_id = t if thread_id is None else thread_id
            run_id = r if run_id is None else run_id
            request_id = q if request_id is None else request_id
        return UserExecutionContext(user_id, thread_id, run_id, request_id, websocket_client_id)

    @staticmethod
    def create_for_websocket(
        user_id: str, websocket_client_id: Optional[str] = None, operation: str = "websocket_session"
    ) -> UserExecutionContext:
        return UserExecutionContext.from_websocket_request(user_id, websocket_client_id, operation)


def _as_context(obj: Any) -> Tuple[_native.UserContext, UserExecutionContext]:
    """A native context for the core, and the context object the manager exposes."""
    if isinstance(obj, UserExecutionContext):
        return obj._ctx, obj
    if isinstance(obj, _native.UserContext):
        return obj, UserExecutionContext._from_native(obj)
    if obj is None:
        raise InvalidContextError("user_context is required: got None")
    missing = [n for n in ("user_id", "thread_id", "run_id") if not hasattr(obj, n)]
    if missing:
        raise InvalidContextError(
            f"user_context of type {type(obj).__name__} has no {', '.join(missing)}: "
            "expected a UserExecutionContext or an object with user_id, thread_id and run_id"
        )
    ctx = UserExecutionContext(
        obj.user_id,
        obj.thread_id,
        obj.run_id,
        getattr(obj, "request_id", None),
        getattr(obj, "websocket_client_id", None),
    )
    return ctx._ctx, ctx


# ---- WebSocket managers (netra_backend.app.websocket_core.websocket_manager_factory) ---


@dataclass
class WebSocketConnection:
    """One connection; `websocket` has `async send_json(data)`."""

    connection_id: str
    user_id: str
    websocket: Any
    connected_at: datetime
    metadata: Dict[str, Any] = field(default_factory=dict)


def _to_ms(dt: Any) -> Optional[int]:
    if not isinstance(dt, datetime):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # Netra writes naive UTC times
    return max(0, int(dt.timestamp() * 1000))


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class _ManagerMetrics:
    """`manager._metrics.last_activity`, read from the registry."""

    __slots__ = ("_manager",)

    def __init__(self, manager: "IsolatedWebSocketManager") -> None:
        self._manager = manager

    @property
    def last_activity(self) -> datetime:
        try:
            return _from_ms(self._manager._info_now().last_activity_ms)
        except InactiveManagerError:
            return _from_ms(self._manager._created_ms)

    @property
    def messages_routed(self) -> int:
        try:
            return self._manager._info_now().messages_routed
        except InactiveManagerError:
            return 0


class _MetricsOnFirstUse:
    """`manager._metrics`, made on first use and kept in the instance: most managers are
    never asked, and a view made up front would tie each manager into a reference cycle
    for the garbage collector."""

    def __get__(self, manager: Any, owner: Any = None) -> Any:
        if manager is None:
            return self
        m = _ManagerMetrics(manager)
        manager.__dict__["_metrics"] = m
        return m


class IsolatedWebSocketManager(_native.ManagerHandle):
    """One user's manager. Its state lives in the factory's registry; `user_context` and
    the connection objects (with their websockets) live here, in the native handle it
    extends: `IsolatedWebSocketManager(factory, manager_id, isolation_key, user_context,
    created_ms)` is one native allocation, with no Python `__init__`."""

    _factory: "WebSocketManagerFactory"
    _user_context: UserExecutionContext
    _connection_objects: Dict[str, WebSocketConnection]
    #: The registry's last view of this manager, once asked for (see `_info_now`).
    _last_info: Optional[_native.ManagerInfo] = None
    _metrics = _MetricsOnFirstUse()

    @property
    def user_context(self) -> UserExecutionContext:
        return self._user_context

    @property
    def isolation_key(self) -> str:
        return self._isolation_key

    @property
    def manager_id(self) -> int:
        return self._manager_id

    @property
    def _is_active(self) -> bool:
        return self._factory._registry.is_active(self._manager_id)

    @property
    def _connections(self) -> Mapping[str, WebSocketConnection]:
        """Connection id -> connection (read-only)."""
        return MappingProxyType(self._connection_objects)

    @property
    def created_at(self) -> datetime:
        return _from_ms(self._created_ms)

    def _info_now(self) -> _native.ManagerInfo:
        """The registry's view of this manager; the last one seen once it is gone."""
        info = self._factory._registry.manager(self._manager_id)
        if info is not None:
            self._last_info = info
        if self._last_info is None:
            raise InactiveManagerError(
                f"manager {self._isolation_key!r} is no longer registered: expected an active manager"
            )
        return self._last_info

    def _key_if_registered(self) -> str:
        if not self._factory._registry.is_registered(self._manager_id):
            raise InactiveManagerError(
                f"manager {self._isolation_key!r} is no longer registered: expected an active manager"
            )
        return self._isolation_key

    async def add_connection(self, connection: WebSocketConnection) -> None:
        """Refuses a connection of another user with `IsolationViolationError` (a `ValueError`)."""
        cid = getattr(connection, "connection_id", None)
        uid = getattr(connection, "user_id", None)
        if not isinstance(cid, str) or not isinstance(uid, str):
            raise ValueError("connection must have str connection_id and user_id")
        metadata = getattr(connection, "metadata", None)
        f = self._factory
        with f._changing():
            f._registry.add_connection(
                self._key_if_registered(),
                cid,
                uid,
                _to_ms(getattr(connection, "connected_at", None)),
                metadata if isinstance(metadata, dict) else None,
            )
            self._connection_objects[cid] = connection

    async def remove_connection(self, connection_id: str) -> bool:
        f = self._factory
        with f._changing():
            if not f._registry.is_registered(self._manager_id):
                return False
            removed = f._registry.remove_connection(self._isolation_key, connection_id)
            self._connection_objects.pop(connection_id, None)
            return removed

    async def send_to_user(self, user_id: str, message: Dict[str, Any]) -> None:
        """Awaits `send_json(message)` on each connection the core routes the message to;
        another user's id raises `IsolationViolationError`."""
        f = self._factory
        with f._lock:
            targets = f._registry.send_to_user(self._key_if_registered(), user_id)
            sockets = [self._connection_objects[c].websocket for c in targets if c in self._connection_objects]
        for ws in sockets:  # no lock held while awaiting
            await ws.send_json(message)

    async def cleanup_all_connections(self) -> None:
        """Closes every connection; the manager is inactive from now on."""
        f = self._factory
        with f._changing():
            if f._registry.is_registered(self._manager_id):
                f._registry.deactivate(self._isolation_key)
            self._connection_objects.clear()

    def get_manager_stats(self) -> Dict[str, Any]:
        try:
            info = self._info_now()
            routed, last_ms = info.messages_routed, info.last_activity_ms
        except InactiveManagerError:
            routed, last_ms = 0, self._created_ms
        return {
            "manager_id": self._manager_id,
            "user_id": self._user_context.user_id,
            "thread_id": self._user_context.thread_id,
            "isolation_key": self._isolation_key,
            "is_active": self._is_active,
            "connections": len(self._connection_objects),
            "connection_ids": list(self._connection_objects),
            "messages_routed": routed,
            "created_at": _from_ms(self._created_ms).isoformat(),
            "last_activity": _from_ms(last_ms).isoformat(),
        }

    def __repr__(self) -> str:
        return f"IsolatedWebSocketManager(key={self._isolation_key!r}, active={self._is_active})"


class _ActiveManagers(Mapping[str, IsolatedWebSocketManager]):
    """`factory._active_managers`: a live, read-only view of the registry. Iterating it
    works on a copy of the keys, so cleanups during iteration are safe."""

    def __init__(self, factory: "WebSocketManagerFactory") -> None:
        self._factory = factory

    def __getitem__(self, key: str) -> IsolatedWebSocketManager:
        if not isinstance(key, str):
            raise KeyError(key)
        f = self._factory
        try:
            mid = f._registry.id_of(key)
        except UnicodeEncodeError:  # a lone surrogate: no manager has such a key
            raise KeyError(key) from None
        w = f._wrappers.get(mid) if mid is not None else None
        if w is None:
            raise KeyError(key)
        return w

    def __iter__(self) -> Iterator[str]:
        return iter(self._factory._registry.keys())

    def __len__(self) -> int:
        return len(self._factory._registry)

    def __contains__(self, key: object) -> bool:
        try:
            return isinstance(key, str) and key in self._factory._registry
        except UnicodeEncodeError:  # a lone surrogate: no manager has such a key
            return False

    def items(self) -> List[Tuple[str, IsolatedWebSocketManager]]:  # type: ignore[override]
        w = self._factory._wrappers
        return [(k, w[i]) for k, i in self._factory._registry.entries() if i in w]

    def __repr__(self) -> str:
        return f"_ActiveManagers({dict(self.items())!r})"


class WebSocketManagerFactory:
    """Netra's factory over the core registry: same key and active gives the same
    manager; at 60% of the limit the user's stale managers are cleaned; at the limit
    again, then `RuntimeError` (`ManagerLimitError`)."""

    def __init__(self, max_managers_per_user: int = 20, connection_timeout_seconds: float = 1800) -> None:
        self.max_managers_per_user = max_managers_per_user
        self.connection_timeout_seconds = connection_timeout_seconds
        self._registry = _native.Registry(max_managers_per_user, float(connection_timeout_seconds))
        # Guards the wrapper table; held only around synchronous core calls, never across
        # an await. `threading.RLock`'s rules; create_manager and cleanup_manager take it
        # inside their one native call (`_native.ManagerTable`) instead of by two Python
        # calls each (an RLock's `acquire` parses its arguments: about 450 instructions).
        self._lock = _native.ReentrantLock()
        self._wrappers: Dict[int, IsolatedWebSocketManager] = {}
        self._observers: List[Any] = []
        self._active_managers: Mapping[str, IsolatedWebSocketManager] = _ActiveManagers(self)
        table = _native.ManagerTable(
            self._registry, self._lock, self._wrappers, self._observers, IsolatedWebSocketManager
        )
        # Bound once: the per-call attribute lookups cost more than the calls' own work.
        self._create = table.create
        self._remove = table.remove
        # After a cleanup that may remove several managers: forget every wrapper whose
        # manager is gone (the table's own rule, also used by create).
        self._prune_locked = table.prune

    def add_observer(self, tracker: Any) -> None:
        """Feeds every registry event to `tracker.observe(event)` (manager counts and
        refused creates show up in its analysis).

        Observers are told after the change is made: the factory's state (the registry
        and the managers `get_manager` and `cleanup_manager` find) is the same whether
        or not an observer raises. An observer that raises still lets every observer
        see every event; then, when the call itself failed, its own exception is raised
        (the observer's first exception is its `__context__`), and when it succeeded,
        its effect stands (a created manager is registered and reachable) and the
        observer's first exception is raised."""
        with self._lock:
            self._observers.append(tracker)

    def _pump_locked(self) -> None:
        """Hands the registry's events to the observers (or drops them: none listen).
        Every observer sees every event; the first exception an observer raised is
        raised at the end."""
        if not self._observers:
            self._registry.discard_events()
            return
        failed: Optional[Exception] = None
        for ev in self._registry.drain_events():
            for o in self._observers:
                try:
                    o.observe(ev)
                except Exception as e:
                    if failed is None:
                        failed = e
        if failed is not None:
            raise failed

    @contextmanager
    def _changing(self, prune: bool = False) -> Iterator[None]:
        """`with factory._changing():` runs the block under the lock, then (with `prune`)
        forgets the wrappers of removed managers and hands the events to the observers.
        A block that raised keeps its exception (an observer's becomes its
        `__context__`); see `add_observer`."""
        with self._lock:
            try:
                yield
            except BaseException as e:
                try:
                    if prune:
                        self._prune_locked()
                    self._pump_locked()
                except Exception as observer_error:
                    if e.__context__ is None:
                        e.__context__ = observer_error
                raise
            if prune:
                self._prune_locked()
            self._pump_locked()

    async def create_manager(self, user_context: Any) -> IsolatedWebSocketManager:
        # Under the lock, in one native call: the registry's create, the events to the
        # observers, and the wrapper table (see `_native.ManagerTable.create`).
        if type(user_context) is UserExecutionContext:
            return self._create(self, user_context._ctx, user_context)
        native_ctx, ctx = _as_context(user_context)
        return self._create(self, native_ctx, ctx)

    def get_manager(self, isolation_key: str) -> Optional[IsolatedWebSocketManager]:
        """The manager under a key (canonical or older form), or None, also for a key
        that is not a str or holds a lone surrogate."""
        try:
            return self._active_managers[isolation_key]
        except KeyError:
            return None

    async def cleanup_manager(self, isolation_key: str) -> bool:
        # Under the lock, in one native call: False for a key that is not a str or has no
        # manager; the removed manager's wrapper is forgotten (`_native.ManagerTable.remove`).
        return self._remove(self, isolation_key)

    async def force_cleanup_user_managers(self, user_id: str) -> int:
        """Removes ALL of the user's managers, fresh or stale; returns how many. Raises
        `InvalidContextError` for a user id that is not a str or holds a lone surrogate."""
        _require_text("user_id", user_id)
        with self._changing(prune=True):
            return self._registry.force_cleanup_user(user_id)

    async def force_cleanup_all_expired(self) -> int:
        with self._changing(prune=True):
            return self._registry.expire_idle()

    def enforce_resource_limits(self, user_id: str) -> bool:
        """Whether the user can get one more manager, after cleaning the user's stale
        managers if at the limit. Raises
        `InvalidContextError` for a user id that is not a str or holds a lone surrogate."""
        _require_text("user_id", user_id)
        with self._changing(prune=True):
            return self._registry.enforce_limits(user_id)

    def get_factory_stats(self) -> Dict[str, Any]:
        stats = self._registry.stats()
        return {
            "factory_metrics": stats,
            "configuration": {
                "max_managers_per_user": self.max_managers_per_user,
                "connection_timeout_seconds": self.connection_timeout_seconds,
            },
            "current_state": {
                "active_managers": stats["active_managers"],
                "registered_managers": stats["managers_registered"],
                "users_with_managers": stats["users"],
                "total_connections": stats["connections"],
            },
            "user_distribution": dict(self._registry.user_counts()),
        }

    async def shutdown(self) -> None:
        with self._changing(prune=True):
            self._registry.shutdown()


_factory_lock = threading.Lock()
_factory: Optional[WebSocketManagerFactory] = None


def get_websocket_manager_factory() -> WebSocketManagerFactory:
    """The process-wide factory."""
    global _factory
    with _factory_lock:
        if _factory is None:
            _factory = WebSocketManagerFactory()
        return _factory


async def create_websocket_manager(user_context: Any) -> IsolatedWebSocketManager:
    return await get_websocket_manager_factory().create_manager(user_context)


# ---- the suite's tracker -----------------------------------------------------------

_ANALYSIS_KEYS = (
    "total_snapshots",
    "total_violations",
    "unique_thread_ids_found",
    "thread_ids",
    "inconsistent_snapshots",
    "operation_violations",
    "consistency_score",
    "analysis_duration",
)


def _opt_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class _LiveList(Sequence[Any]):
    """A live, read-only view of a tracker's retained snapshots or violations: it sees
    every later record, and indexing from the end is O(1)."""

    __slots__ = ("_len", "_at")

    def __init__(self, length: Any, at: Any) -> None:
        self._len = length
        self._at = at

    def __len__(self) -> int:
        return int(self._len())

    def __getitem__(self, index: Any) -> Any:
        n = len(self)
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(n))]
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"list indices must be integers or slices, not {type(index).__name__}") from None
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("list index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, _LiveList)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


class ThreadIDConsistencyTracker(_native.SuiteTracker):
    """The suite's tracker over the core's: the isolation key's whole thread id, cleanup
    lookups in the mismatch check. Accepts native and duck-typed contexts and managers
    (anything with `.thread_id`, `.user_id`, `.websocket_client_id`; a manager with
    `.user_context`).

    `take_snapshot` is the native base's: a call with this module's context and manager
    and a `str` key is recorded without a Python frame; any other call comes to
    `_take_snapshot_general` below."""

    def __init__(self, capacity: Optional[int] = None) -> None:
        self.native = _native.Tracker(capacity)
        self.start_time: float = self.native.started_ms / 1000
        self.current_operation = None

    @classmethod
    def from_json(cls, text: str) -> "ThreadIDConsistencyTracker":
        """A tracker read back from report JSON (as written by `to_json`)."""
        self = cls.__new__(cls)
        self.native = _native.Tracker.from_json(text)
        self.start_time = self.native.started_ms / 1000
        self.current_operation = None
        return self

    def __reduce__(self) -> Tuple[Any, ...]:
        """Copies and pickles go through the report JSON: the copy carries on exactly as
        this tracker does, independently of it."""
        return (_tracker_from_json, (type(self), self.to_json(), self.current_operation))

    def _take_snapshot_general(
        self,
        operation: str,
        user_context: Any = None,
        manager: Any = None,
        isolation_key: Optional[str] = None,
        **kwargs: Any,
    ) -> ThreadIdSnapshot:
        """`take_snapshot` of anything but this module's own objects (the native base
        has set `current_operation`)."""
        ctx: Optional[_native.UserContext] = None
        uid = uthread = ws = None
        if user_context is not None:
            if isinstance(user_context, UserExecutionContext):
                ctx = user_context._ctx
            elif isinstance(user_context, _native.UserContext):
                ctx = user_context
            else:
                uthread = _opt_text(getattr(user_context, "thread_id", None))
                uid = _opt_text(getattr(user_context, "user_id", None))
                ws = _opt_text(getattr(user_context, "websocket_client_id", None))
        mthread = None
        mid = None
        if manager is not None:
            if type(manager) is IsolatedWebSocketManager:
                mthread = manager._user_context._ctx.thread_id
                mid = id(manager)
            elif hasattr(manager, "user_context"):
                mctx = manager.user_context
                mthread = _opt_text(getattr(mctx, "thread_id", None)) if mctx is not None else None
                mid = id(manager)
                if uid is None and ctx is None and mctx is not None:
                    uid = _opt_text(getattr(mctx, "user_id", None))
        lookup = _opt_text(kwargs.pop("thread_id_cleanup_lookup", None)) if kwargs else None
        key = (isolation_key if type(isolation_key) is str else _opt_text(isolation_key)) if isolation_key else None
        return self.native.take_snapshot(
            operation,
            context=ctx,
            user_id=uid,
            user_context_thread_id=uthread,
            websocket_client_id=ws,
            manager_thread_id=mthread,
            manager_instance_id=mid,
            isolation_key=key,
            cleanup_lookup_thread_id=lookup,
            metadata=kwargs or None,
        )

    def record_violation(self, violation_type: str, severity: str, **kwargs: Any) -> None:
        operation = _opt_text(kwargs.pop("operation", None))
        self.native.record_violation(violation_type, severity, operation, kwargs or None)

    def simulate_cleanup_lookup(self, target_thread_id: str) -> ThreadIdSnapshot:
        """A cleanup looking for `target_thread_id`, checked against the latest manager."""
        return self.native.simulate_cleanup_lookup(
            target_thread_id, None, {"lookup_target": target_thread_id, "simulated_operation": True}
        )

    def analyze_consistency(self) -> Dict[str, Any]:
        a = self.native.analyze()
        if a["total_snapshots"] < 2:
            return {"status": "insufficient_data", "snapshots_count": a["total_snapshots"]}
        return {k: a[k] for k in _ANALYSIS_KEYS}

    def analyze(self) -> Dict[str, Any]:
        """Everything the core's analysis has (per-user thread ids, first divergence, leaks)."""
        return self.native.analyze()

    def get_detailed_report(self) -> str:
        return self.native.report_text()

    def to_json(self) -> str:
        return self.native.to_json()

    def save_json(self, path: "os.PathLike[str] | str") -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.native.to_json())

    def observe(self, event: _native.RegistryEvent) -> None:
        self.native.observe(event)

    def observe_factory(self, factory: WebSocketManagerFactory) -> None:
        factory.add_observer(self)

    @property
    def snapshots(self) -> Sequence[ThreadIdSnapshot]:
        """The retained snapshots, oldest first: a live read-only sequence."""
        t = self.native
        return _LiveList(t.__len__, t.snapshot_at)

    @property
    def violations(self) -> Sequence[Dict[str, Any]]:
        """The retained violations as dicts, oldest first: a live read-only sequence."""
        t = self.native
        return _LiveList(t.retained_violations, t.violation_at)


def _tracker_from_json(
    cls: "type[ThreadIDConsistencyTracker]", text: str, current_operation: Optional[str]
) -> ThreadIDConsistencyTracker:
    tracker = cls.from_json(text)
    tracker.current_operation = current_operation
    return tracker


_native.SuiteTracker._register_fast_types(UserExecutionContext, IsolatedWebSocketManager)


# ---- import aliases ---------------------------------------------------------------

ALIASED_MODULES = (
    "netra_backend.app.websocket_core.websocket_manager_factory",
    "netra_backend.app.websocket_core.unified_manager",
    "netra_backend.app.services.user_execution_context",
    "netra_backend.app.core.unified_id_manager",
    "shared.id_generation.unified_id_generator",
)


def install_import_aliases(overwrite: bool = False) -> List[str]:
    """Makes Netra's module paths import from this module (`from netra_backend.app.
    websocket_core.websocket_manager_factory import WebSocketManagerFactory` and the
    others of `ALIASED_MODULES`). Missing parent packages are created empty; existing
    modules are left alone unless `overwrite`. Returns the names installed."""
    this = sys.modules[__name__]
    installed: List[str] = []
    for name in ALIASED_MODULES:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in sys.modules:
                pkg = types.ModuleType(parent, f"threadline alias package for {parent}")
                pkg.__path__ = []
                sys.modules[parent] = pkg
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], pkg)
        if name in sys.modules and not overwrite:
            continue
        sys.modules[name] = this
        setattr(sys.modules[".".join(parts[:-1])], parts[-1], this)
        installed.append(name)
    return installed


# Names a caller may catch, re-exported for `from threadline.netra import ...`.
_ERRORS = (ThreadlineError, InvalidKeyError, IsolationViolationError, ManagerLimitError)
