# walrust — build and test.
#
#   make          build/walrust.so (the SQLite extension), build/walrust, build/walrust-shell
#   make test     every test (installs the test tools it needs under build/)
#   make wheel    build/dist/walrust_vfs-VERSION-py3-none-PLATFORM.whl, the Python package
#   make demo     the README's demo on a local file store
#   make bench    the benchmark table
#   make fuzz     every fuzz target for FUZZTIME each (default 2m)
#   make npm      build/dist/walrust-vfs-<VERSION>.tgz, the npm package

GO      ?= go
BUILD   := build
BIN     := $(abspath $(BUILD))/bin
# Go sources, and the C of cshim/ and vfs/ (its layer between SQLite and Go).
GOFILES := $(shell find . \( -name '*.go' -o -name '*.c' -o -name '*.h' \) -not -path './build/*') go.mod go.sum VERSION

export CGO_ENABLED := 1
# Debian's python3 builds the wheel (python/build_wheel.py needs nothing else).
PYTHON  ?= /usr/bin/python3
# The version every program reports: VERSION, and the commit when built in a
# git checkout (walrust.Version).
COMMIT  := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD -- 2>/dev/null && echo "$$c" || echo "$$c, modified"; })
LDFLAGS := -X 'github.com/walrust/walrust.commit=$(COMMIT)'

# Expanded only by the recipes that use it: downloads the module if needed.
CSHIM_CFLAGS = -O2 -g -I$(shell $(GO) mod download github.com/psanford/sqlite3vfs && $(GO) list -m -f '{{.Dir}}' github.com/psanford/sqlite3vfs)
# Tests find the tools and the extension here.
export WALRUST_BUILD := $(abspath $(BUILD))

.PHONY: all wheel test tools hygiene npm demo bench fuzz fuzz-run clean FORCE

all: $(BUILD)/walrust.so $(BUILD)/walrust $(BUILD)/walrust-shell

# The loadable extension. SQLITE3VFS_LOADABLE_EXT makes psanford/sqlite3vfs call
# SQLite through the extension API table instead of linking its own SQLite.
# cshim's C code includes sqlite3ext.h from psanford/sqlite3vfs, the same header
# its VFS is compiled against.
# The commit the programs report (walrust.Version): rewritten only when it
# changes, so that a new commit relinks them even with no source changed.
$(BUILD)/commit: FORCE
	@mkdir -p $(BUILD); echo '$(COMMIT)' | cmp -s - $@ || echo '$(COMMIT)' > $@
FORCE:

$(BUILD)/walrust.so: $(GOFILES) $(BUILD)/commit
	@mkdir -p $(BUILD)
	CGO_CFLAGS="$(CSHIM_CFLAGS)" $(GO) build -tags SQLITE3VFS_LOADABLE_EXT -buildmode=c-shared -ldflags "$(LDFLAGS)" -o $@ ./cshim
	@rm -f $(BUILD)/walrust.h

$(BUILD)/walrust: $(GOFILES) $(BUILD)/commit
	@mkdir -p $(BUILD)
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/walrust

$(BUILD)/walrust-shell: $(GOFILES) $(BUILD)/commit
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/walrust-shell

# The Python package walrust-vfs (import walrust_vfs): python/walrust_vfs and
# the extension in a wheel, written by python/build_wheel.py without any
# build tool from PyPI; it replaces older wheels in build/dist.
wheel: $(BUILD)/walrust.so
	$(PYTHON) python/build_wheel.py $(BUILD)/walrust.so "$$(cat VERSION)" $(BUILD)/dist

# The npm package walrust-vfs (npm/): the extension, index.js and a README,
# at the version in VERSION, packed by npm into build/dist/. TestNPMPackage
# installs it with better-sqlite3 from the npm registry, caching what it
# downloads in build/npm-cache.
NPM_VERSION := $(shell cat VERSION)
NPM_CPU      = $(shell $(GO) env GOARCH | sed -e 's/^amd64$$/x64/')
NPM_STAGE   := $(BUILD)/npm/walrust-vfs
NPM_TGZ     := $(BUILD)/dist/walrust-vfs-$(NPM_VERSION).tgz

npm: $(NPM_TGZ)

$(NPM_TGZ): $(BUILD)/walrust.so $(wildcard npm/*) VERSION
	rm -rf $(NPM_STAGE) && mkdir -p $(NPM_STAGE) $(BUILD)/dist
	cp npm/index.js npm/README.md $(BUILD)/walrust.so $(NPM_STAGE)/
	sed -e 's/@VERSION@/$(NPM_VERSION)/' -e 's/@CPU@/$(NPM_CPU)/' npm/package.json > $(NPM_STAGE)/package.json
	cd $(NPM_STAGE) && npm_config_cache=$(abspath $(BUILD))/npm-cache npm pack --silent --pack-destination $(abspath $(BUILD))/dist >/dev/null
	@test -f $@

tools: $(BIN)/versitygw $(BIN)/litestream

# versitygw: a real S3 server on loopback for the S3 store's tests.
$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0

# litestream: the real LTX producer the end-to-end tests (vfs/e2e) follow.
$(BIN)/litestream:
	GOBIN=$(BIN) $(GO) install github.com/benbjohnson/litestream/cmd/litestream@v0.5.18

# The Litestream v0.5.18 VFS, the peer column of `make bench`, built from the
# module (downloaded through the Go module proxy into GOMODCACHE) the way its
# own Makefile's vfs-linux-amd64 does: cmd/litestream-vfs as a c-archive with
# -tags vfs,SQLITE3VFS_LOADABLE_EXT, linked with its src/litestream-vfs.c into
# a loadable extension whose entry point is sqlite3_litestreamvfs_init. The
# build runs in the module's own directory, so that its go.mod and go.sum
# pick the dependencies. It takes minutes, so `make test` does not build it:
# the smoke run of vfs/bench has no peer column (it runs without -peer).
LITESTREAM_VFS := $(BUILD)/litestream-vfs.so
LITESTREAM_MOD := github.com/benbjohnson/litestream@v0.5.18

$(LITESTREAM_VFS):
	@mkdir -p $(BUILD)/litestream-vfs
	dir=$$($(GO) mod download -json $(LITESTREAM_MOD) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && test -n "$$dir" && \
	out=$(abspath $(BUILD))/litestream-vfs && \
	cd "$$dir" && $(GO) build -tags vfs,SQLITE3VFS_LOADABLE_EXT -buildmode=c-archive -o "$$out/litestream-vfs.a" ./cmd/litestream-vfs && \
	$(CC) -DSQLITE3VFS_LOADABLE_EXT -I"$$out" -g -fPIC -shared -o "$$out.so.tmp" src/litestream-vfs.c "$$out/litestream-vfs.a" -lpthread -ldl -lm && \
	mv "$$out.so.tmp" "$$out.so" && rm -f "$$out/litestream-vfs.a"

test: all wheel tools npm hygiene
	$(GO) vet ./...
	CGO_CFLAGS="$(CSHIM_CFLAGS)" $(GO) vet -tags SQLITE3VFS_LOADABLE_EXT ./cshim
	$(GO) test -race -timeout 12m ./...
	@$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(TEST_FUZZTIME)

# Formatting and modules as the Go tools would leave them (the C is held to
# -Wall -Wextra -Werror by its #cgo directives).
hygiene:
	@unformatted=$$(gofmt -l $(filter %.go,$(GOFILES))); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) mod tidy -diff

# The fuzz targets: what a store, a listing or a URI can hand walrust.
# `make test` runs each briefly (TEST_FUZZTIME); `make fuzz` for longer. A
# crash is written under the package's testdata/fuzz/, where it stays as a
# regression test: commit it with the fix.
FUZZ_TARGETS  := ./vfs/internal/ltxguard:FuzzDecode ./vfs/replica:FuzzApply ./vfs/replica:FuzzStageSnapshot ./vfs/replica:FuzzBlockReader \
                 ./vfs/store:FuzzParseName ./vfs/store:FuzzCanonical ./vfs:FuzzParseConfig
# A count, not a time: time-bounded runs of the replica's targets stalled
# their worker for ~20 s at the start, and failed ("context deadline
# exceeded") whenever the deadline fell inside the stall; a count ends once
# its inputs have run (all six targets: about 30 s here).
TEST_FUZZTIME ?= 2000x
FUZZTIME      ?= 2m

fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(FUZZTIME)

fuzz-run:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t##*:} ($${t%%:*}, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

# A live database published to a local file store and followed by a replica;
# ends by itself in about 10 s (cmd/walrust/demo.sh; needs the sqlite3 shell).
demo: all
	sh cmd/walrust/demo.sh

# The benchmark table (vfs/bench, about 3 minutes): walrust against SQLite's
# default VFS and against plain downloads, raw page writes and an ideal
# poller, each pair interleaved in one run. Progress goes to stderr, the
# Markdown table to stdout (and to build/bench.md). `make test` runs the same
# scenarios at a tiny size, checking only that they produce sane numbers.
bench: all tools $(LITESTREAM_VFS)
	@$(GO) test -c -o $(BUILD)/walrust-bench.test ./vfs/bench
	@$(BUILD)/walrust-bench.test -test.run '^TestBench$$' -test.timeout 30m -full -peer $(LITESTREAM_VFS) -out $(BUILD)/bench.md >&2
	@cat $(BUILD)/bench.md

clean:
	rm -rf $(BUILD)
