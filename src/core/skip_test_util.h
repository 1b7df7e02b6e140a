// Test-only: the only ways a netdist test may skip. Each macro skips the current test (GTEST_SKIP) with a
// message that starts with a tag naming the reason, "netdist-skip(<reason>): "; `make test`'s report
// (tests/report/) counts skips by that tag, and fails on a skip without one, on a GPU skip where a GPU is
// present, and on an offline skip unless NETDIST_OFFLINE=1. Anything else a test needs and CI has (a golden
// or data file, a tool from scripts/install-deps) is a failure when missing, never a skip: ADD_FAILURE or
// GTEST_FAIL naming the file and the script that makes it. `src` has no other GTEST_SKIP (ctest checks).
#pragma once

#include <gtest/gtest.h>

// The tag that starts a skip message; `reason` is a string literal (gpu, root or offline).
#define ND_SKIP_TAG(reason) "netdist-skip(" reason "): "

// The test needs a CUDA device and a CUDA build of libtorch; `why` (streamed) says which is missing.
#define ND_SKIP_NEEDS_GPU(why) GTEST_SKIP() << ND_SKIP_TAG("gpu") << why

// The test needs root or a privilege root has (network namespaces, mounting a tmpfs); `why` says what failed.
#define ND_SKIP_NEEDS_ROOT(why) GTEST_SKIP() << ND_SKIP_TAG("root") << why
