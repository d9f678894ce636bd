# examroom: `make test` runs every test; `make run` starts what works today (see README).
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/examroom

.PHONY: deps build test run shell bench lint clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-features

# Every test of every crate: unit tests, each crate's tests/ (SQLite, exam files), and the integration tests of the
# binary (one binary, real namespaces, cgroups and servers; needs root). Two at a time, for two cores. The last line
# sums up every test binary's result.
test: deps
	mkdir -p target; set -o pipefail; $(CARGO) test --workspace --all-features --lib --bins --tests -- --test-threads=2 2>&1 \
	  | tee target/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log

# Serves the sample exams on http://127.0.0.1:8080 and prints sign-in URLs and curl examples.
run: build
	BIN=$(BIN) ./scripts/run-demo.sh

# An interactive shell in a fresh sandbox environment; it is destroyed when you leave (Ctrl-]).
shell: build
	$(BIN) sandbox shell

# Figures for docs/PERFORMANCE.md (release build).
bench: deps
	$(CARGO) build --release
	./target/release/examroom bench sandbox --count 200 --concurrency 1 --idle 100
	./target/release/examroom bench sandbox --count 50 --concurrency 50 --idle 0
	./target/release/examroom bench sessions --users 50

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings

clean:
	$(CARGO) clean
