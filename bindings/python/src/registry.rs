//! The manager registry (Netra's `WebSocketManagerFactory` rules) and its events.

use std::sync::Mutex;

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyType};
use pyo3::PyTraverseError;
use threadline::registry::{CleanupReason, EventKind, Manager};
use threadline::{Connection, ManagerId, Registry, RegistryConfig, RegistryEvent};

use crate::context::PyUserContext;
use crate::lock::{Held, PyReentrantLock};
use crate::{
    json_to_py, lock, map_to_py, metadata_arg, now_or, system_now_ms, Kind, PyResultExt, UsizeArg,
};

/// A registered manager as it was when asked for (a copy: the registry moves on).
#[pyclass(frozen, name = "ManagerInfo", module = "threadline._native")]
pub struct PyManagerInfo {
    #[pyo3(get)]
    manager_id: u64,
    #[pyo3(get)]
    key: String,
    context: threadline::UserContext,
    #[pyo3(get)]
    created_ms: u64,
    #[pyo3(get)]
    last_activity_ms: u64,
    #[pyo3(get)]
    active: bool,
    #[pyo3(get)]
    messages_routed: u64,
    connections: Vec<Connection>,
}

impl From<&Manager> for PyManagerInfo {
    fn from(m: &Manager) -> Self {
        Self {
            manager_id: m.id().0,
            key: m.key().to_owned(),
            context: m.context().clone(),
            created_ms: m.created_ms(),
            last_activity_ms: m.last_activity_ms(),
            active: m.is_active(),
            messages_routed: m.messages_routed(),
            connections: m.connections().to_vec(),
        }
    }
}

#[pymethods]
impl PyManagerInfo {
    #[getter]
    fn user_id(&self) -> &str {
        self.context.user_id()
    }
    #[getter]
    fn thread_id(&self) -> &str {
        self.context.thread_id()
    }
    #[getter]
    fn context(&self) -> PyUserContext {
        PyUserContext {
            inner: self.context.clone(),
        }
    }
    /// Connection ids, in the order they were added.
    #[getter]
    fn connection_ids(&self) -> Vec<String> {
        self.connections
            .iter()
            .map(|c| c.connection_id.clone())
            .collect()
    }
    /// `[{"connection_id", "user_id", "connected_ms", "metadata"}]`.
    fn connections<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for c in &self.connections {
            let d = PyDict::new(py);
            d.set_item("connection_id", &c.connection_id)?;
            d.set_item("user_id", &c.user_id)?;
            d.set_item("connected_ms", c.connected_ms)?;
            d.set_item("metadata", map_to_py(py, &c.metadata)?)?;
            l.append(d)?;
        }
        Ok(l)
    }
    fn __repr__(&self) -> String {
        format!(
            "ManagerInfo(manager_id={}, key={:?}, active={}, connections={})",
            self.manager_id,
            self.key,
            if self.active { "True" } else { "False" },
            self.connections.len()
        )
    }
}

/// What `Registry.create` did.
#[pyclass(frozen, name = "Created", module = "threadline._native")]
pub struct PyCreated {
    #[pyo3(get)]
    manager_id: u64,
    #[pyo3(get)]
    key: String,
    /// True when the active manager under the same key was handed back.
    #[pyo3(get)]
    reused: bool,
    /// Stale managers of this user cleaned to make room.
    #[pyo3(get)]
    stale_cleaned: usize,
    /// The time of this call (the creation time of a new manager).
    #[pyo3(get)]
    at_ms: u64,
}

#[pymethods]
impl PyCreated {
    fn __repr__(&self) -> String {
        format!(
            "Created(manager_id={}, key={:?}, reused={}, stale_cleaned={})",
            self.manager_id,
            self.key,
            if self.reused { "True" } else { "False" },
            self.stale_cleaned
        )
    }
}

/// One change of the registry.
#[pyclass(frozen, name = "RegistryEvent", module = "threadline._native")]
pub struct PyRegistryEvent {
    pub(crate) inner: RegistryEvent,
}

fn reason_name(r: CleanupReason) -> &'static str {
    match r {
        CleanupReason::Explicit => "explicit",
        CleanupReason::Forced => "forced",
        CleanupReason::Stale => "stale",
        CleanupReason::Expired => "expired",
        CleanupReason::Replaced => "replaced",
        CleanupReason::Shutdown => "shutdown",
    }
}

#[pymethods]
impl PyRegistryEvent {
    /// `created`, `reused`, `cleaned_up`, `limit_exceeded`, `connection_added`,
    /// `connection_removed` or `deactivated`.
    #[getter]
    fn kind(&self) -> &'static str {
        match &self.inner.kind {
            EventKind::Created => "created",
            EventKind::Reused => "reused",
            EventKind::CleanedUp { .. } => "cleaned_up",
            EventKind::LimitExceeded { .. } => "limit_exceeded",
            EventKind::ConnectionAdded { .. } => "connection_added",
            EventKind::ConnectionRemoved { .. } => "connection_removed",
            EventKind::Deactivated { .. } => "deactivated",
        }
    }
    /// Why a manager was cleaned up (`cleaned_up` events only).
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        match &self.inner.kind {
            EventKind::CleanedUp { reason } => Some(reason_name(*reason)),
            _ => None,
        }
    }
    #[getter]
    fn connection_id(&self) -> Option<&str> {
        match &self.inner.kind {
            EventKind::ConnectionAdded { connection_id }
            | EventKind::ConnectionRemoved { connection_id } => Some(connection_id),
            _ => None,
        }
    }
    #[getter]
    fn manager_id(&self) -> Option<u64> {
        self.inner.manager_id.map(|m| m.0)
    }
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }
    #[getter]
    fn user_id(&self) -> &str {
        self.inner.user_id()
    }
    #[getter]
    fn thread_id(&self) -> &str {
        self.inner.thread_id()
    }
    #[getter]
    fn at_ms(&self) -> u64 {
        self.inner.at_ms
    }
    /// The event as the core serialises it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.inner)
            .map_err(|e| crate::error(Kind::Base, e.to_string()))?;
        json_to_py(py, &v)
    }
    fn __repr__(&self) -> String {
        format!(
            "RegistryEvent(kind={:?}, key={:?}, at_ms={})",
            self.kind(),
            self.inner.key(),
            self.inner.at_ms
        )
    }
}

/// Drops the wrapper under `key` (a manager id) from the drop-in's table and clears its
/// connection objects (called with no registry lock held: dropping them may run Python
/// code).
fn forget_wrapper(wrappers: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Some(w) = wrappers.get_item(key)? {
        wrappers.del_item(key)?;
        if let Ok(h) = w.cast::<PyManagerHandle>() {
            h.get().connection_objects.bind(wrappers.py()).clear();
        }
    }
    Ok(())
}

/// The manager registry. All rules (limit, stale cleanup, isolation) are the core's.
#[pyclass(frozen, name = "Registry", module = "threadline._native")]
pub struct PyRegistry {
    inner: Mutex<Registry>,
}

fn seconds_to_ms(name: &'static str, s: f64) -> PyResult<u64> {
    if !s.is_finite() || !(0.0..=1e15).contains(&s) {
        return Err(crate::error(
            Kind::InvalidConfig,
            format!("registry setting {name} = {s} is invalid: expected finite seconds from 0"),
        ));
    }
    Ok((s * 1000.0) as u64)
}

/// What a drop-in create did: the manager's id, how many stale managers were cleaned,
/// the time of the call, the key as the registry files it, and the id of the inactive
/// manager it replaced under the same key, if any.
type DropInCreated<'py> = (u64, usize, u64, Bound<'py, PyString>, Option<u64>);

impl PyRegistry {
    /// `create` for the Netra drop-in. With `discard_events` (nobody listens) the
    /// registry's events are dropped in the same hold of the lock, whether the create
    /// succeeds or fails.
    fn create_dropin<'py>(
        &self,
        context: &Bound<'py, PyUserContext>,
        discard_events: bool,
    ) -> PyResult<DropInCreated<'py>> {
        let py = context.py();
        let ctx = context.get().inner.clone();
        let now = system_now_ms();
        let mut r = lock(&self.inner);
        // With observers the events stay for them: the manager under the key is looked
        // up before instead.
        let before = if discard_events {
            None
        } else {
            r.get(ctx.key_text()).map(|m| m.id())
        };
        let c = r.create(ctx, now);
        let mut replaced = None;
        if discard_events && r.pending_events() > 0 {
            replaced = r.drain_events().iter().find_map(|e| match e.kind {
                EventKind::CleanedUp {
                    reason: CleanupReason::Replaced,
                } => e.manager_id,
                _ => None,
            });
        }
        let key = match &c {
            // The key as the registry files it: no second copy of the context's ids.
            Ok(c) => {
                if !discard_events {
                    replaced = before.filter(|&b| b != c.id);
                }
                r.manager(c.id).map(|m| PyString::new(py, m.key()))
            }
            Err(_) => None,
        };
        drop(r);
        let c = c.py()?;
        let key = match key {
            Some(k) => k,
            None => PyString::new(py, context.get().inner.key_text()),
        };
        Ok((c.id.0, c.stale_cleaned, now, key, replaced.map(|m| m.0)))
    }

    /// `cleanup` for the Netra drop-in: the id of the manager removed, if any. With
    /// `discard_events` the registry's events are dropped in the same hold of the lock.
    fn remove_dropin(&self, key: &str, discard_events: bool) -> Option<u64> {
        let mut r = lock(&self.inner);
        let id = r.get(key).map(|m| m.id());
        let removed = id.filter(|&id| r.cleanup_id(id, system_now_ms()));
        if discard_events && r.pending_events() > 0 {
            r.drain_events();
        }
        removed.map(|id| id.0)
    }

    /// Which of `ids` the registry no longer holds.
    fn gone(&self, ids: &[u64]) -> Vec<usize> {
        let r = lock(&self.inner);
        (0..ids.len())
            .filter(|&i| r.manager(ManagerId(ids[i])).is_none())
            .collect()
    }
}

#[pymethods]
impl PyRegistry {
    #[new]
    #[pyo3(signature = (max_managers_per_user=UsizeArg::of(20), connection_timeout_seconds=1800.0, *,
        proactive_cleanup_percent=60, stale_idle_ms=10_000, stale_unconnected_age_ms=10_000,
        event_capacity=65_536),
        text_signature = "(max_managers_per_user=20, connection_timeout_seconds=1800.0, *, \
            proactive_cleanup_percent=60, stale_idle_ms=10000, stale_unconnected_age_ms=10000, \
            event_capacity=65536)")]
    fn new(
        max_managers_per_user: UsizeArg,
        connection_timeout_seconds: f64,
        proactive_cleanup_percent: u8,
        stale_idle_ms: u64,
        stale_unconnected_age_ms: u64,
        event_capacity: usize,
    ) -> PyResult<Self> {
        let config = RegistryConfig {
            max_managers_per_user: max_managers_per_user.get(),
            proactive_cleanup_percent,
            stale_idle_ms,
            stale_unconnected_age_ms,
            connection_timeout_ms: seconds_to_ms(
                "connection_timeout_seconds",
                connection_timeout_seconds,
            )?,
            event_capacity,
        };
        Ok(Self {
            inner: Mutex::new(max_managers_per_user.py(Registry::new(config))?),
        })
    }

    /// The settings as a dict.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = lock(&self.inner).config().clone();
        let v = serde_json::to_value(c).map_err(|e| crate::error(Kind::Base, e.to_string()))?;
        json_to_py(py, &v)
    }

    /// Creates a manager for the context, or hands back the active one under the same
    /// key. Raises `ManagerLimitError` (a `RuntimeError`) at the per-user limit.
    #[pyo3(signature = (context, *, now_ms=None))]
    fn create(
        &self,
        context: PyRef<'_, PyUserContext>,
        now_ms: Option<u64>,
    ) -> PyResult<PyCreated> {
        let ctx = context.inner.clone();
        let key = format!("{}:{}", ctx.user_id(), ctx.thread_id());
        let now = now_or(now_ms);
        let c = lock(&self.inner).create(ctx, now).py()?;
        Ok(PyCreated {
            manager_id: c.id.0,
            key,
            reused: c.reused,
            stale_cleaned: c.stale_cleaned,
            at_ms: now,
        })
    }

    /// The manager under a key (canonical or older form), or `None`.
    fn get(&self, key: &str) -> Option<PyManagerInfo> {
        lock(&self.inner).get(key).map(PyManagerInfo::from)
    }

    /// The manager behind a handle while it is registered, or `None`.
    fn manager(&self, manager_id: u64) -> Option<PyManagerInfo> {
        lock(&self.inner)
            .manager(ManagerId(manager_id))
            .map(PyManagerInfo::from)
    }

    fn is_active(&self, manager_id: u64) -> bool {
        lock(&self.inner).is_active(ManagerId(manager_id))
    }

    /// Registered (active or not).
    fn is_registered(&self, manager_id: u64) -> bool {
        lock(&self.inner).manager(ManagerId(manager_id)).is_some()
    }

    /// Removes the manager under a key; False when there is none.
    #[pyo3(signature = (key, *, now_ms=None))]
    fn cleanup(&self, key: &str, now_ms: Option<u64>) -> bool {
        lock(&self.inner).cleanup(key, now_or(now_ms))
    }

    /// Removes the manager under a key; its id, or `None` when there is none.
    #[pyo3(signature = (key, *, now_ms=None))]
    fn remove(&self, key: &str, now_ms: Option<u64>) -> Option<u64> {
        let mut r = lock(&self.inner);
        let id = r.get(key).map(|m| m.id())?;
        r.cleanup_id(id, now_or(now_ms)).then_some(id.0)
    }

    #[pyo3(signature = (manager_id, *, now_ms=None))]
    fn cleanup_id(&self, manager_id: u64, now_ms: Option<u64>) -> bool {
        lock(&self.inner).cleanup_id(ManagerId(manager_id), now_or(now_ms))
    }

    #[pyo3(signature = (user_id, *, now_ms=None))]
    fn cleanup_stale_for_user(&self, user_id: &str, now_ms: Option<u64>) -> usize {
        lock(&self.inner).cleanup_stale_for_user(user_id, now_or(now_ms))
    }

    /// Removes ALL of a user's managers, fresh or stale.
    #[pyo3(signature = (user_id, *, now_ms=None))]
    fn force_cleanup_user(&self, user_id: &str, now_ms: Option<u64>) -> usize {
        lock(&self.inner).force_cleanup_user(user_id, now_or(now_ms))
    }

    #[pyo3(signature = (*, now_ms=None))]
    fn expire_idle(&self, now_ms: Option<u64>) -> usize {
        lock(&self.inner).expire_idle(now_or(now_ms))
    }

    #[pyo3(signature = (user_id, *, now_ms=None))]
    fn enforce_limits(&self, user_id: &str, now_ms: Option<u64>) -> bool {
        lock(&self.inner).enforce_limits(user_id, now_or(now_ms))
    }

    #[pyo3(signature = (*, now_ms=None))]
    fn shutdown(&self, now_ms: Option<u64>) -> usize {
        lock(&self.inner).shutdown(now_or(now_ms))
    }

    /// Raises `IsolationViolationError` (a `ValueError`) for another user's connection.
    #[pyo3(signature = (key, connection_id, user_id, connected_ms=None, metadata=None, *, now_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_connection(
        &self,
        key: &str,
        connection_id: String,
        user_id: String,
        connected_ms: Option<u64>,
        metadata: Option<&Bound<'_, PyDict>>,
        now_ms: Option<u64>,
    ) -> PyResult<()> {
        let now = now_or(now_ms);
        let conn = Connection {
            connection_id,
            user_id,
            connected_ms: connected_ms.unwrap_or(now),
            metadata: metadata_arg(metadata)?,
        };
        lock(&self.inner).add_connection(key, conn, now).py()
    }

    #[pyo3(signature = (key, connection_id, *, now_ms=None))]
    fn remove_connection(
        &self,
        key: &str,
        connection_id: &str,
        now_ms: Option<u64>,
    ) -> PyResult<bool> {
        lock(&self.inner)
            .remove_connection(key, connection_id, now_or(now_ms))
            .py()
    }

    /// Closes every connection and marks the manager inactive; returns how many closed.
    #[pyo3(signature = (key, *, now_ms=None))]
    fn deactivate(&self, key: &str, now_ms: Option<u64>) -> PyResult<usize> {
        lock(&self.inner).deactivate(key, now_or(now_ms)).py()
    }

    #[pyo3(signature = (key, *, now_ms=None))]
    fn touch(&self, key: &str, now_ms: Option<u64>) -> PyResult<()> {
        lock(&self.inner).touch(key, now_or(now_ms)).py()
    }

    /// The connection ids a message for `user_id` goes to; the caller sends it.
    #[pyo3(signature = (key, user_id, *, now_ms=None))]
    fn send_to_user(&self, key: &str, user_id: &str, now_ms: Option<u64>) -> PyResult<Vec<String>> {
        lock(&self.inner)
            .send_to_user(key, user_id, now_or(now_ms))
            .py()
    }

    fn find_by_thread(&self, user_id: &str, thread_id: &str) -> Option<PyManagerInfo> {
        lock(&self.inner)
            .find_by_thread(user_id, thread_id)
            .map(PyManagerInfo::from)
    }

    fn find_by_run(&self, user_id: &str, run_id: &str) -> Option<PyManagerInfo> {
        lock(&self.inner)
            .find_by_run(user_id, run_id)
            .map(PyManagerInfo::from)
    }

    /// `[(key, manager_id)]` of every registered manager, sorted by key.
    fn entries(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = lock(&self.inner)
            .iter()
            .map(|(k, m)| (k.to_owned(), m.id().0))
            .collect();
        v.sort();
        v
    }

    fn keys(&self) -> Vec<String> {
        self.entries().into_iter().map(|(k, _)| k).collect()
    }

    /// The manager id under a key (canonical or older form), or `None`.
    fn id_of(&self, key: &str) -> Option<u64> {
        lock(&self.inner).get(key).map(|m| m.id().0)
    }

    fn user_managers(&self, user_id: &str) -> Vec<PyManagerInfo> {
        lock(&self.inner)
            .user_managers(user_id)
            .map(PyManagerInfo::from)
            .collect()
    }

    fn user_count(&self, user_id: &str) -> usize {
        lock(&self.inner).user_count(user_id)
    }

    fn user_counts(&self) -> Vec<(String, usize)> {
        lock(&self.inner).user_counts()
    }

    /// Counters and current sizes as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = lock(&self.inner).stats();
        let v = serde_json::to_value(s).map_err(|e| crate::error(Kind::Base, e.to_string()))?;
        json_to_py(py, &v)
    }

    /// Every event since the last drain, oldest first.
    fn drain_events(&self) -> Vec<PyRegistryEvent> {
        lock(&self.inner)
            .drain_events()
            .into_iter()
            .map(|e| PyRegistryEvent { inner: e })
            .collect()
    }

    /// Drops every undrained event; returns how many (cheaper than draining them).
    fn discard_events(&self) -> usize {
        let mut r = lock(&self.inner);
        let n = r.pending_events();
        r.drain_events();
        n
    }

    /// Ids of the registered managers.
    fn manager_ids(&self) -> Vec<u64> {
        lock(&self.inner).iter().map(|(_, m)| m.id().0).collect()
    }

    fn pending_events(&self) -> usize {
        lock(&self.inner).pending_events()
    }

    fn __len__(&self) -> usize {
        lock(&self.inner).len()
    }

    fn __contains__(&self, key: &str) -> bool {
        lock(&self.inner).get(key).is_some()
    }
}

/// What the Netra drop-in's `IsolatedWebSocketManager` keeps about its manager, held
/// natively (the drop-in class subclasses this): making one is a single native call
/// instead of a Python `__init__` (which cost about 3,000 instructions, a seventh of a
/// create and cleanup pair). Read-only.
#[pyclass(
    frozen,
    subclass,
    name = "ManagerHandle",
    module = "threadline._native"
)]
pub struct PyManagerHandle {
    #[pyo3(get, name = "_factory")]
    factory: Py<PyAny>,
    #[pyo3(get, name = "_manager_id")]
    manager_id: u64,
    #[pyo3(get, name = "_isolation_key")]
    isolation_key: Py<PyString>,
    #[pyo3(get, name = "_user_context")]
    pub(crate) user_context: Py<PyAny>,
    /// Kept as the int it was given (converting it costs more than keeping it).
    #[pyo3(get, name = "_created_ms")]
    created_ms: Py<PyInt>,
    /// Connection id -> the caller's connection object.
    #[pyo3(get, name = "_connection_objects")]
    connection_objects: Py<PyDict>,
}

#[pymethods]
impl PyManagerHandle {
    #[new]
    #[pyo3(signature = (factory, manager_id, isolation_key, user_context, created_ms, /))]
    fn new(
        factory: &Bound<'_, PyAny>,
        manager_id: u64,
        isolation_key: Py<PyString>,
        user_context: Py<PyAny>,
        created_ms: Py<PyInt>,
    ) -> Self {
        Self {
            factory: factory.clone().unbind(),
            manager_id,
            isolation_key,
            user_context,
            created_ms,
            connection_objects: PyDict::new(factory.py()).unbind(),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.factory)?;
        visit.call(&self.user_context)?;
        visit.call(&self.connection_objects)?;
        Ok(())
    }
}

/// The Netra drop-in factory's create and cleanup, each one native call: the factory's
/// lock, the registry's create or cleanup, the hand-off of events to the factory's
/// observers (`factory._pump_locked()`, only when there are any), and the factory's
/// wrapper table (manager id -> wrapper: a new wrapper for a new manager, none for a
/// manager that is gone). The lock is taken and released here, so a create or cleanup
/// never interleaves with Python code that holds it (`add_connection` and the like).
#[pyclass(frozen, name = "ManagerTable", module = "threadline._native")]
pub struct PyManagerTable {
    registry: Py<PyRegistry>,
    lock: Py<PyReentrantLock>,
    wrappers: Py<PyDict>,
    observers: Py<PyList>,
    /// The wrapper class: called as `(factory, manager_id, key, user_context, created_ms)`.
    wrapper_type: Py<PyType>,
}

impl PyManagerTable {
    /// Forgets the wrapper of every manager the registry no longer holds (and any entry
    /// whose key is not a manager id).
    fn prune(&self, py: Python<'_>) -> PyResult<()> {
        let wrappers = self.wrappers.bind(py);
        let keys: Vec<Bound<'_, PyAny>> = wrappers.keys().into_iter().collect();
        // Ids are read before the registry is locked (reading a key may run Python code).
        let ids: Vec<Option<u64>> = keys.iter().map(|k| k.extract::<u64>().ok()).collect();
        let known: Vec<u64> = ids.iter().map(|i| i.unwrap_or(0)).collect();
        let mut dead = vec![false; keys.len()];
        for i in self.registry.get().gone(&known) {
            dead[i] = true;
        }
        for (i, k) in keys.iter().enumerate() {
            if dead[i] || ids[i].is_none() {
                forget_wrapper(wrappers, k)?;
            }
        }
        Ok(())
    }

    fn pump(&self, factory: &Bound<'_, PyAny>, observed: bool) -> PyResult<()> {
        if observed {
            factory.call_method0(intern!(factory.py(), "_pump_locked"))?;
        }
        Ok(())
    }

    /// After an operation that failed with `error`: forgets the wrappers of removed
    /// managers (with `prune`) and hands the events to the observers. The operation's
    /// own error is what is returned; an observer's exception (or the prune's) becomes
    /// its `__context__`, never its replacement.
    fn settle_failed(
        &self,
        factory: &Bound<'_, PyAny>,
        observed: bool,
        prune: bool,
        error: PyErr,
    ) -> PyErr {
        let py = factory.py();
        let after = if prune { self.prune(py) } else { Ok(()) };
        let after = after.and_then(|()| self.pump(factory, observed));
        if let Err(later) = after {
            if error
                .value(py)
                .getattr(intern!(py, "__context__"))
                .is_ok_and(|c| c.is_none())
            {
                // Setting an attribute of a fresh exception does not fail in practice;
                // if it does, the operation's error is still the one raised.
                let _ = error
                    .value(py)
                    .setattr(intern!(py, "__context__"), later.value(py));
            }
        }
        error
    }
}

#[pymethods]
impl PyManagerTable {
    #[new]
    #[pyo3(signature = (registry, lock, wrappers, observers, wrapper_type, /))]
    fn new(
        registry: Py<PyRegistry>,
        lock: Py<PyReentrantLock>,
        wrappers: Py<PyDict>,
        observers: Py<PyList>,
        wrapper_type: Py<PyType>,
    ) -> Self {
        Self {
            registry,
            lock,
            wrappers,
            observers,
            wrapper_type,
        }
    }

    /// `create_manager`: the wrapper of the active manager under the context's key, or of
    /// a new one. Raises `ManagerLimitError` at the per-user limit (after forgetting the
    /// wrappers of the stale managers cleaned first). The observers are told last, once
    /// the wrapper table matches the registry: a new manager's wrapper is stored even when
    /// an observer then raises (the observer's exception is raised, and the manager is
    /// found by key), and an observer's exception never replaces `ManagerLimitError`
    /// (it becomes its `__context__`).
    #[pyo3(signature = (factory, context, user_context, /))]
    fn create<'py>(
        &self,
        factory: &Bound<'py, PyAny>,
        context: &Bound<'py, PyUserContext>,
        user_context: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = factory.py();
        let _held = Held::new(py, self.lock.get())?;
        let observed = !self.observers.bind(py).is_empty();
        let (id, stale_cleaned, at_ms, key, replaced) =
            match self.registry.get().create_dropin(context, !observed) {
                Ok(c) => c,
                // Stale managers may have been cleaned first: prune.
                Err(e) => return Err(self.settle_failed(factory, observed, true, e)),
            };
        let wrappers = self.wrappers.bind(py);
        let id = id.into_pyobject(py)?;
        let w = match wrappers.get_item(&id)? {
            Some(w) => w,
            None => {
                if let Some(r) = replaced {
                    // An inactive manager under the same key was replaced.
                    forget_wrapper(wrappers, r.into_pyobject(py)?.as_any())?;
                }
                let w =
                    self.wrapper_type
                        .bind(py)
                        .call1((factory, &id, key, user_context, at_ms))?;
                wrappers.set_item(&id, &w)?;
                w
            }
        };
        if stale_cleaned > 0 {
            self.prune(py)?;
        }
        self.pump(factory, observed)?;
        Ok(w)
    }

    /// `cleanup_manager`: True when a manager was removed under `key` (whose wrapper is
    /// then forgotten, its connection objects cleared); False for no manager or a key
    /// that is not a str or holds a lone surrogate (no manager has such a key). The
    /// observers are told last; see `create`.
    #[pyo3(signature = (factory, key, /))]
    fn remove(&self, factory: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(key) = key.cast::<PyString>() else {
            return Ok(false);
        };
        let Ok(key) = key.to_str() else {
            return Ok(false); // a lone surrogate: nothing to look up
        };
        let py = factory.py();
        let _held = Held::new(py, self.lock.get())?;
        let observed = !self.observers.bind(py).is_empty();
        let forgotten = match self.registry.get().remove_dropin(key, !observed) {
            Some(id) => forget_wrapper(self.wrappers.bind(py), id.into_pyobject(py)?.as_any())
                .map(|()| true),
            None => Ok(false),
        };
        match forgotten {
            Ok(removed) => {
                self.pump(factory, observed)?;
                Ok(removed)
            }
            Err(e) => Err(self.settle_failed(factory, observed, false, e)),
        }
    }

    /// Forgets the wrapper of every manager the registry no longer holds (after a
    /// cleanup that may remove several), under the factory's lock.
    #[pyo3(name = "prune")]
    fn prune_py(&self, py: Python<'_>) -> PyResult<()> {
        let _held = Held::new(py, self.lock.get())?;
        self.prune(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.registry)?;
        visit.call(&self.lock)?;
        visit.call(&self.wrappers)?;
        visit.call(&self.observers)?;
        visit.call(&self.wrapper_type)?;
        Ok(())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyManagerHandle>()?;
    m.add_class::<PyManagerTable>()?;
    m.add_class::<PyManagerInfo>()?;
    m.add_class::<PyCreated>()?;
    m.add_class::<PyRegistryEvent>()?;
    m.add_class::<PyRegistry>()?;
    Ok(())
}
