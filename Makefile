# The two commands a new engineer needs: `make run` and `make test`.
# Both install missing Debian packages first (scripts/bootstrap), then build.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_TYPE ?= RelWithDebInfo
RELEASE := build/release
ASAN := build/asan
DATA_DIR ?= runnel-data
# Seconds each fuzz target runs in `make test`; `scripts/fuzz` alone gives the longer targets 30–60 s.
FUZZ_SECONDS ?= 20

.PHONY: all bootstrap build run test test-release test-asan test-fuzz fuzz-build benchmarks bench format clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DRUNNEL_UNIT_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

## Starts `runnel serve` on ./runnel-data (Ctrl-C stops it cleanly).
run: build
	$(RELEASE)/src/app/runnel serve --data-dir $(DATA_DIR) --demo

## Every test: integration (release build), unit under ASan+UBSan (the release build leaves the
## unit tests out, so they are compiled once; the sanitizer build uses clang, whose -O0
## ASan+UBSan compile costs about half of g++'s: docs/decisions/0006-build-time.md), fuzzers;
## the sanitizer build also compiles the benchmark programs (not run), so they cannot rot. The
## fuzz targets compile with one job while the integration tests run: those wait on servers and
## clients more than they compute (about 0.8 of the 2 cores), so the two fit side by side.
test: build
	@$(MAKE) --no-print-directory --output-sync=target -j2 test-release fuzz-build
	@$(MAKE) --no-print-directory test-asan test-fuzz

test-release: build
	ctest --test-dir $(RELEASE) --output-on-failure -j $(JOBS)

benchmarks: build
	@cmake --build $(RELEASE) -j $(JOBS) --target benchmarks

test-asan: bootstrap
	@cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRUNNEL_SANITIZE=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	@cmake --build $(ASAN) -j $(JOBS) --target unit_tests benchmarks
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN) -L unit --output-on-failure -j $(JOBS)

test-fuzz: bootstrap
	scripts/fuzz $(FUZZ_SECONDS)

fuzz-build: bootstrap
	@FUZZ_BUILD_JOBS=1 scripts/fuzz --build-only

bench: benchmarks
	$(RELEASE)/bench/storage_bench --dir build/bench-data --json build/bench-storage.json
	bench/kafka_bench.py --build $(RELEASE) --dir build/bench-data --json build/bench-kafka.json
	$(RELEASE)/bench/engine_bench --json build/bench-engine.json
	$(RELEASE)/bench/nexmark_bench --json build/bench-nexmark.json
	bench/ws_bench.py --build $(RELEASE) --json build/bench-ws.json
	bench/group_bench.py --build $(RELEASE) --dir build/bench-data --json build/bench-groups.json
	bench/jobs_bench.py --build $(RELEASE) --json build/bench-jobs.json
	bench/txn_bench.py --build $(RELEASE) --json build/bench-txn.json
	bench/secure_bench.py --build $(RELEASE) --json build/bench-secure.json
	$(RELEASE)/bench/validate_bench --json build/bench-validate.json
	$(RELEASE)/bench/acl_bench --json build/bench-acl.json

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build
