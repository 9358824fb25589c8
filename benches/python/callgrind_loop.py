#!/usr/bin/env python3
"""One operation of bench_vs_reference.py in a loop, for instruction counts that do not
depend on the machine's load (`valgrind --tool=callgrind`).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p python benches/python/callgrind_loop.py \
        --reference ../shared/baseline/netra_reference.py OP IMPL N

Run it twice with two values of N (e.g. 2000 and 6000) and divide the difference of the
totals by the difference of N: set-up and import cost cancel out. `--per-call` does that
itself (it runs valgrind twice) and prints instructions per call.

OP: ids (generate_user_context_ids), snapshot (take_snapshot with context, manager, key
and the bench's metadata), pair (create_manager + cleanup_manager). IMPL: reference,
drop-in, native. The inputs are those of bench_vs_reference.py.
"""

import argparse
import asyncio
import importlib.util
import os
import re
import subprocess
import sys


def load_reference(path):
    spec = importlib.util.spec_from_file_location("netra_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(ref, op, impl, n):
    from threadline import _native, netra

    rgen = ref.IdGenerator()
    rows = []
    for i in range(1000):
        t, r, q = rgen.generate_user_context_ids(f"user-{i}", "websocket_factory")
        rows.append((f"user-{i}", t, r, q, f"ws-{i}"))
    keys = [f"{u}:{t}" for (u, t, _, _, _) in rows]
    if impl == "reference":
        ctxs = [ref.Context(*row) for row in rows]
        mgrs = [ref.Manager(c) for c in ctxs]
    else:
        ctxs = [netra.UserExecutionContext(*row) for row in rows]
        factory = netra.WebSocketManagerFactory(max_managers_per_user=20)
        mgrs = [asyncio.run(factory.create_manager(c)) for c in ctxs]
    native_ctxs = [c._ctx for c in ctxs] if impl == "native" else None

    if op == "ids":
        g = {"reference": rgen.generate_user_context_ids,
             "drop-in": netra.UnifiedIdGenerator.generate_user_context_ids,
             "native": _native.IdGenerator.default().user_context_ids}[impl]
        for _ in range(n):
            g("user-12345678", "websocket_factory")
    elif op == "snapshot":
        if impl == "reference":
            t = ref.Tracker()
            for i in range(n):
                j = i % 1000
                t.take_snapshot("manager_creation", user_context=ctxs[j], manager=mgrs[j],
                                isolation_key=keys[j], metadata={"i": i})
        elif impl == "drop-in":
            t = netra.ThreadIDConsistencyTracker()
            for i in range(n):
                j = i % 1000
                t.take_snapshot("manager_creation", user_context=ctxs[j], manager=mgrs[j],
                                isolation_key=keys[j], metadata={"i": i})
        else:
            t = _native.Tracker()
            for i in range(n):
                j = i % 1000
                c = native_ctxs[j]
                t.take_snapshot("manager_creation", context=c, manager_thread_id=c.thread_id,
                                manager_instance_id=j, isolation_key=keys[j], metadata={"metadata": {"i": i}})
    elif op == "pair":
        if impl == "reference":
            async def pairs():
                f = ref.Factory()
                for i in range(n):
                    await f.create_manager(ctxs[i % 1000])
                    await f.cleanup_manager(keys[i % 1000])
            asyncio.run(pairs())
        elif impl == "drop-in":
            async def pairs():
                f = netra.WebSocketManagerFactory()
                for i in range(n):
                    await f.create_manager(ctxs[i % 1000])
                    await f.cleanup_manager(keys[i % 1000])
            asyncio.run(pairs())
        else:
            reg = _native.Registry()
            for i in range(n):
                reg.create(native_ctxs[i % 1000])
                reg.cleanup(keys[i % 1000])
    else:
        raise SystemExit(f"unknown op {op}")


def instructions(args, n):
    out = f"/tmp/callgrind_loop.{os.getpid()}.{n}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
           "--reference", args.reference, args.op, args.impl, str(n)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", p.stderr)
    if not m:
        raise SystemExit(p.stderr[-2000:])
    return int(m.group(1)), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True)
    ap.add_argument("--per-call", action="store_true", help="run valgrind at N and 3N; print instructions per call")
    ap.add_argument("op", choices=["ids", "snapshot", "pair"])
    ap.add_argument("impl", choices=["reference", "drop-in", "native"])
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    if args.per_call:
        (a, fa), (b, fb) = instructions(args, args.n), instructions(args, 3 * args.n)
        print(f"{args.op} {args.impl}: {(b - a) / (2 * args.n):,.0f} instructions per call "
              f"(callgrind files {fa} {fb})")
        return
    run(load_reference(args.reference), args.op, args.impl, args.n)


if __name__ == "__main__":
    main()
