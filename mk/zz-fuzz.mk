# Fuzzing (issue 7). Named zz-* so it is included last and test-fuzz runs last in
# `make test`. Targets live in fuzz/ (a cargo-fuzz crate outside the workspace, built
# with the nightly toolchain into fuzz/target); see RELIABILITY.md.
#
#   make fuzz                      every target for FUZZ_SECONDS (default 60) each
#   make fuzz FUZZ_SECONDS=600     longer
#   make fuzz FUZZ_TARGETS=keys    one target
#   make test-fuzz                 every target for TEST_FUZZ_SECONDS (default 30) each
#
# A crash is copied into tests/fuzz-inputs/<target>/ (replayed by `cargo test` through
# tests/fuzz_regressions.rs) and the target fails.

FUZZ_TARGETS ?= parse_ids correlation keys context report_json tracker_ops registry_ops id_generator
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 30
FUZZ_TOOLCHAIN ?= +nightly

TEST_TARGETS += test-fuzz

.PHONY: fuzz test-fuzz fuzz-tools

fuzz-tools:
	@$(CARGO) $(FUZZ_TOOLCHAIN) --version >/dev/null 2>&1 || \
		rustup toolchain install $(patsubst +%,%,$(FUZZ_TOOLCHAIN)) --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz: fuzz-tools
	FUZZ_TOOLCHAIN=$(FUZZ_TOOLCHAIN) bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

test-fuzz: fuzz-tools
	FUZZ_TOOLCHAIN=$(FUZZ_TOOLCHAIN) bash fuzz/run.sh $(TEST_FUZZ_SECONDS) $(FUZZ_TARGETS)
