#include "engine/runtime/c10d_group.h"

#include <algorithm>
#include <csignal>
#include <exception>
#include <mutex>
#include <thread>

#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

// ProcessGroupGloo.hpp declares its class only under USE_C10D_GLOO and includes Gloo's own headers, which
// Debian ships in libgloo-dev (the library itself comes with libtorch).
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define NETDIST_HAVE_GLOO 1
#else
#define NETDIST_HAVE_GLOO 0
#endif

namespace netdist::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// c10::Error::what() carries a backtrace; Gloo's exceptions are one line. Keep the first line of either.
std::string c10d_group_error_text(const std::exception& e) {
  std::string text;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    text = c10_error->what_without_backtrace();
  } else {
    text = e.what();
  }
  const size_t newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  return text;
}

[[maybe_unused]] std::vector<uint8_t> c10d_group_bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string c10d_group_key(const char* what, int rank) {
  return std::string("netdist_") + what + "/" + std::to_string(rank);
}

// Ranks (other than `self`) whose key `what/<rank>` did not appear in `store` before `deadline`.
[[maybe_unused]] std::vector<int> c10d_group_missing(c10d::Store& store, const char* what, int self, int size,
                                    steady_clock::time_point deadline) {
  std::vector<int> missing;
  for (int r = 0; r < size; ++r) {
    if (r != self) missing.push_back(r);
  }
  while (!missing.empty()) {
    std::vector<int> still;
    for (int r : missing) {
      bool present = false;
      try {
        present = store.check({c10d_group_key(what, r)});
      } catch (const std::exception&) {
        present = false;
      }
      if (!present) still.push_back(r);
    }
    missing = std::move(still);
    if (missing.empty() || steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return missing;
}

#if NETDIST_HAVE_GLOO

class C10dStepGroup final : public StepGroup {
 public:
  C10dStepGroup(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::ProcessGroupGloo> pg,
                int rank, int size, const StepGroupOptions& options)
      : store_(std::move(store)), pg_(std::move(pg)), rank_(rank), size_(size), options_(options) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::string describe(int rank) const override {
    std::string out = "rank " + std::to_string(rank);
    if (rank >= 0 && rank < static_cast<int>(options_.names.size()) && !options_.names[rank].empty()) {
      out += " (" + options_.names[rank] + ")";
    }
    return out;
  }

  Result<std::vector<at::Tensor>> all_gather(const at::Tensor& t) override {
    if (!failed_.is_ok()) return failed_;
    if (!t.defined())
      return Status::invalid_argument("step group all_gather: undefined tensor on " + describe(rank_));
    try {
      // Gloo writes the outputs on its own thread, outside the caller's InferenceMode: they must be normal
      // tensors, not inference tensors.
      c10::InferenceMode normal_tensors(false);
      std::vector<at::Tensor> input{t.contiguous()};
      std::vector<std::vector<at::Tensor>> output(1);
      for (int r = 0; r < size_; ++r) output[0].push_back(at::empty(input[0].sizes(), input[0].options()));
      auto work = pg_->allgather(output, input);
      work->wait(wait_limit());
      return std::move(output[0]);
    } catch (const std::exception& e) {
      return fail("all_gather", c10d_group_error_text(e));
    }
  }

  Status broadcast(at::Tensor& t, int root) override {
    if (!failed_.is_ok()) return failed_;
    if (root < 0 || root >= size_) {
      return Status::invalid_argument("step group broadcast: root " + std::to_string(root) +
                                      " outside a group of " + std::to_string(size_));
    }
    if (!t.defined())
      return Status::invalid_argument("step group broadcast: undefined tensor on " + describe(rank_));
    try {
      std::vector<at::Tensor> tensors(1);
      {
        c10::InferenceMode normal_tensors(false);  // Gloo writes it on its own thread (see all_gather)
        tensors[0] = at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::Contiguous));
        tensors[0].copy_(t);
      }
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      auto work = pg_->broadcast(tensors, opts);
      work->wait(wait_limit());
      if (rank_ != root) t.copy_(tensors[0]);
      return Status::ok();
    } catch (const std::exception& e) {
      return fail("broadcast", c10d_group_error_text(e));
    }
  }

 private:
  milliseconds wait_limit() const { return options_.timeout + milliseconds(1000); }

  // Records the failure in the store, waits a short grace for the other members' records, and names those
  // that made none: the lost or stuck members.
  Status fail(const char* op, const std::string& cause) {
    try {
      store_->set(c10d_group_key("failed", rank_), c10d_group_bytes(cause));
    } catch (const std::exception&) {
    }
    const milliseconds grace = std::min(options_.timeout / 2, milliseconds(1000));
    const std::vector<int> silent =
        c10d_group_missing(*store_, "failed", rank_, size_, steady_clock::now() + grace);
    std::string who;
    for (int r : silent) who += (who.empty() ? "" : ", ") + describe(r);
    std::string message = "step group " + std::string(op) + " failed on " + describe(rank_) + ": ";
    message += who.empty() ? "every member reported the failure" : "lost " + who;
    message += ": " + cause;
    failed_ = Status::unavailable(message);
    return failed_;
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  int rank_;
  int size_;
  StepGroupOptions options_;
  Status failed_;
};

Result<c10::intrusive_ptr<c10d::ProcessGroupGloo>> c10d_group_make_gloo(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const StepGroupOptions& options) {
  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo_options->devices.push_back(options.host.empty()
                                        ? c10d::ProcessGroupGloo::createDefaultDevice()
                                        : c10d::ProcessGroupGloo::createDeviceForHostname(options.host));
    gloo_options->threads = 1;
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
  } catch (const std::exception& e) {
    return Status::unavailable("step group: rank " + std::to_string(rank) +
                               " could not connect to its group of " + std::to_string(size) + ": " +
                               c10d_group_error_text(e));
  }
}

#endif  // NETDIST_HAVE_GLOO

Status c10d_group_check(int rank, int size, const StepGroupOptions& options) {
  if (size < 1)
    return Status::invalid_argument("step group: size " + std::to_string(size) + " (must be >= 1)");
  if (rank < 0 || rank >= size) {
    return Status::invalid_argument("step group: rank " + std::to_string(rank) + " outside a group of " +
                                    std::to_string(size));
  }
  if (options.timeout <= milliseconds(0)) return Status::invalid_argument("step group: timeout must be > 0");
  if (options.backend == "nccl") {
    return Status::unsupported("step group: backend \"nccl\" is not built into this netdist; use \"gloo\"");
  }
  if (options.backend != "gloo") {
    return Status::invalid_argument("step group: unknown backend \"" + options.backend +
                                    "\" (expected \"gloo\")");
  }
  if (!NETDIST_HAVE_GLOO) {
    return Status::unsupported("step group: this netdist was built without Gloo's headers (libgloo-dev)");
  }
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<StepGroup>> make_step_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                   int size, const StepGroupOptions& options) {
  if (Status s = c10d_group_check(rank, size, options); !s.is_ok()) return s;
  if (!store) return Status::invalid_argument("step group: no store");
#if NETDIST_HAVE_GLOO
  // A peer that vanishes mid-write must end a collective with an error, not end this process.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  c10::intrusive_ptr<c10d::Store> group_store = store;
  std::string joined_text;
  try {
    if (!options.store_prefix.empty())
      group_store = c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, store);
    group_store->set(c10d_group_key("joined", rank), c10d_group_bytes("1"));
  } catch (const std::exception& e) {
    return Status::unavailable("step group: rank " + std::to_string(rank) +
                               " cannot reach the group's store: " + c10d_group_error_text(e));
  }
  // Our own join barrier first, so that a member that never comes is named (Gloo's rendezvous only times
  // out).
  const std::vector<int> absent =
      c10d_group_missing(*group_store, "joined", rank, size, steady_clock::now() + options.timeout);
  if (!absent.empty()) {
    std::string who;
    for (int r : absent) {
      who += (who.empty() ? "rank " : ", rank ") + std::to_string(r);
      if (r < static_cast<int>(options.names.size()) && !options.names[r].empty())
        who += " (" + options.names[r] + ")";
    }
    return Status::unavailable("step group: rank " + std::to_string(rank) + " of " + std::to_string(size) +
                               ": " + who + " did not join within " +
                               std::to_string(options.timeout.count()) + " ms");
  }
  auto pg = c10d_group_make_gloo(group_store, rank, size, options);
  if (!pg.is_ok()) return pg.status();
  return std::shared_ptr<StepGroup>(
      std::make_shared<C10dStepGroup>(group_store, std::move(pg).value(), rank, size, options));
#else
  return Status::unsupported("step group: this netdist was built without Gloo's headers (libgloo-dev)");
#endif
}

Result<CfgGrid> make_cfg_grid(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                              const StepGroupOptions& options) {
  if (size < 2 || size % 2 != 0)
    return Status::invalid_argument("step group: a CFG grid needs an even number of members, got " +
                                    std::to_string(size));
  if (rank < 0 || rank >= size)
    return Status::invalid_argument("step group: rank " + std::to_string(rank) + " outside a group of " +
                                    std::to_string(size));
  const int p = rank / 2, c = rank % 2;
  const auto name_of = [&](int r) {
    return r < static_cast<int>(options.names.size()) ? options.names[r] : "member " + std::to_string(r);
  };
  StepGroupOptions pair = options;
  pair.store_prefix = options.store_prefix + "pair/" + std::to_string(p) + "/";
  pair.names = {name_of(2 * p), name_of(2 * p + 1)};
  ND_ASSIGN_OR_RETURN(std::shared_ptr<StepGroup> pair_group, make_step_group(store, c, 2, pair));
  StepGroupOptions cross = options;
  cross.store_prefix = options.store_prefix + "cross/" + std::to_string(c) + "/";
  cross.names.clear();
  for (int q = 0; q < size / 2; ++q) cross.names.push_back(name_of(2 * q + c));
  ND_ASSIGN_OR_RETURN(std::shared_ptr<StepGroup> cross_group, make_step_group(store, p, size / 2, cross));
  return CfgGrid{std::move(pair_group), std::move(cross_group)};
}

c10::intrusive_ptr<c10d::Store> make_hash_store() { return c10::make_intrusive<c10d::HashStore>(); }

Result<c10::intrusive_ptr<c10d::Store>> make_tcp_store(const std::string& host, uint16_t port, bool is_server,
                                                       int members, std::chrono::milliseconds timeout) {
  try {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server;
    opts.waitWorkers = false;
    opts.timeout = timeout;
    if (members > 0) opts.numWorkers = static_cast<size_t>(members);
    return c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::TCPStore>(host, opts));
  } catch (const std::exception& e) {
    return Status::unavailable("step group store " + host + ":" + std::to_string(port) + ": " +
                               c10d_group_error_text(e));
  }
}

uint16_t tcp_store_port(const c10::intrusive_ptr<c10d::Store>& store) {
  const auto* tcp = dynamic_cast<const c10d::TCPStore*>(store.get());
  return tcp == nullptr ? 0 : const_cast<c10d::TCPStore*>(tcp)->getPort();
}

}  // namespace netdist::runtime
