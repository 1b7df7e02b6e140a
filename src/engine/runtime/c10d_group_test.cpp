#include "engine/runtime/c10d_group.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include <csignal>
#include <cstdlib>

#include <sys/wait.h>
#include <unistd.h>

#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

namespace netdist::runtime {
namespace {

using std::chrono::milliseconds;

StepGroupOptions c10d_test_options(milliseconds timeout) {
  StepGroupOptions options;
  options.timeout = timeout;
  options.host = "127.0.0.1";
  options.names = {"member-a", "member-b", "member-c"};
  return options;
}

// Runs body(rank) on `size` threads, each with its own group over `store`; returns each group's join status.
std::vector<Status> c10d_test_run(const c10::intrusive_ptr<c10d::Store>& store, int size,
                                  milliseconds timeout, const std::function<void(int, StepGroup&)>& body) {
  std::vector<Status> joined(size);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      auto group = make_step_group(store, rank, size, c10d_test_options(timeout));
      if (!group.is_ok()) {
        joined[rank] = group.status();
        return;
      }
      body(rank, **group);
    });
  }
  for (auto& t : threads) t.join();
  return joined;
}

TEST(C10dGroup, AllGatherAndBroadcastOverHashStore) {
  std::vector<std::vector<at::Tensor>> gathered(3);
  std::vector<at::Tensor> broadcast(3);
  std::vector<Status> statuses(3);
  auto joined = c10d_test_run(make_hash_store(), 3, milliseconds(20000), [&](int rank, StepGroup& g) {
    EXPECT_EQ(g.rank(), rank);
    EXPECT_EQ(g.size(), 3);
    auto all = g.all_gather(at::full({2, 3}, static_cast<float>(rank + 1)));
    if (!all.is_ok()) {
      statuses[rank] = all.status();
      return;
    }
    gathered[rank] = *all;
    at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}) * static_cast<float>(rank + 1);
    statuses[rank] = g.broadcast(t, 2);
    broadcast[rank] = t;
  });
  for (int rank = 0; rank < 3; ++rank) {
    ASSERT_TRUE(joined[rank].is_ok()) << joined[rank].to_string();
    ASSERT_TRUE(statuses[rank].is_ok()) << statuses[rank].to_string();
    ASSERT_EQ(gathered[rank].size(), 3u);
    for (int from = 0; from < 3; ++from) {
      EXPECT_TRUE(at::equal(gathered[rank][from], at::full({2, 3}, static_cast<float>(from + 1))));
    }
    EXPECT_TRUE(at::equal(broadcast[rank], at::arange(6, at::kFloat).reshape({2, 3}) * 3.0f));
  }
}

// The engine samples under InferenceMode, while Gloo fills the outputs on its own threads.
TEST(C10dGroup, CollectivesOnInferenceTensors) {
  std::vector<Status> statuses(2);
  std::vector<at::Tensor> out(2);
  auto joined = c10d_test_run(make_hash_store(), 2, milliseconds(20000), [&](int rank, StepGroup& g) {
    c10::InferenceMode inference;
    auto all = g.all_gather(at::full({3}, static_cast<float>(rank)));
    if (!all.is_ok()) {
      statuses[rank] = all.status();
      return;
    }
    at::Tensor t = at::full({3}, static_cast<float>(rank + 5));
    statuses[rank] = g.broadcast(t, 1);
    out[rank] = at::cat({(*all)[0], (*all)[1], t});
  });
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(joined[rank].is_ok()) << joined[rank].to_string();
    ASSERT_TRUE(statuses[rank].is_ok()) << statuses[rank].to_string();
    EXPECT_TRUE(at::equal(out[rank], at::tensor({0.f, 0.f, 0.f, 1.f, 1.f, 1.f, 6.f, 6.f, 6.f})));
  }
}

TEST(C10dGroup, TcpStoreOnLoopbackWithAnEphemeralPort) {
  auto server = make_tcp_store("127.0.0.1", 0, /*is_server=*/true, 2, milliseconds(20000));
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  const uint16_t port = tcp_store_port(*server);
  ASSERT_NE(port, 0);
  auto client = make_tcp_store("127.0.0.1", port, /*is_server=*/false, 2, milliseconds(20000));
  ASSERT_TRUE(client.is_ok()) << client.status().to_string();
  std::vector<at::Tensor> out(2);
  std::vector<std::thread> threads;
  std::vector<Status> statuses(2);
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      StepGroupOptions options = c10d_test_options(milliseconds(20000));
      options.store_prefix = "group/1/";
      auto group = make_step_group(rank == 0 ? *server : *client, rank, 2, options);
      if (!group.is_ok()) {
        statuses[rank] = group.status();
        return;
      }
      auto all = (*group)->all_gather(at::tensor({static_cast<float>(rank * 10)}));
      if (!all.is_ok()) {
        statuses[rank] = all.status();
        return;
      }
      out[rank] = at::cat(*all);
    });
  }
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(statuses[rank].is_ok()) << statuses[rank].to_string();
    EXPECT_TRUE(at::equal(out[rank], at::tensor({0.0f, 10.0f})));
  }
}

TEST(C10dGroup, MemberThatLeavesIsNamedAndTheGroupStaysFailed) {
  Status first;
  Status second;
  auto joined = c10d_test_run(make_hash_store(), 2, milliseconds(5000), [&](int rank, StepGroup& g) {
    auto warmup = g.all_gather(at::ones({4}));
    ASSERT_TRUE(warmup.is_ok()) << warmup.status().to_string();
    if (rank == 1) return;  // Member b stops: its group (and its sockets) go away.
    first = g.all_gather(at::ones({4})).status();
    at::Tensor t = at::ones({4});
    second = g.broadcast(t, 0);
  });
  ASSERT_TRUE(joined[0].is_ok()) << joined[0].to_string();
  ASSERT_FALSE(first.is_ok());
  EXPECT_NE(first.message().find("rank 1 (member-b)"), std::string::npos) << first.to_string();
  EXPECT_NE(first.message().find("all_gather"), std::string::npos) << first.to_string();
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.message(), first.message());
}

TEST(C10dGroup, MemberThatStopsCallingIsNamedAfterTheTimeout) {
  Status stuck;
  auto store = make_hash_store();
  std::atomic<bool> done{false};
  auto joined = c10d_test_run(store, 2, milliseconds(1500), [&](int rank, StepGroup& g) {
    if (rank == 1) {
      while (!done.load()) std::this_thread::sleep_for(milliseconds(10));  // Alive, but never calls.
      return;
    }
    stuck = g.all_gather(at::ones({4})).status();
    done = true;
  });
  ASSERT_TRUE(joined[0].is_ok()) << joined[0].to_string();
  ASSERT_FALSE(stuck.is_ok());
  EXPECT_NE(stuck.message().find("lost rank 1 (member-b)"), std::string::npos) << stuck.to_string();
}

// The other member of KilledProcessIsNamed: this test program started again with NETDIST_C10D_TEST_CHILD
// set to the parent's TCP store port. It joins as rank 1, takes part in one all_gather and waits for the
// parent's kill -9, before any test runs (a static initializer; libtorch's own are done by then).
[[noreturn]] void c10d_test_child(const char* port) {
  auto store =
      make_tcp_store("127.0.0.1", static_cast<uint16_t>(std::atoi(port)), false, 2, milliseconds(20000));
  if (!store.is_ok()) ::_exit(2);
  auto group = make_step_group(*store, 1, 2, c10d_test_options(milliseconds(20000)));
  if (!group.is_ok() || !(*group)->all_gather(at::ones({8})).is_ok()) ::_exit(3);
  const pid_t parent = ::getppid();
  while (::getppid() == parent) std::this_thread::sleep_for(milliseconds(100));  // a parent that died: leave
  ::_exit(4);
}

const bool c10d_test_is_child = [] {
  if (const char* port = std::getenv("NETDIST_C10D_TEST_CHILD")) c10d_test_child(port);
  return false;
}();

// A member process killed with SIGKILL mid-group: the survivor's next collective fails naming it.
TEST(C10dGroup, KilledProcessIsNamed) {
  auto server = make_tcp_store("127.0.0.1", 0, /*is_server=*/true, 2, milliseconds(20000));
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  const std::string port = std::to_string(tcp_store_port(*server));
  ::setenv("NETDIST_C10D_TEST_CHILD", port.c_str(), 1);  // before fork: the child only execs
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/proc/self/exe", "c10d_child", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto group = make_step_group(*server, 0, 2, c10d_test_options(milliseconds(20000)));
  ASSERT_TRUE(group.is_ok()) << group.status().to_string();
  ASSERT_TRUE((*group)->all_gather(at::ones({8})).is_ok());
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ::unsetenv("NETDIST_C10D_TEST_CHILD");
  EXPECT_TRUE(WIFSIGNALED(wstatus));
  Status lost = (*group)->all_gather(at::ones({8})).status();
  ASSERT_FALSE(lost.is_ok());
  EXPECT_EQ(lost.code(), StatusCode::kUnavailable) << lost.to_string();
  EXPECT_NE(lost.message().find("lost rank 1 (member-b)"), std::string::npos) << lost.to_string();
}

TEST(C10dGroup, MemberThatNeverJoinsIsNamed) {
  auto group = make_step_group(make_hash_store(), 0, 3, c10d_test_options(milliseconds(300)));
  ASSERT_FALSE(group.is_ok());
  EXPECT_NE(group.status().message().find("rank 1 (member-b), rank 2 (member-c) did not join"),
            std::string::npos)
      << group.status().to_string();
}

TEST(C10dGroup, BadArgumentsAreStatuses) {
  auto store = make_hash_store();
  StepGroupOptions options = c10d_test_options(milliseconds(1000));
  EXPECT_FALSE(make_step_group(store, 2, 2, options).is_ok());
  EXPECT_FALSE(make_step_group(store, 0, 0, options).is_ok());
  EXPECT_FALSE(make_step_group(c10::intrusive_ptr<c10d::Store>(), 0, 1, options).is_ok());
  options.backend = "nccl";
  EXPECT_EQ(make_step_group(store, 0, 1, options).status().code(), StatusCode::kUnsupported);
  options.backend = "mpi";
  EXPECT_EQ(make_step_group(store, 0, 1, options).status().code(), StatusCode::kInvalidArgument);
  options.backend = "gloo";
  options.timeout = milliseconds(0);
  EXPECT_FALSE(make_step_group(store, 0, 1, options).is_ok());

  options.timeout = milliseconds(5000);
  auto alone = make_step_group(store, 0, 1, options);
  ASSERT_TRUE(alone.is_ok()) << alone.status().to_string();
  at::Tensor t = at::ones({2});
  EXPECT_EQ((*alone)->broadcast(t, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE((*alone)->all_gather(at::Tensor()).is_ok());
  auto self = (*alone)->all_gather(at::ones({2}));
  ASSERT_TRUE(self.is_ok()) << self.status().to_string();
  EXPECT_EQ(self->size(), 1u);
  EXPECT_EQ((*alone)->describe(0), "rank 0 (member-a)");
  EXPECT_EQ((*alone)->describe(5), "rank 5");

  auto unreachable = make_tcp_store("127.0.0.1", 1, /*is_server=*/false, 2, milliseconds(300));
  EXPECT_FALSE(unreachable.is_ok());
}

}  // namespace
}  // namespace netdist::runtime
