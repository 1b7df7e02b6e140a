// StepGroup (include/netdist/step_group.h) over libtorch's c10d process groups, and the c10d stores its
// members meet through. The only file that includes c10d's process-group headers.
//
// Backends: "gloo" (TCP; CPU tensors, and CUDA tensors staged through the host) on every build whose libtorch
// ships Gloo's headers (Debian: libgloo-dev; see docs/dependencies.md). "nccl" is refused with a Status in
// this version: Gloo over loopback serves GPUs of one host too, at the cost of a host copy per exchange.
//
// Rendezvous: every member calls make_step_group with the same store (or stores that share keys, e.g. TCP
// store clients of one server), the same size and its own rank; the call returns when all members have
// joined, or fails after `timeout`. Several groups may share one store when each has its own `store_prefix`.
//
// Failures: a collective that fails (a member died, closed its group, or did not call within `timeout`)
// returns a Status on every member still alive, naming the member(s) that did not report the failure
// themselves (those are the lost or stuck ones) with their names; afterwards every call fails at once with
// that Status. Nothing here throws: c10d's and Gloo's exceptions become Status.
//
// Thread-safety: make_step_group and the store factories may be called from any thread; one group's
// collectives from one thread at a time (StepGroup's contract).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "core/status.h"
#include "netdist/step_group.h"

namespace netdist::runtime {

struct StepGroupOptions {
  std::string backend = "gloo";
  // Rendezvous, each collective, and the wait for a peer's bytes. Must be > 0.
  std::chrono::milliseconds timeout{30000};
  // Address Gloo binds this member's sockets to and announces to the others ("127.0.0.1" on loopback).
  // Empty: Gloo's default (the host name's address, else loopback).
  std::string host;
  // Member names for messages, indexed by rank ("127.0.0.1:8190"); missing entries print as the rank alone.
  std::vector<std::string> names;
  // Keys of this group live under this prefix of the store ("group/7/"); empty: the store's root.
  std::string store_prefix;
};

// A group of `size` members in which this process is `rank` (0 <= rank < size, size >= 1).
Result<std::shared_ptr<StepGroup>> make_step_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                   int size, const StepGroupOptions& options);

// The sub-groups of a combined mode (issue #17: CFG split × tiles, rows × CFG) over `size` = 2·m members
// (m >= 1) meeting through one store: member r is in CFG pair p = r / 2 (members 2p and 2p + 1; its rank
// there r % 2: 0 runs the positive entries) and in cross group c = r % 2 (members c, c + 2, ...; its rank
// there p), which shares the tiles (cfg+tiles) or the rows (rows × CFG) among the pairs. Each sub-group
// has its own key prefix under options.store_prefix ("pair/<p>/", "cross/<c>/") and the names of its
// members; every member joins its pair first, then its cross group (no cycle: each pair forms on its own).
// invalid_argument for an odd size; a member that does not come → make_step_group's Status.
struct CfgGrid {
  std::shared_ptr<StepGroup> pair;
  std::shared_ptr<StepGroup> cross;
};
Result<CfgGrid> make_cfg_grid(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                              const StepGroupOptions& options);

// An in-process store: members on threads of one process.
c10::intrusive_ptr<c10d::Store> make_hash_store();

// A TCP store at host:port. The server (is_server) listens on `port` (0: an ephemeral port, see
// tcp_store_port) and serves `members` clients; clients connect to it, waiting up to `timeout`.
Result<c10::intrusive_ptr<c10d::Store>> make_tcp_store(const std::string& host, uint16_t port, bool is_server,
                                                       int members, std::chrono::milliseconds timeout);

// The port a TCP store made by make_tcp_store listens on or connects to; 0 for other stores.
uint16_t tcp_store_port(const c10::intrusive_ptr<c10d::Store>& store);

}  // namespace netdist::runtime
