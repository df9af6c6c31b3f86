# Saltpeter. `make run` starts a core on config.hcl; `make test` runs every
# test, installing what the tests need first (see .ci/deps).

GO       ?= go
MODULE   := github.com/saltpeter/saltpeter
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X $(MODULE)/core/cli.Version=$(VERSION) -X $(MODULE)/wrapper.Version=$(VERSION)
# Tests that need a component (sshd, PostgreSQL, Chromium, protoc) fail
# instead of skipping when it is missing.
export SALTPETER_REQUIRE ?= all

.PHONY: all build run test deps vet bench fuzz clean

all: build

# The wrapper is also built for the architectures of the machines it is
# deployed to (the ssh target's deploy_wrapper picks by their uname -m).
WRAPPER_ARCHS := amd64 arm64

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/saltpeter ./core/cmd/saltpeter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/saltpeter-wrapper ./wrapper/cmd/saltpeter-wrapper
	for arch in $(WRAPPER_ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o bin/saltpeter-wrapper-linux-$$arch ./wrapper/cmd/saltpeter-wrapper || exit 1; \
	done

run: build
	./bin/saltpeter serve -config config.hcl

deps:
	bash .ci/deps

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The packages whose micro-benchmarks (hot paths: frames, the hub's
# per-message cost, the store's appends and their encoding) make test runs
# once, so that they keep compiling and running; make bench gives their
# figures.
MICROBENCH := ./sdk/wire/ ./sdk/store/ ./core/hub/ ./plugins/sqlite/

test: deps vet build
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(MICROBENCH)

# Figures, not pass/fail: benchreport runs every benchmark, each bounded
# in time, and writes BENCHMARKS.md (the machine, the method, the figures
# against their targets, the ratios to baselines measured in the same run).
bench: deps build
	$(GO) run ./core/e2e/benchreport -o BENCHMARKS.md

# A short run of every fuzz target, beyond the checked-in seeds that
# `make test` replays.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./core/config/
	$(GO) test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime 30s ./core/hub/
	$(GO) test -run '^$$' -fuzz FuzzDecodeFlat -fuzztime 30s ./sdk/wire/
	$(GO) test -run '^$$' -fuzz FuzzBatchInDecode -fuzztime 30s ./sdk/store/

clean:
	rm -rf bin

include proto.mk
