# issue 5: the in-browser replay page (replay/) and its headless Chromium tests
# (tests/browser/). `make replay` serves the page on 127.0.0.1; `make test-browser` runs
# the tests. Both need the wasm package (mk/wasm.mk, included after this file, so the
# dependency is named explicitly) and the Python demo's reports (mk/python.mk).

CHROMIUM ?= /usr/bin/chromium
REPLAY_PORT ?= 8765
BROWSER_DIR := tests/browser
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.installed

.PHONY: replay test-browser browser-deps chromium replay-reports

# Debian's chromium; playwright's own browser download does not work here.
chromium:
	@test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)

$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	@touch $@

browser-deps: chromium $(BROWSER_STAMP)

# The reports the tests open are the Python demo's own.
replay-reports: demo-python

test-browser: wasm replay-reports browser-deps
	CHROMIUM=$(CHROMIUM) node --test --test-concurrency=1 $(BROWSER_DIR)/replay.test.mjs

replay: wasm
	@test -d threadline-reports || $(MAKE) --no-print-directory demo-python || true
	node replay/serve.mjs --port $(REPLAY_PORT)

TEST_TARGETS += test-browser
