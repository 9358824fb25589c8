"""The cross-language test vectors (tests/vectors/*.json, format in tests/vectors/README.md):
the Python binding must give the core's answers byte for byte."""

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from threadline import (
    IdGenerator,
    IsolationKey,
    ThreadlineError,
    Tracker,
    UserContext,
    are_correlated,
    correlation,
    id_age_ms,
    is_valid_id,
    parse_context_id,
    parse_id,
    run_readings,
    thread_id_for_run,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TRACKER_FILES = sorted(VECTORS.glob("tracker-*.json"))


def load(name: str) -> Dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ThreadlineError as e:
        return {"error": e.kind}


def test_vector_files_exist():
    # The vectors are part of the repository; their absence is a failure, not a skip.
    assert (VECTORS / "ids.json").is_file() and (VECTORS / "keys.json").is_file()
    assert (VECTORS / "errors.json").is_file() and TRACKER_FILES


def test_id_vectors():
    v = load("ids.json")
    for case in v["parse"]:
        def p(i=case["id"]):
            c = parse_id(i)
            return {"prefix": c.prefix, "timestamp_ms": c.timestamp, "counter": c.counter,
                    "random": c.random, "full_id": c.full_id}
        assert outcome(p) == case["expected"], case["id"]
    for case in v["context_ids"]:
        def pc(i=case["id"]):
            kind, op, counter, random = parse_context_id(i)
            return {"kind": kind, "operation": op, "counter": counter, "random": random}
        assert outcome(pc) == case["expected"], case["id"]
    for case in v["run_readings"]:
        got = {
            "readings": [{"thread_id": t, "format": f} for t, f in run_readings(case["run_id"])],
            "thread_id_for_run": thread_id_for_run(case["run_id"]),
        }
        assert got == case["expected"], case["run_id"]
    for case in v["correlation"]:
        got = {"correlated": are_correlated(case["thread_id"], case["run_id"]),
               "format": correlation(case["thread_id"], case["run_id"])}
        assert got == case["expected"], case
    for case in v["validity"]:
        valid = is_valid_id(case["id"], case["expected_prefix"], case["now_ms"])
        age = outcome(lambda: id_age_ms(case["id"], case["now_ms"]))
        got = {"valid": valid, "age_ms": None if isinstance(age, dict) else age}
        assert got == case["expected"], case


@pytest.mark.parametrize("group", range(len(load("ids.json")["minted"])))
def test_minted_vectors(group: int):
    m = load("ids.json")["minted"][group]
    g = IdGenerator(seed=m["seed"], clock_ms=m["start_ms"])
    calls: Dict[str, Callable[..., Any]] = {
        "user_context_ids": lambda *a: dict(zip(("thread_id", "run_id", "request_id"), g.user_context_ids(*a))),
        "base_id": g.base_id,
        "simple_id": g.simple_id,
        "websocket_client_id": g.websocket_client_id,
        "websocket_connection_id": g.websocket_connection_id,
        "session_id": g.session_id,
        "agent_execution_id": g.agent_execution_id,
        "message_id": g.message_id,
        "batch_ids": g.batch_ids,
        "manager_run_id": g.manager_run_id,
        "uuid_v4": g.uuid4,
    }
    assert len(m["calls"]) == len(m["expected"])
    for call, expected in zip(m["calls"], m["expected"]):
        if call.get("advance_ms"):
            g.advance_clock_ms(call["advance_ms"])
        assert outcome(lambda: calls[call["call"]](*call["args"])) == expected, call


def test_key_vectors():
    v = load("keys.json")
    for case in v["parse"]:
        def p(key=case["key"]):
            k = IsolationKey.parse(key)
            return {"user_id": k.user_id, "thread_id": k.thread_id, "form": k.form,
                    "run_token": k.run_token, "canonical": k.canonical(), "display": str(k)}
        assert outcome(p) == case["expected"], case["key"]
    for case in v["build"]:
        got = outcome(lambda: {"key": str(IsolationKey(case["user_id"], case["thread_id"]))})
        assert got == case["expected"], case


def test_error_vectors():
    g = IdGenerator(seed=1, clock_ms=1_764_000_000_000)

    def user_context(a: Dict[str, Any]) -> Any:
        return UserContext(a["user_id"], a["thread_id"], a["run_id"], "req_vectors_1_abcdef12",
                           test_mode=a.get("test_mode", False))

    def from_json(text: str, limits: Dict[str, Any] = {}) -> Any:
        return Tracker.from_json(text, max_bytes=limits.get("max_bytes"), max_depth=limits.get("max_depth"))

    calls: Dict[str, Callable[..., Any]] = {
        "parse_id": parse_id,
        "parse_context_id": parse_context_id,
        "isolation_key_parse": IsolationKey.parse,
        "isolation_key_new": IsolationKey,
        "user_context": user_context,
        "user_context_ids": g.user_context_ids,
        "base_id": g.base_id,
        "tracker_bounded": lambda c: Tracker(c),
        "take_snapshot": lambda op: Tracker(started_ms=0).take_snapshot(op, now_ms=1),
        "tracker_from_json": from_json,
    }
    for case in load("errors.json")["cases"]:
        got = outcome(lambda: calls[case["call"]](*case["args"]))
        if "error" not in case["expected"]:
            assert not (isinstance(got, dict) and "error" in got), (case["call"], got)
        else:
            assert got == case["expected"], (case["call"], str(case["args"])[:80])


def run_steps(v: Dict[str, Any]) -> "tuple[Tracker, List[Any]]":
    t = Tracker(v["capacity"], started_ms=v["started_ms"])
    outcomes: List[Any] = []
    for s in v["steps"]:
        before = t.total_violations
        if s["op"] == "record_violation":
            outcomes.append(t.record_violation(s["type"], s["severity"], s.get("operation"), s.get("details"),
                                               now_ms=s["at_ms"]))
            continue
        if s["op"] == "take_snapshot":
            fields = ("user_id", "user_context_thread_id", "websocket_client_id", "manager_thread_id",
                      "manager_instance_id", "isolation_key", "cleanup_lookup_thread_id", "metadata")
            snap = t.take_snapshot(s["operation"], now_ms=s["at_ms"], **{f: s[f] for f in fields if f in s})
        else:
            assert s["op"] == "simulate_cleanup_lookup"
            snap = t.simulate_cleanup_lookup(s["target_thread_id"], s.get("user_id"), s.get("metadata"),
                                             now_ms=s["at_ms"])
        outcomes.append({"index": snap.index, "mismatch": snap.mismatch,
                         "violations": list(range(before, t.total_violations))})
    return t, outcomes


@pytest.mark.parametrize("path", TRACKER_FILES, ids=lambda p: p.name)
def test_tracker_vectors(path: Path):
    v = json.loads(path.read_text(encoding="utf-8"))
    t, outcomes = run_steps(v)
    e = v["expected"]
    at = v["report_at_ms"]
    assert outcomes == e["outcomes"]
    assert t.analyze(now_ms=at) == e["analysis"]
    assert t.report_text(now_ms=at) == e["report_text"]
    assert t.to_json(now_ms=at) == e["json"]
    back = Tracker.from_json(e["json"])
    assert back.report_text() == e["report_text"]
    assert back.to_json() == e["json"]
