"""`python -m threadline demo` runs the seed's scenarios; `python -m threadline report
FILE.json` prints a saved report."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import _native


def _demo(out_dir: str) -> int:
    from .scenarios import run_all

    os.makedirs(out_dir, exist_ok=True)
    results = run_all()
    for r in results:
        print(f"\n##### {r.name}: {r.title}")
        print(r.tracker.get_detailed_report())
        path = os.path.join(out_dir, f"{r.name}.json")
        r.tracker.save_json(path)
    print("\n##### verdicts")
    failed = 0
    for r in results:
        if r.passed:
            print(f"{r.name}: {r.verdict} ({r.summary})")
        else:
            failed += 1
            print(f"{r.name}: UNEXPECTED (expected {r.verdict}) {r.details}")
    print(f"\nJSON reports written to {out_dir}/")
    return 1 if failed else 0


def _report(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"threadline: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"threadline: {path} is not UTF-8 text: {e.reason}", file=sys.stderr)
        return 2
    try:
        tracker = _native.Tracker.from_json(text)
    except _native.ReportError as e:
        print(f"threadline: {path}: {e}", file=sys.stderr)
        return 2
    print(tracker.report_text())
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m threadline")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the seed's scenarios through the Netra drop-in")
    d.add_argument("--out", default="threadline-reports", help="directory for the JSON reports")
    r = sub.add_parser("report", help="print a saved JSON report in the seed's layout")
    r.add_argument("file")
    args = p.parse_args(argv)
    if args.command == "demo":
        return _demo(args.out)
    return _report(args.file)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
