"""The pytest plugin (through its entry point, in a subprocess) and `python -m threadline`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from threadline import Tracker
from threadline.pytest_plugin import report_file_name

pytest_plugins = ["pytester"]

INNER = """
def test_fails(thread_id_tracker):
    thread_id_tracker.take_snapshot("failing_marker_op", user_context=None)
    assert 1 == 2

def test_passes(thread_id_tracker):
    thread_id_tracker.take_snapshot("passing_marker_op")
    thread_id_tracker.take_snapshot("second_op")

def test_fresh_tracker_per_test(thread_id_tracker):
    assert thread_id_tracker.snapshots == []
"""


def test_report_printed_only_for_failed_tests(pytester):
    pytester.makepyfile(test_inner=INNER)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=2, failed=1)
    out = r.stdout.str()
    assert "threadline report: test_inner.py::test_fails" in out
    assert "[0] failing_marker_op @" in out and out.count("=== THREAD_ID CONSISTENCY TRACKING REPORT ===") == 1
    assert "passing_marker_op" not in out


def test_report_always_and_json_dir(pytester):
    pytester.makepyfile(test_inner=INNER)
    out_dir = pytester.path / "reports"
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--threadline-report=always",
                                      f"--threadline-report-dir={out_dir}")
    r.assert_outcomes(passed=2, failed=1)
    out = r.stdout.str()
    assert "[0] passing_marker_op @" in out and "[0] failing_marker_op @" in out
    assert out.count("=== THREAD_ID CONSISTENCY TRACKING REPORT ===") == 3
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == sorted(report_file_name(f"test_inner.py::{n}")
                           for n in ("test_fails", "test_passes", "test_fresh_tracker_per_test"))
    t = Tracker.from_json((out_dir / report_file_name("test_inner.py::test_passes")).read_text())
    assert [s.operation for s in t.snapshots()] == ["passing_marker_op", "second_op"]


def test_report_never(pytester):
    pytester.makepyfile(test_inner=INNER)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--threadline-report=never")
    r.assert_outcomes(passed=2, failed=1)
    assert "THREAD_ID CONSISTENCY TRACKING REPORT" not in r.stdout.str()
    assert "threadline report:" not in r.stdout.str()


def test_report_file_names():
    assert report_file_name("tests/a.py::TestX::test_y[1-b c]") == "tests_a.py_TestX_test_y_1-b_c.json"
    assert report_file_name("::") == "test.json"


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "threadline", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_demo_prints_reports_and_verdicts_and_writes_json(tmp_path: Path):
    r = run_cli("demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("##### verdicts")[1].strip().splitlines()[:6]
    verdicts = [line.split(" (")[0] for line in lines]
    assert "manager_leak: leak prevented (create 21 refused at the limit of 20; " \
        "25 connections through the session store: 1 manager)" in lines
    assert verdicts == [
        "user_context_consistency: consistent",
        "manager_creation_inconsistency: bug reproduced",
        "manager_lifecycle: consistent",
        "concurrent_users: consistent",
        "recovery_after_mismatch: recovered",
        "manager_leak: leak prevented",
    ]
    assert r.stdout.count("=== THREAD_ID CONSISTENCY TRACKING REPORT ===") == 6
    assert "⚠️  MISMATCH DETECTED" in r.stdout
    files = sorted((tmp_path / "threadline-reports").glob("*.json"))
    assert len(files) == 6
    for f in files:
        assert json.loads(f.read_text())["schema"] == "threadline.report/1"
    saved = run_cli("report", str(files[0]), cwd=tmp_path)
    assert saved.returncode == 0
    assert saved.stdout == Tracker.from_json(files[0].read_text()).report_text() + "\n"


def test_report_of_a_bad_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "other/1"}')
    r = run_cli("report", str(bad), cwd=tmp_path)
    assert r.returncode == 2
    assert 'report schema is "other/1": expected "threadline.report/1"' in r.stderr
    r = run_cli("report", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_long_report_file_names_stay_distinct():
    a = report_file_name("t.py::test_x[" + "a" * 300 + "]")
    b = report_file_name("t.py::test_x[" + "a" * 299 + "b]")
    assert a != b and len(a) <= 205 and a.endswith(".json")
