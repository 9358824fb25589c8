//! ID generation, parsing and run/thread correlation.

use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use threadline::ids::{self, IdComponents, RunFormat};
use threadline::{IdGenerator, ManualClock, SeededEntropy};

use crate::{now_or, PyResultExt, UsizeArg};

static DEFAULT: OnceLock<Result<Arc<IdGenerator>, String>> = OnceLock::new();

/// The binding's clock: the system clock, read here (the core only reads `Clock`).
struct BindingClock;

impl threadline::Clock for BindingClock {
    fn now_ms(&self) -> u64 {
        crate::system_now_ms()
    }
}

/// A generator on the system clock with a CSPRNG seeded from the operating system.
fn system_generator() -> Result<IdGenerator, threadline::IdError> {
    Ok(IdGenerator::new(
        Arc::new(BindingClock),
        SeededEntropy::from_os()?,
    ))
}

/// The process-wide generator: system clock and an OS-seeded CSPRNG.
pub(crate) fn default_generator() -> PyResult<Arc<IdGenerator>> {
    match DEFAULT.get_or_init(|| system_generator().map(Arc::new).map_err(|e| e.to_string())) {
        Ok(g) => Ok(g.clone()),
        Err(e) => Err(crate::error(crate::Kind::Base, e.clone())),
    }
}

/// Mints every Netra id format. Shareable between threads.
#[pyclass(frozen, name = "IdGenerator", module = "threadline._native")]
pub struct PyIdGenerator {
    pub(crate) inner: Arc<IdGenerator>,
    clock: Option<Arc<ManualClock>>,
}

fn run_format(f: RunFormat) -> &'static str {
    match f {
        RunFormat::Generator => "generator",
        RunFormat::Manager => "manager",
    }
}

#[pymethods]
impl PyIdGenerator {
    /// With no arguments: the system clock and an OS-seeded CSPRNG. `seed` makes the
    /// random parts deterministic, `clock_ms` fixes the clock (moved with `set_clock_ms`
    /// and `advance_clock_ms`): for tests and test vectors.
    #[new]
    #[pyo3(signature = (seed=None, clock_ms=None))]
    fn new(seed: Option<u64>, clock_ms: Option<u64>) -> PyResult<Self> {
        if seed.is_none() && clock_ms.is_none() {
            return Ok(Self {
                inner: Arc::new(system_generator().py()?),
                clock: None,
            });
        }
        let manual = clock_ms.map(|ms| Arc::new(ManualClock::new(ms)));
        let clock: Arc<dyn threadline::Clock> = match &manual {
            Some(c) => c.clone(),
            None => Arc::new(BindingClock),
        };
        let inner = match seed {
            Some(s) => IdGenerator::new(clock, SeededEntropy::from_seed(s)),
            None => IdGenerator::new(clock, SeededEntropy::from_os().py()?),
        };
        Ok(Self {
            inner: Arc::new(inner),
            clock: manual,
        })
    }

    /// The process-wide generator (the one `threadline.netra` uses).
    #[staticmethod]
    fn default() -> PyResult<Self> {
        Ok(Self {
            inner: default_generator()?,
            clock: None,
        })
    }

    #[pyo3(signature = (user_id, operation="context"))]
    fn user_context_ids<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        operation: &str,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let c = self.inner.user_context_ids(user_id, operation).py()?;
        // Python strings straight from the core's one buffer.
        pyo3::types::PyTuple::new(py, [c.thread_id(), c.run_id(), c.request_id()])
    }

    #[pyo3(signature = (prefix="id", include_random=true, random_length=UsizeArg::of(8)),
        text_signature = "($self, prefix=\"id\", include_random=True, random_length=8)")]
    fn base_id(
        &self,
        prefix: &str,
        include_random: bool,
        random_length: UsizeArg,
    ) -> PyResult<String> {
        random_length.py(self
            .inner
            .base_id(prefix, include_random, random_length.get()))
    }

    fn simple_id(&self, prefix: &str) -> PyResult<String> {
        self.inner.simple_id(prefix).py()
    }

    #[pyo3(signature = (user_id, connection_timestamp=None))]
    fn websocket_client_id(
        &self,
        user_id: &str,
        connection_timestamp: Option<f64>,
    ) -> PyResult<String> {
        self.inner
            .websocket_client_id(user_id, connection_timestamp)
            .py()
    }

    #[pyo3(signature = (user_id, connection_timestamp=None))]
    fn websocket_connection_id(
        &self,
        user_id: &str,
        connection_timestamp: Option<f64>,
    ) -> PyResult<String> {
        self.inner
            .websocket_connection_id(user_id, connection_timestamp)
            .py()
    }

    #[pyo3(signature = (user_id, session_type="web"))]
    fn session_id(&self, user_id: &str, session_type: &str) -> PyResult<String> {
        self.inner.session_id(user_id, session_type).py()
    }

    fn agent_execution_id(&self, agent_type: &str, user_id: &str) -> PyResult<String> {
        self.inner.agent_execution_id(agent_type, user_id).py()
    }

    #[pyo3(signature = (message_type, user_id, thread_id=None))]
    fn message_id(
        &self,
        message_type: &str,
        user_id: &str,
        thread_id: Option<&str>,
    ) -> PyResult<String> {
        self.inner.message_id(message_type, user_id, thread_id).py()
    }

    #[pyo3(signature = (prefix, count, include_random=true))]
    fn batch_ids(
        &self,
        prefix: &str,
        count: UsizeArg,
        include_random: bool,
    ) -> PyResult<Vec<String>> {
        count.py(self.inner.batch_ids(prefix, count.get(), include_random))
    }

    /// The older `UnifiedIDManager` run format `run_{thread_id}_{ms % 100000}_{h8}`.
    fn manager_run_id(&self, thread_id: &str) -> PyResult<String> {
        self.inner.manager_run_id(thread_id).py()
    }

    fn uuid4(&self) -> String {
        self.inner.uuid_v4()
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    #[getter]
    fn counter(&self) -> u64 {
        self.inner.counter()
    }

    #[getter]
    fn clock_regressions(&self) -> u64 {
        self.inner.clock_regressions()
    }

    fn reset_counter(&self) {
        self.inner.reset_counter();
    }

    /// Sets the fixed clock; an error for a generator on the system clock.
    fn set_clock_ms(&self, now_ms: u64) -> PyResult<()> {
        self.manual()?.set(now_ms);
        Ok(())
    }

    fn advance_clock_ms(&self, delta_ms: i64) -> PyResult<()> {
        self.manual()?.advance(delta_ms);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "IdGenerator(counter={}, fixed_clock={})",
            self.inner.counter(),
            if self.clock.is_some() {
                "True"
            } else {
                "False"
            }
        )
    }
}

impl PyIdGenerator {
    fn manual(&self) -> PyResult<&ManualClock> {
        self.clock.as_deref().ok_or_else(|| {
            crate::error(
                crate::Kind::Base,
                "this generator runs on the system clock: create it with clock_ms= to set the clock".into(),
            )
        })
    }
}

/// The parts of a base id (Netra's `IdComponents`).
#[pyclass(frozen, eq, hash, name = "IdComponents", module = "threadline._native")]
#[derive(PartialEq, Eq, Hash)]
pub struct PyIdComponents {
    #[pyo3(get)]
    prefix: String,
    /// Unix ms.
    #[pyo3(get)]
    timestamp: u64,
    #[pyo3(get)]
    counter: u64,
    #[pyo3(get)]
    random: String,
    #[pyo3(get)]
    full_id: String,
}

impl From<IdComponents> for PyIdComponents {
    fn from(c: IdComponents) -> Self {
        Self {
            prefix: c.prefix,
            timestamp: c.timestamp_ms,
            counter: c.counter,
            random: c.random,
            full_id: c.full_id,
        }
    }
}

#[pymethods]
impl PyIdComponents {
    fn __repr__(&self) -> String {
        format!(
            "IdComponents(prefix={:?}, timestamp={}, counter={}, random={:?}, full_id={:?})",
            self.prefix, self.timestamp, self.counter, self.random, self.full_id
        )
    }
}

/// Parses `{prefix}_{ms}_{n}[_{hex}]` from the right; raises `InvalidIdError`.
#[pyfunction]
fn parse_id(id: &str) -> PyResult<PyIdComponents> {
    Ok(ids::parse_id(id).py()?.into())
}

/// Parses, has `expected_prefix`, timestamp at most a year old and an hour ahead.
#[pyfunction]
#[pyo3(signature = (id, expected_prefix=None, now_ms=None))]
fn is_valid_id(id: &str, expected_prefix: Option<&str>, now_ms: Option<u64>) -> bool {
    ids::is_valid_id(id, expected_prefix, now_or(now_ms))
}

/// Age in ms (negative when from the future); raises `InvalidIdError`.
#[pyfunction]
#[pyo3(signature = (id, now_ms=None))]
fn id_age_ms(id: &str, now_ms: Option<u64>) -> PyResult<i64> {
    ids::id_age_ms(id, now_or(now_ms)).py()
}

/// `(kind, operation, counter, random)` of a `thread_/run_/req_{op}_{n}_{h8}` id.
#[pyfunction]
fn parse_context_id(id: &str) -> PyResult<(String, String, u64, String)> {
    let p = ids::parse_context_id(id).py()?;
    let kind = match p.kind {
        ids::ContextIdKind::Thread => "thread",
        ids::ContextIdKind::Run => "run",
        ids::ContextIdKind::Request => "request",
    };
    Ok((kind.into(), p.operation, p.counter, p.random))
}

/// Every reading of a run id as `(thread_id, format)`, the generator reading first.
#[pyfunction]
fn run_readings(run_id: &str) -> Vec<(String, &'static str)> {
    ids::run_readings(run_id)
        .into_iter()
        .map(|r| (r.thread_id, run_format(r.format)))
        .collect()
}

/// The thread of a run id, generator reading first (Netra's `extract_thread_id`, fixed).
#[pyfunction]
fn thread_id_for_run(run_id: &str) -> Option<String> {
    ids::thread_id_for_run(run_id)
}

/// Whether the run id belongs to the thread id under either run format.
#[pyfunction]
fn are_correlated(thread_id: &str, run_id: &str) -> bool {
    ids::are_correlated(thread_id, run_id)
}

/// `"generator"`, `"manager"` or `None`.
#[pyfunction]
fn correlation(thread_id: &str, run_id: &str) -> Option<&'static str> {
    ids::correlation(thread_id, run_id).map(run_format)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyIdGenerator>()?;
    m.add_class::<PyIdComponents>()?;
    m.add_function(wrap_pyfunction!(parse_id, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_id, m)?)?;
    m.add_function(wrap_pyfunction!(id_age_ms, m)?)?;
    m.add_function(wrap_pyfunction!(parse_context_id, m)?)?;
    m.add_function(wrap_pyfunction!(run_readings, m)?)?;
    m.add_function(wrap_pyfunction!(thread_id_for_run, m)?)?;
    m.add_function(wrap_pyfunction!(are_correlated, m)?)?;
    m.add_function(wrap_pyfunction!(correlation, m)?)?;
    Ok(())
}
