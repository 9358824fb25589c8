# The WebAssembly npm package (pkg/): `make wasm` builds it, `make test-js` tests it.
# Generated files go to pkg/node/ and pkg/web/ (ignored by git); pkg/package.json,
# README.md, index.mjs, index.cjs, browser.mjs, error.mjs and index.d.ts are written by
# hand. The tests (tests/js/*.test.mjs) import pkg/ by path and after `npm install`.

WASM_BINDGEN_VERSION := 0.2.106
WASM_TARGET := wasm32-unknown-unknown
# Where cargo builds the wasm crate (override to keep a separate build cache).
WASM_TARGET_DIR ?= target
WASM_RAW := $(WASM_TARGET_DIR)/$(WASM_TARGET)/release/threadline_wasm.wasm
# Size: optimise for size; the core's release profile (LTO, one codegen unit) applies.
WASM_CARGO_ENV := CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_TARGET_DIR=$(WASM_TARGET_DIR)
WASM_BINDGEN_FLAGS := --typescript --weak-refs --out-name threadline \
	--remove-name-section --remove-producers-section
# cargo install puts wasm-bindgen here; it may not be on PATH on a fresh machine.
WASM_PATH := PATH="$${CARGO_HOME:-$$HOME/.cargo}/bin:$$PATH"
NODE ?= node

TEST_TARGETS += test-js

.PHONY: wasm wasm-tools test-js

wasm-tools:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	@v=$$($(WASM_PATH) wasm-bindgen --version 2>/dev/null | awk '{print $$2}'); \
	if [ "$$v" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (found: $${v:-none})"; \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi

wasm: wasm-tools
	$(WASM_CARGO_ENV) $(CARGO) build -p threadline-wasm --target $(WASM_TARGET) --release
	rm -rf pkg/node pkg/web
	$(WASM_PATH) wasm-bindgen --target nodejs $(WASM_BINDGEN_FLAGS) --out-dir pkg/node $(WASM_RAW)
	$(WASM_PATH) wasm-bindgen --target web $(WASM_BINDGEN_FLAGS) --out-dir pkg/web $(WASM_RAW)
	echo '{ "type": "commonjs" }' > pkg/node/package.json
	@# An argument that must be an instance of a class (a UserContext for Registry.create,
	@# ...) is checked by the glue; make its error a ThreadlineError like every other.
	for f in pkg/node/threadline.js pkg/web/threadline.js; do \
		sed -i 's/throw new Error(`expected instance of $${klass.name}`);/throw Object.assign(new Error(`expected an instance of $${klass.name}`), { name: "ThreadlineError", kind: "argument" });/' $$f; \
		grep -q 'kind: "argument"' $$f || { echo "$$f: could not patch the class check"; exit 1; }; \
	done
	@echo "pkg/web/threadline_bg.wasm: $$(wc -c < pkg/web/threadline_bg.wasm) bytes, $$(gzip -9c pkg/web/threadline_bg.wasm | wc -c) gzipped"

test-js: wasm
	$(NODE) --test tests/js/*.test.mjs
