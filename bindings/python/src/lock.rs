//! A re-entrant lock for Python code and the binding alike: `threading.RLock`'s
//! behaviour (the owning thread may take it again; only the owner releases it), with
//! argument-free `acquire` and `__enter__` calls, and takeable from Rust without a
//! Python call. The Netra drop-in's factory holds it around its wrapper table; the
//! table's native `create` and `remove` take it themselves.
//!
//! Unlike the binding's other locks, it IS held while Python code runs (that is its job:
//! it orders Python-level work). It is never waited for with the GIL held: a thread that
//! finds it taken releases the GIL while it waits, and checks for signals (Ctrl-C)
//! between waits of at most 50 ms.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::lock;

/// The longest a waiting thread goes without the GIL before it checks for signals.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The calling thread's token: the address of a thread-local, distinct among live
/// threads (like `threading.get_ident()`, it may be reused after a thread ends).
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| t as *const u8 as usize)
}

#[derive(Default)]
struct LockState {
    /// Token of the owning thread; meaningful while `count > 0`.
    owner: usize,
    /// How many times the owner holds it.
    count: usize,
    /// Threads waiting for it: a release wakes one only when there are any (a wake-up is
    /// a system call, several times the cost of the rest of a release).
    waiting: usize,
}

impl LockState {
    fn try_take(&mut self, me: usize) -> bool {
        if self.count == 0 {
            self.owner = me;
            self.count = 1;
            true
        } else if self.owner == me {
            self.count += 1;
            true
        } else {
            false
        }
    }
}

/// A re-entrant lock (`threading.RLock`'s rules). `with lock:` takes and releases it.
#[pyclass(frozen, name = "ReentrantLock", module = "threadline._native")]
#[derive(Default)]
pub struct PyReentrantLock {
    state: Mutex<LockState>,
    freed: Condvar,
}

impl PyReentrantLock {
    /// Takes the lock, waiting (without the GIL) until `deadline` if another thread has
    /// it; False when the deadline passed first. Raises what a signal handler raised.
    pub(crate) fn take(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        let me = thread_token();
        if lock(&self.state).try_take(me) {
            return Ok(true);
        }
        loop {
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Ok(false);
                    }
                    (d - now).min(WAIT_SLICE)
                }
            };
            let taken = py.detach(|| {
                let mut s = lock(&self.state);
                if s.try_take(me) {
                    return true;
                }
                s.waiting += 1;
                s = self
                    .freed
                    .wait_timeout(s, slice)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0);
                s.waiting -= 1;
                s.try_take(me)
            });
            if taken {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }

    /// Releases one hold; RuntimeError when the calling thread does not hold it.
    pub(crate) fn give(&self) -> PyResult<()> {
        let me = thread_token();
        let mut s = lock(&self.state);
        if s.count == 0 || s.owner != me {
            return Err(PyRuntimeError::new_err("cannot release un-acquired lock"));
        }
        s.count -= 1;
        if s.count == 0 && s.waiting > 0 {
            drop(s);
            self.freed.notify_one();
        }
        Ok(())
    }
}

#[pymethods]
impl PyReentrantLock {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// `RLock.acquire`: True once taken; with `blocking=False` or a `timeout` (seconds),
    /// False when it was not taken.
    #[pyo3(signature = (blocking=true, timeout=-1.0), text_signature = "(self, /, blocking=True, timeout=-1.0)")]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        if !blocking {
            if timeout != -1.0 {
                return Err(PyValueError::new_err(
                    "can't specify a timeout for a non-blocking call",
                ));
            }
            return Ok(lock(&self.state).try_take(thread_token()));
        }
        let deadline = if timeout == -1.0 {
            None
        } else if timeout.is_nan() || timeout < 0.0 {
            return Err(PyValueError::new_err(
                "timeout value must be a non-negative number",
            ));
        } else {
            // A timeout too long to represent waits without a deadline.
            Duration::try_from_secs_f64(timeout)
                .ok()
                .and_then(|d| Instant::now().checked_add(d))
        };
        self.take(py, deadline)
    }

    fn release(&self) -> PyResult<()> {
        self.give()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.take(py, None)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.give()
    }

    /// True when the calling thread holds it.
    fn _is_owned(&self) -> bool {
        let s = lock(&self.state);
        s.count > 0 && s.owner == thread_token()
    }

    fn __repr__(&self) -> String {
        let s = lock(&self.state);
        format!(
            "<threadline._native.ReentrantLock {} count={}>",
            if s.count > 0 { "locked" } else { "unlocked" },
            s.count
        )
    }
}

/// Holds the lock until dropped.
pub(crate) struct Held<'a>(&'a PyReentrantLock);

impl<'a> Held<'a> {
    pub(crate) fn new(py: Python<'_>, l: &'a PyReentrantLock) -> PyResult<Self> {
        l.take(py, None)?;
        Ok(Self(l))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Fails only when Python code under the hold released it itself.
        let _ = self.0.give();
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReentrantLock>()
}
