# Benchmarks (issue 6): `make bench` runs bench-rust (root Makefile) and these.
# BENCHMARKS.md says what each prints and holds the latest table.

NETRA_REFERENCE ?= ../shared/baseline/netra_reference.py
BENCH_ROUNDS ?= 5
BENCH_SNAPSHOTS ?= 200000

BENCH_TARGETS += bench-python bench-js bench-memory

.PHONY: bench-python bench-js bench-memory bench-native-bin

# The Python package against the pure-Python model of today's Netra code, same process.
bench-python: python-install
	@if [ -f "$(NETRA_REFERENCE)" ]; then \
		$(PY) benches/python/bench_vs_reference.py --reference $(NETRA_REFERENCE) --rounds $(BENCH_ROUNDS); \
	else \
		echo "bench-python: $(NETRA_REFERENCE) not found (set NETRA_REFERENCE=path/to/netra_reference.py)"; exit 1; \
	fi

bench-native-bin:
	$(CARGO) build --quiet --release -p threadline --example bench_native

# The wasm package in Node against the native core on the same inputs, same run.
bench-js: wasm bench-native-bin
	$(NODE) benches/js/bench.mjs --snapshots $(BENCH_SNAPSHOTS) --reps $(BENCH_ROUNDS)

# Bytes per live manager (1,000,000 = 100,000 users x 10) and per snapshot (1,000,000).
bench-memory:
	$(CARGO) run --quiet --release -p threadline --example memory
