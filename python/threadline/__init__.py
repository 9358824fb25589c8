"""threadline: thread-id consistency for WebSocket manager isolation.

The rules live in a Rust core; this package is its Python face:

- the native API (`IdGenerator`, `UserContext`, `SessionStore`, `IsolationKey`,
  `Registry`, `Tracker`, the run/thread correlation functions), re-exported here;
- `threadline.netra`, a drop-in for the Netra names the thread-id consistency suite uses;
- a pytest plugin (fixture `thread_id_tracker`), and `python -m threadline demo|report`.
"""

from ._native import (
    Created,
    IdComponents,
    IdGenerator,
    InactiveManagerError,
    InvalidConfigError,
    InvalidContextError,
    InvalidIdError,
    InvalidKeyError,
    IsolationKey,
    IsolationViolationError,
    ManagerInfo,
    ManagerLimitError,
    Registry,
    RegistryEvent,
    ReportError,
    SessionStore,
    Snapshot,
    ThreadlineError,
    Tracker,
    UnknownManagerError,
    UserContext,
    are_correlated,
    correlation,
    id_age_ms,
    is_valid_id,
    now_ms,
    parse_context_id,
    parse_id,
    run_readings,
    thread_id_for_run,
)

__version__ = "0.1.0"

__all__ = [
    "Created",
    "IdComponents",
    "IdGenerator",
    "InactiveManagerError",
    "InvalidConfigError",
    "InvalidContextError",
    "InvalidIdError",
    "InvalidKeyError",
    "IsolationKey",
    "IsolationViolationError",
    "ManagerInfo",
    "ManagerLimitError",
    "Registry",
    "RegistryEvent",
    "ReportError",
    "SessionStore",
    "Snapshot",
    "ThreadlineError",
    "Tracker",
    "UnknownManagerError",
    "UserContext",
    "are_correlated",
    "correlation",
    "id_age_ms",
    "is_valid_id",
    "now_ms",
    "parse_context_id",
    "parse_id",
    "run_readings",
    "thread_id_for_run",
    "__version__",
]
