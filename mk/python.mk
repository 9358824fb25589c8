# Python package (issue 3): venv, build via maturin, stubtest, pytest, demo.
# `pip install .` rebuilds the extension from the current Rust sources every time
# (cargo's incremental cache in $(PY_CARGO_TARGET_DIR) keeps an unchanged rebuild short).

PYTHON ?= python3
PY_VENV := .venv
PY := $(PY_VENV)/bin/python
PY_CARGO_TARGET_DIR ?= $(CURDIR)/target/python
PY_TOOLS := 'maturin>=1.7,<2' 'pytest>=7.4' 'mypy>=1.8'

TEST_TARGETS += test-python
DEMO_TARGETS := demo-python

.PHONY: python-venv python-install test-python demo-python

$(PY):
	$(PYTHON) -m venv $(PY_VENV)

python-venv: $(PY)
	@$(PY) -c 'import maturin, pytest, mypy' 2>/dev/null || $(PY) -m pip install --quiet $(PY_TOOLS)

python-install: python-venv
	PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" CARGO_TARGET_DIR=$(PY_CARGO_TARGET_DIR) $(PY) -m pip install --quiet --no-build-isolation --force-reinstall --no-deps .

test-python: python-install
	cd /tmp && $(CURDIR)/$(PY) -m mypy.stubtest threadline._native
	$(PY) -m mypy python/threadline
	$(PY) -m pytest tests/python -W error

demo-python: python-install
	$(PY) -m threadline demo
