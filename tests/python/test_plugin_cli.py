"""The pytest plugin (through its entry point, in a subprocess) and `python -m threadline`."""

import hashlib
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
    nodeid = "tests/a.py::TestX::test_y[1-b c]"
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:12]
    assert report_file_name(nodeid) == f"tests_a.py_TestX_test_y_1-b_c-{digest}.json"
    assert report_file_name("::") == f"test-{hashlib.sha1(b'::').hexdigest()[:12]}.json"


PARAM_CLASH = """
import pytest

@pytest.mark.parametrize("v", ["a b", "a_b", "a/b", "a:b", "A_B"])
def test_param(thread_id_tracker, v):
    thread_id_tracker.take_snapshot("op_" + v.replace(" ", "space").replace("/", "slash").replace(":", "colon"))
"""


def test_ids_that_clean_up_alike_keep_separate_report_files(pytester):
    pytester.makepyfile(test_p=PARAM_CLASH)
    out_dir = pytester.path / "out"
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--threadline-report-dir={out_dir}")
    r.assert_outcomes(passed=5)
    names = sorted(p.name for p in out_dir.iterdir())
    assert len(names) == 5
    # Case-insensitive file systems too: no two names differ only in case.
    assert len({n.lower() for n in names}) == 5
    assert all(n.startswith("test_p.py_test_param_") for n in names)
    for v, op in [("a b", "op_aspaceb"), ("a_b", "op_a_b"), ("a/b", "op_aslashb"), ("a:b", "op_acolonb"), ("A_B", "op_A_B")]:
        path = out_dir / report_file_name(f"test_p.py::test_param[{v}]")
        assert [s.operation for s in Tracker.from_json(path.read_text()).snapshots()] == [op]


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
    # Valid JSON that lacks a field is not called invalid JSON.
    bad.write_text('{"schema":"threadline.report/1"}')
    r = run_cli("report", str(bad), cwd=tmp_path)
    assert r.returncode == 2
    assert "missing field `started_at_ms`" in r.stderr
    assert "not valid JSON" not in r.stderr


def test_long_report_file_names_stay_distinct():
    a = report_file_name("t.py::test_x[" + "a" * 300 + "]")
    b = report_file_name("t.py::test_x[" + "a" * 299 + "b]")
    assert a != b and len(a) <= 205 and a.endswith(".json")
