// The worker's side of step-group rendezvous (group_protocol.h): a c10d::Store whose operations are calls
// of the coordinator's POST /netdist/v1/group/kv route with this worker's cluster token, and join_group,
// which makes this member's StepGroup (engine/runtime/c10d_group.h, Gloo) through it.
//
// Failures: a coordinator that refuses the token (401) → unauthenticated ("... does not hold the cluster
// token"); a group the coordinator no longer runs (404) → unavailable; members that do not all join within
// the spec's timeout → c10d_group's Status naming them; `cancelled` returning true ends a wait early →
// cancelled. Inside c10d the store throws std::runtime_error with these messages (c10d's contract).
// Thread-safety: join_group may be called from any thread; the store serialises nothing itself (c10d
// calls it from the group's threads, each call an independent HTTP request).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "cluster/group_protocol.h"
#include "cluster/http_client.h"
#include "core/status.h"
#include "netdist/step_group.h"

namespace netdist::cluster {

struct GroupJoinOptions {
  std::string coordinator_url;  // used when the spec names no store_url (a --join worker)
  std::string auth_token;       // this worker's cluster token
  std::shared_ptr<const TlsClientContext> tls;
  std::string host;  // the address Gloo binds and announces; empty: Gloo's default
  std::function<bool()> cancelled;
};

// Seconds this member spent inside its groups' collectives (the all_gather / broadcast wall time: the
// exchange itself plus any wait for a slower member), and how many it made. Shared by the groups of one
// membership; read after the prompt (the sampling thread is the only writer).
struct ExchangeTally {
  std::mutex mutex;
  double seconds = 0;
  int64_t exchanges = 0;
};

// What a member joined: `group` is the whole group ("cfg", "tiles") or this member's CFG pair ("cfg+tiles",
// "rows+cfg"), `cross` the pairs' cross group (tiles or rows; null otherwise), both timed into `tally`.
struct GroupMembership {
  std::shared_ptr<StepGroup> group;
  std::shared_ptr<StepGroup> cross;
  std::shared_ptr<ExchangeTally> tally;
};

Result<GroupMembership> join_group(const protocol::GroupSpec& spec, const GroupJoinOptions& options);

}  // namespace netdist::cluster
