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
# wasm-opt from binaryen's npm package, installed under the target directory (ignored by
# git). -Oz without inlining, to a fixed point: inlining grows the gzipped size (LLVM's
# -Oz output already inlines what pays); measured against -Os in pkg/README.md ("Size").
BINARYEN_NPM_VERSION := 132.0.0
BINARYEN_VERSION := 132
WASM_TOOLS_DIR := $(WASM_TARGET_DIR)/wasm-tools
WASM_OPT := $(WASM_TOOLS_DIR)/node_modules/.bin/wasm-opt
WASM_OPT_FLAGS := -Oz -fimfs=0 --one-caller-inline-max-function-size=0 --converge \
	--strip-debug --strip-producers \
	--enable-bulk-memory --enable-reference-types --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-multivalue
NPM ?= npm
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
	@v=$$($(WASM_OPT) --version 2>/dev/null | awk '{print $$3}' | tr -dc 0-9); \
	if [ "$$v" != "$(BINARYEN_VERSION)" ]; then \
		echo "installing binaryen $(BINARYEN_NPM_VERSION) from npm into $(WASM_TOOLS_DIR) (found: $${v:-none})"; \
		mkdir -p $(WASM_TOOLS_DIR) && echo '{ "private": true }' > $(WASM_TOOLS_DIR)/package.json && \
		$(NPM) install --prefix $(WASM_TOOLS_DIR) --no-audit --no-fund --no-save binaryen@$(BINARYEN_NPM_VERSION); \
	fi

wasm: wasm-tools
	$(WASM_CARGO_ENV) $(CARGO) build -p threadline-wasm --target $(WASM_TARGET) --release
	rm -rf pkg/node pkg/web
	$(WASM_PATH) wasm-bindgen --target nodejs $(WASM_BINDGEN_FLAGS) --out-dir pkg/node $(WASM_RAW)
	$(WASM_PATH) wasm-bindgen --target web $(WASM_BINDGEN_FLAGS) --out-dir pkg/web $(WASM_RAW)
	echo '{ "type": "commonjs" }' > pkg/node/package.json
	@# The JS the Rust side imports (bindings/wasm/js/*.js, ES modules) is copied under
	@# snippets/; the Node build require()s it, so there it becomes CommonJS.
	for f in $$(find pkg/node/snippets -name '*.js'); do \
		sed -i 's/^export function \([A-Za-z_][A-Za-z0-9_]*\)/exports.\1 = \1;\nfunction \1/' $$f; \
		! grep -qE '^(export|import) ' $$f || { echo "$$f: could not make it CommonJS"; exit 1; }; \
	done
	for d in node web; do \
		$(WASM_OPT) $(WASM_OPT_FLAGS) pkg/$$d/threadline_bg.wasm -o pkg/$$d/threadline_bg.opt.wasm && \
		mv pkg/$$d/threadline_bg.opt.wasm pkg/$$d/threadline_bg.wasm || exit 1; \
	done
	@# An argument that must be an instance of a class (a UserContext for Registry.create,
	@# ...) is checked by the glue; make its error a ThreadlineError like every other, one
	@# that says what was passed (bindings/wasm/glue/describe.js, appended).
	for f in pkg/node/threadline.js pkg/web/threadline.js; do \
		sed -i 's/throw new Error(`expected instance of $${klass.name}`);/throw Object.assign(new Error(`expected an instance of $${klass.name}: got $${describeArgument(instance)}`), { name: "ThreadlineError", kind: "argument" });/' $$f; \
		grep -q 'kind: "argument"' $$f || { echo "$$f: could not patch the class check"; exit 1; }; \
		cat bindings/wasm/glue/describe.js >> $$f; \
	done
	@# Errors wasm-bindgen raises itself (an object used after free(), ...) are
	@# ThreadlineErrors too: kind "freed" for a freed object, "internal" for the rest.
	for f in pkg/node/threadline.js pkg/web/threadline.js; do \
		sed -i 's/throw new Error(getStringFromWasm0(arg0, arg1));/const m = getStringFromWasm0(arg0, arg1); const freed = m === "null pointer passed to rust"; throw Object.assign(new Error(freed ? "this threadline object was already freed (free() was called on it): expected a live object" : m), { name: "ThreadlineError", kind: freed ? "freed" : "internal" });/' $$f; \
		grep -q 'kind: freed ?' $$f || { echo "$$f: could not patch wasm-bindgen's throw"; exit 1; }; \
	done
	@echo "pkg/web/threadline_bg.wasm: $$(wc -c < pkg/web/threadline_bg.wasm) bytes, $$(gzip -9c pkg/web/threadline_bg.wasm | wc -c) gzipped"

test-js: wasm
	$(NODE) --test tests/js/*.test.mjs
