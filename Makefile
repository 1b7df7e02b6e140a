# netdist — top-level build entry points. CMake does the work; this file names the jobs.
#   make            Release build (build/release)
#   make debug      ASan + UBSan build (build/debug)
#   make test       install missing deps, build netdist and the test programs (not tools/, bench/), run every
#                   test suite and each fuzzer briefly
#   make demo       install missing deps, build, run `netdist demo` (1 vs 2 local workers, embedded model)
#   make fuzz       libFuzzer targets (clang), run each for FUZZ_SECONDS
#   make format     clang-format every project source in place
#   make lint       clang-tidy over the project sources (uses build/release/compile_commands.json)
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=
# Unity builds cut a clean build's CPU time by about half (docs/benchmarks.md) but make a one-file change
# recompile its whole batch, so they are on where every build is clean (CI=true, as .ci/run sets) and off
# for incremental work. UNITY=ON|OFF overrides.
UNITY ?= $(if $(filter true 1,$(CI)),ON,OFF)
FUZZ_SECONDS ?= 30
TEST_FUZZ_SECONDS ?= 15
SOURCES = $(shell git ls-files '*.cpp' '*.h' 2>/dev/null)
FUZZ_TARGETS = $(basename $(notdir $(shell find src -name '*_fuzz.cpp')))

.PHONY: all release debug test demo fuzz format lint deps clean

all: release

deps:
	@scripts/install-deps --if-missing

release:
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DNETDIST_UNITY=$(UNITY) $(CMAKE_FLAGS)
	cmake --build $(BUILD)/release -j $(JOBS)

debug:
	cmake -S . -B $(BUILD)/debug -DCMAKE_BUILD_TYPE=Debug -DNETDIST_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)/debug -j $(JOBS)

test: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DNETDIST_UNITY=$(UNITY) $(CMAKE_FLAGS)
	cmake --build $(BUILD)/release -j $(JOBS) --target netdist_test_programs
	cd $(BUILD)/release && ctest --output-on-failure -j $(JOBS) -E '^TinyModel\.'
	$(BUILD)/release/netdist_engine_tests --gtest_filter='TinyModel.*' --gtest_brief=1
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

demo: deps release
	$(BUILD)/release/netdist demo --output-directory netdist-demo

fuzz:
	CXX=clang++ cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNETDIST_FUZZ=ON \
	  -DNETDIST_TESTS=OFF -DNETDIST_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)/fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@for f in $(BUILD)/fuzz/*_fuzz; do \
	  [ -x "$$f" ] || continue; name=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz/corpus/$$name; \
	  seeds=tests/data/fuzz/$$name; [ -d $$seeds ] || seeds=; \
	  echo "== $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/corpus/$$name $$seeds || exit 1; \
	done

format:
	clang-format -i $(SOURCES)

lint: release
	clang-tidy -p $(BUILD)/release --quiet $(filter %.cpp,$(SOURCES))

clean:
	rm -rf $(BUILD)
