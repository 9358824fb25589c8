#!/usr/bin/env bash
# Runs fuzz targets for a fixed time each; called by `make fuzz` and `make test-fuzz`
# (mk/zz-fuzz.mk).
#
#   fuzz/run.sh SECONDS TARGET...
#
# Each target starts from fuzz/corpus/<target> (kept between runs, not in git) plus the
# regression inputs and seeds in tests/fuzz-inputs/<target> (read only). A crash is
# copied into tests/fuzz-inputs/<target>/ (registry_ops crashes in the canonical encoding
# that tests/fuzz_regressions.rs replays) and the run fails after the remaining targets.
# A summary (inputs tried and crashes per target) is printed and written to
# fuzz/target/fuzz-summary.txt.
set -uo pipefail

cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS TARGET...}
shift
toolchain=${FUZZ_TOOLCHAIN:-+nightly}
rss_mb=${FUZZ_RSS_MB:-2048}
inputs=../tests/fuzz-inputs
logs=target/fuzz-logs
mkdir -p "$logs"

echo "fuzz: building ${#} targets (cargo $toolchain fuzz build)"
if ! cargo "$toolchain" fuzz build; then
    echo "fuzz: build failed" >&2
    exit 2
fi

summary=target/fuzz-summary.txt
: >"$summary"
failed=0
targets_passed=0
targets_failed=0
total_runs=0
total_crashes=0
for t in "$@"; do
    mkdir -p "corpus/$t" "artifacts/$t" "$inputs/$t"
    marker=$(mktemp)
    log="$logs/$t.log"
    cargo "$toolchain" fuzz run "$t" "corpus/$t" "$inputs/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss_mb" -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    runs=${runs:-0}
    crashes=0
    while IFS= read -r -d '' found; do
        name=$(basename "$found")
        if [ "$t" = registry_ops ]; then
            # Stored as the canonical encoding of fuzz/checks.rs, which the replay reads.
            hex=$(cargo "$toolchain" fuzz fmt "$t" "$found" 2>&1 | sed -n 's/^canonical:\([0-9a-f]*\)$/\1/p' | head -1)
            if [ -n "$hex" ]; then
                printf '%s' "$hex" | xxd -r -p >"$inputs/$t/$name"
            else
                echo "fuzz: $t: could not convert $found to the canonical encoding; kept as is" >&2
                cp "$found" "$inputs/$t/$name.raw"
            fi
        else
            cp "$found" "$inputs/$t/$name"
        fi
        echo "fuzz: $t: CRASH kept as tests/fuzz-inputs/$t/$name (log: fuzz/$log)" >&2
        crashes=$((crashes + 1))
    done < <(find "artifacts/$t" -type f -newer "$marker" -print0)
    rm -f "$marker"
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        echo "fuzz: $t: libFuzzer exited with $rc and left no artifact; see fuzz/$log" >&2
        tail -20 "$log" >&2
        failed=1
    fi
    [ "$crashes" -gt 0 ] && failed=1
    total_runs=$((total_runs + runs))
    total_crashes=$((total_crashes + crashes))
    if [ "$crashes" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; }; then
        targets_failed=$((targets_failed + 1))
    else
        targets_passed=$((targets_passed + 1))
    fi
    if [ "$crashes" -gt 0 ]; then
        line="$t: stopped at a crash after $runs inputs, crashes: $crashes"
    else
        line="$t: $runs inputs tried in ${secs}s, crashes: 0"
    fi
    echo "fuzz: $line"
    echo "$line" >>"$summary"
done
echo "total: $total_runs inputs tried, crashes: $total_crashes" >>"$summary"
echo "fuzz: total $total_runs inputs tried, crashes: $total_crashes"
# One line per target verdict, in the plain form test summaries use.
echo "fuzz: $targets_passed passed, $targets_failed failed"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED; crashes were copied to tests/fuzz-inputs/ and replay under cargo test" >&2
    exit 1
fi
