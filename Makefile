# pipeline-dataops in C - the developer's entry points.  CMake builds,
# CTest runs the tests; this file only strings them together.
#
#   make            build build/dataops
#   make demo       run the pipeline offline against the bundled fake exchange
#   make run        run the pipeline against the real Binance API (needs network)
#   make test       unit, integration and system tests (ctest)
#   make asan       the same tests under AddressSanitizer + UBSan
#   make valgrind   a full run under valgrind's leak checker
#   make check      everything CI runs (deps, test, asan, lint, fuzz smoke, container)
#   make deps       install the Debian and npm packages the project needs
#   make test-gcp   a short real end-to-end run on Google Cloud (needs
#                   GOOGLE_APPLICATION_CREDENTIALS, PROJECT_ID, GCS_BUCKET_NAME;
#                   skips with a message otherwise)

BUILD_DIR ?= build
ASAN_DIR ?= build-asan
FUZZ_DIR ?= build-fuzz
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
GIT_COMMIT_HASH ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure -j$(JOBS)

.PHONY: all build test unit asan valgrind demo run deps check lint fuzz fuzz-build bench clean

all: build

build:
	@scripts/install-deps.sh --if-missing build
	cmake -S . -B $(BUILD_DIR) -DGIT_COMMIT_HASH=$(GIT_COMMIT_HASH) -DDATAOPS_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	@scripts/install-deps.sh --if-missing test
	cd $(BUILD_DIR) && ctest $(CTEST_FLAGS)

unit: build
	cd $(BUILD_DIR) && ctest $(CTEST_FLAGS) -L unit

asan:
	@scripts/install-deps.sh --if-missing test
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DDATAOPS_SANITIZE=ON -DDATAOPS_WERROR=ON \
		-DGIT_COMMIT_HASH=$(GIT_COMMIT_HASH)
	cmake --build $(ASAN_DIR) -j$(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:exitcode=86 LSAN_OPTIONS=exitcode=86 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86 ctest $(CTEST_FLAGS)

valgrind: build
	scripts/valgrind-run.sh $(BUILD_DIR)/dataops

demo: build
	@scripts/demo.sh $(BUILD_DIR)/dataops

run: build
	$(BUILD_DIR)/dataops run

deps:
	scripts/install-deps.sh all

lint: build
	@scripts/install-deps.sh --if-missing lint
	scripts/lint.sh
	$(MAKE) lint-ship

fuzz-build:
	scripts/install-deps.sh --if-missing fuzz
	CC=clang cmake -S . -B $(FUZZ_DIR) -DDATAOPS_FUZZ=ON -DDATAOPS_BUILD_TESTS=OFF \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_DIR) -j$(JOBS)

# A short run of every fuzz target over its committed corpus (CI); longer
# runs: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 30
fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# Side-by-side figures on 100k and 1M rows (the references need the shared bench folder,
# python3-pandas, python3-pydantic and npm); BENCH_FLAGS=--big adds 10M rows.
BENCH_FLAGS ?=
bench: build
	@scripts/install-deps.sh --if-missing bench
	python3 bench/bench.py --dataops $(BUILD_DIR)/dataops $(BENCH_FLAGS)
	python3 bench/backfill.py --dataops $(BUILD_DIR)/dataops

check: deps test asan lint fuzz test-container

.PHONY: test-gcp
test-gcp: build
	scripts/test-gcp.sh $(BUILD_DIR)/dataops

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)

include mk/ship.mk
