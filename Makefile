# threadline: `make demo` and `make test` are the two commands a newcomer needs.
# Each part of the project adds its own targets in mk/*.mk and appends them to the
# lists below; the order of the lists is the order things run in.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
TEST_TARGETS := test-rust
DEMO_TARGETS := demo-rust
BENCH_TARGETS := bench-rust

include $(sort $(wildcard mk/*.mk))

.PHONY: help test demo bench test-rust demo-rust bench-rust rust-tools
help:
	@echo "make demo   - install what is needed and run the seed scenarios"
	@echo "make test   - install what is needed and run every test"
	@echo "make bench  - run the benchmarks (see BENCHMARKS.md)"

test: $(TEST_TARGETS)
demo: $(DEMO_TARGETS)
bench: $(BENCH_TARGETS)

rust-tools:
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

test-rust: rust-tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p threadline --no-default-features -- -D warnings
	$(CARGO) test -p threadline

demo-rust:
	$(CARGO) run --quiet --example seed_scenarios

bench-rust:
	$(CARGO) bench -p threadline --bench core
