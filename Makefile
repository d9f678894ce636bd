# examroom: `make test` runs every test; `make run` starts what works today (see README).
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/examroom

.PHONY: soak deps web build shim images test test-web test-conformance test-package package run shell bench lint clean

deps:
	@./scripts/install-deps.sh

# The browser UI (web/), built into web/dist: debug builds of the server read it from disk, release builds embed it.
# `npm ci` runs again only when package.json or package-lock.json changed.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci

web: deps web/node_modules/.package-lock.json
	cd web && npm run build

build: deps web shim
	$(CARGO) build --workspace --all-features

# The container shim (crates/shim), linked statically so that it runs in any image: target/shim/examroom-shim, which
# the Docker backend bind-mounts read-only into every candidate container as its entrypoint (/.examroom/shim).
shim:
	$(CARGO) rustc -p examroom-shim --bin examroom-shim -- -C target-feature=+crt-static
	mkdir -p target/shim
	cp target/debug/examroom-shim target/shim/examroom-shim

# The sample images (scripts/build-images.sh): target/images/tools.tar, an OCI archive of a Debian bookworm with jq,
# python3 and kubectl (debootstrap from deb.debian.org, packed by `examroom image pack`). Built once and kept: built
# again only when the script changes. `examroom image import target/images/tools.tar` puts it in a server's store.
# And target/images/docker-debian.tar, the rootfs of the Docker sample exams' image (scripts/build-docker-images.sh,
# with PostgreSQL); `scripts/docker-images.sh` imports it into a Docker Engine as examroom/debian:1.
images: deps
	$(CARGO) build -p examroom
	./scripts/build-images.sh $(BIN)
	./scripts/build-docker-images.sh

# Every test: the unit tests of every crate, each crate's tests/ (SQLite, exam files), the integration tests of the
# binary (real namespaces, cgroups and servers; needs root; promtool checks /metrics), two at a time for two cores;
# then the API conformance run (openapi-spec-validator, schemathesis and promtool against a real server); then the
# browser tests (Playwright driving Debian's Chromium against a real server); and the .deb's gates
# (scripts/package-check.sh: lintian, systemd-analyze verify, files and modes, an install, upgrade and purge in a
# throwaway root), on a package of the debug binary (see `package`). The last line sums them all.
test: deps web images shim
	./scripts/install-deps.sh --conformance
	mkdir -p target; set -o pipefail; $(CARGO) test --workspace --all-features --lib --bins --tests -- --test-threads=2 2>&1 \
	  | tee target/test.log
	./scripts/install-deps.sh --package
	set -o pipefail; { ./scripts/package.sh --test && ./scripts/package-check.sh target/debian/test/examroom_*.deb; } 2>&1 \
	  | tee target/test-package.log
	set -o pipefail; ./scripts/api-conformance.sh 2>&1 | tee target/test-conformance.log
	./scripts/install-deps.sh --browser
	set -o pipefail; node web/tests/run.mjs 2>&1 | tee target/test-web.log
	@awk '/^test result:/ { p += $$4; f += $$6 } /^(web|conformance|package): [0-9]+ passed/ { p += $$2; f += $$4 } \
	  END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log target/test-package.log \
	  target/test-conformance.log target/test-web.log

# The .deb (cargo-deb): target/debian/examroom_<version>_<arch>.deb, the optimised release binary with the web UI
# embedded, the unit, /etc/examroom/config.toml, the sample exams, manual pages and completions
# (scripts/package.sh). `make test` packages the debug binary instead (the slow optimised build is not repeated).
package: deps web
	@./scripts/install-deps.sh --package
	./scripts/package.sh

# The .deb's gates alone, on a package of the debug binary.
test-package: deps images shim
	@./scripts/install-deps.sh --package
	./scripts/package.sh --test
	./scripts/package-check.sh target/debian/test/examroom_*.deb

# The API conformance run alone: the served OpenAPI document validated, schemathesis as a candidate and as a proctor,
# and promtool on /metrics, against a real server on a free port (scripts/api-conformance.sh; output in
# target/conformance/).
test-conformance: build
	@./scripts/install-deps.sh --conformance
	./scripts/api-conformance.sh

# The browser tests: Playwright (playwright-core) driving Debian's Chromium against a real server on a free port.
# Screenshots and the server's log go to web/test-output/.
test-web: build
	@./scripts/install-deps.sh --browser
	node web/tests/run.mjs

# The churn test, long and wide (docs/RELIABILITY.md): 30 minutes with up to 200 sessions alive at a time.
soak: deps
	EXAMROOM_CHURN_SECS=1800 EXAMROOM_CHURN_ALIVE=200 $(CARGO) test -p examroom --test it -- --exact \
	  resilience::churn_leaves_nothing_behind --nocapture

# Serves the sample exams on http://127.0.0.1:8080 and prints sign-in URLs and curl examples.
run: build
	BIN=$(BIN) ./scripts/run-demo.sh

# An interactive shell in a fresh sandbox environment; it is destroyed when you leave (Enter ~ .).
shell: build
	$(BIN) sandbox shell

# Figures for docs/PERFORMANCE.md (release build).
bench: deps
	$(CARGO) build --release
	./target/release/examroom bench sandbox --count 200 --concurrency 1 --idle 100
	./target/release/examroom bench sandbox --count 50 --concurrency 50 --idle 0
	./target/release/examroom bench sessions --users 50
	./target/release/examroom bench terminal

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings

clean:
	$(CARGO) clean
