"""pytest plugin (entry point `pytest11`): the `thread_id_tracker` fixture.

- a fresh `ThreadIDConsistencyTracker` per test;
- at teardown its detailed report is printed when the test failed, or always with
  `--threadline-report=always` (`never` turns it off);
- `--threadline-report-dir DIR` writes each test's report JSON to DIR, named after the
  test id and a short hash of it, so that ids that clean up to the same text keep
  separate files (see `report_file_name`; for the browser replay and
  `python -m threadline report`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Dict, Generator

import pytest

from .netra import ThreadIDConsistencyTracker

_REPORTS = pytest.StashKey[Dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("threadline")
    g.addoption(
        "--threadline-report",
        choices=("on-failure", "always", "never"),
        default="on-failure",
        help="when to print the thread_id_tracker report at teardown (default: on-failure)",
    )
    g.addoption(
        "--threadline-report-dir",
        default=None,
        metavar="DIR",
        help="write each test's thread_id_tracker report as JSON into DIR",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    rep = yield
    item.stash.setdefault(_REPORTS, {})[rep.when] = rep
    return rep


def report_file_name(nodeid: str) -> str:
    """The JSON file name of a test id: the id with each run of unsafe characters made
    `_` (cut to 187 characters), then `-` and 12 hex digits of the id's SHA-1. Cleaning
    alone maps different ids to one name (`[a b]`, `[a_b]`, `[a/b]` and `[a:b]` all
    become `_a_b`), and so does a case-insensitive file system; the hash of the id as
    given keeps every test's file apart."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._")[:187] or "test"
    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name}-{digest}.json"


@pytest.fixture
def thread_id_tracker(request: pytest.FixtureRequest) -> Generator[ThreadIDConsistencyTracker, None, None]:
    tracker = ThreadIDConsistencyTracker()
    yield tracker
    config = request.config
    reports = request.node.stash.get(_REPORTS, {})
    failed = any(r.failed for r in reports.values())
    mode = config.getoption("--threadline-report")
    if mode == "always" or (mode == "on-failure" and failed):
        text = tracker.get_detailed_report()
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        header = f"threadline report: {request.node.nodeid}"
        if reporter is not None and capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.write_sep("-", header)
                reporter.write_line(text)
        else:
            print(f"\n{header}\n{text}")
    out_dir = config.getoption("--threadline-report-dir")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        tracker.save_json(os.path.join(out_dir, report_file_name(request.node.nodeid)))
