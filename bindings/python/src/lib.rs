//! Python bindings for threadline: type and error conversion only; every rule is in the core.

use pyo3::prelude::*;

#[pymodule]
fn _native(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
