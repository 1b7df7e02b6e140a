# netdist — top-level build entry points. CMake does the work; this file names the jobs.
#   make            Release build (build/release)
#   make debug      ASan + UBSan build (build/debug)
#   make test       install missing deps, build netdist and the test programs (not tools/, bench/), run every
#                   test suite and each fuzzer briefly, then report passed, skipped (with reasons) and failed
#                   tests; fails on a failure and on a skip CI could avoid (tests/report/report.h)
#   make demo       install missing deps, build only netdist, run `netdist demo` (1 vs 2 local workers, embedded model)
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
# Where make test's steps write their results for the closing report (tests/report/main.cpp).
TEST_RESULTS = $(abspath $(BUILD)/release/test-results)
# auto: a GPU that nvidia-smi lists makes a skip for want of a GPU fail; yes/no say so without asking.
TEST_GPU ?= auto

.PHONY: all release debug test demo fuzz fuzz-build format lint deps clean

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
	rm -rf $(TEST_RESULTS) && mkdir -p $(TEST_RESULTS)
	@# Each step records its exit code and results file and make goes on; the report judges them all.
	cd $(BUILD)/release && ctest --output-on-failure -j $(JOBS) -E '^TinyModel\.' \
	  --output-junit $(TEST_RESULTS)/ctest.junit.xml; echo "ctest $$? ctest.junit.xml" >>$(TEST_RESULTS)/steps.txt
	@# The tiny-model quality tests print their measured rates (ctest hides a passing test's output) and share
	@# one loaded model in one process.
	$(BUILD)/release/netdist_engine_tests --gtest_filter='TinyModel.*' --gtest_brief=1 \
	  --gtest_output=xml:$(TEST_RESULTS)/tinymodel.gtest.xml; echo "TinyModel $$? tinymodel.gtest.xml" >>$(TEST_RESULTS)/steps.txt
	$(MAKE) fuzz-build
	scripts/run-fuzzers $(BUILD)/fuzz $(TEST_FUZZ_SECONDS) $(TEST_RESULTS)/fuzzers.fuzz.txt $(FUZZ_TARGETS); \
	  echo "fuzz $$? fuzzers.fuzz.txt" >>$(TEST_RESULTS)/steps.txt
	$(BUILD)/release/netdist_test_report $(TEST_RESULTS) --gpu $(TEST_GPU)

# Only the netdist program: the demo needs no test program, tool or benchmark.
demo: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DNETDIST_UNITY=$(UNITY) $(CMAKE_FLAGS)
	cmake --build $(BUILD)/release -j $(JOBS) --target netdist
	$(BUILD)/release/netdist demo --output-directory netdist-demo

fuzz: fuzz-build
	scripts/run-fuzzers $(BUILD)/fuzz $(FUZZ_SECONDS) "" $(FUZZ_TARGETS)

fuzz-build:
	CXX=clang++ cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNETDIST_FUZZ=ON \
	  -DNETDIST_TESTS=OFF -DNETDIST_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)/fuzz -j $(JOBS) --target $(FUZZ_TARGETS)

format:
	clang-format -i $(SOURCES)

lint: release
	clang-tidy -p $(BUILD)/release --quiet $(filter %.cpp,$(SOURCES))

clean:
	rm -rf $(BUILD)
