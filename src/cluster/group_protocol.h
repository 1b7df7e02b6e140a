// The wire forms of coordinator-formed step groups (issue #17; protocol.h TaskKind::group, Route::group_kv).
//
// A group task is a whole prompt (protocol.h PromptRequest) plus "group": GroupSpec. The coordinator sends
// one to each of the k members it picked (connect-out: POST prompt; dial-in: a pulled task of kind "group");
// every member runs the whole prompt with its samplers bound to the group (nodes/step_group_binding.h), rank
// 0 replies with the outputs as a whole prompt does, the others with an ack (a reply without files).
//
// Rendezvous: the members meet through the coordinator's POST group/kv route (GroupKvRequest): a key-value
// store per group, open only while the coordinator runs that group, behind the server's bearer token — so
// only workers holding the cluster token can join (a raw c10d TCPStore has no authentication). The worker's
// side is a c10d::Store whose operations are these calls (group_store.h).
// Thread-safety: free functions without state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/protocol.h"

namespace netdist::cluster::protocol {

struct GroupSpec {
  std::string group_id;
  int rank = 0, size = 2;
  // "cfg" (size 2), "tiles" (all members share the tiles), "cfg+tiles" or "rows+cfg" (an even size: CFG
  // pairs of ranks 2p, 2p + 1 whose cross groups share the tiles or the batch rows; c10d_group.h
  // make_cfg_grid).
  std::string mode = "cfg";
  // The coordinator's base URL for group/kv; empty = the worker's --join coordinator.
  std::string store_url;
  int64_t timeout_ms = 60000;      // rendezvous and every collective (c10d_group.h StepGroupOptions)
  std::vector<std::string> names;  // the members' URLs by rank, for messages
  // The members' measured speeds by rank (1 / seconds per unit; empty = equal): tiles are shared by them
  // (tiled_diffusion.h share_bounds; a tile's bytes do not depend on who renders it).
  std::vector<double> speeds;
};
Json to_json(const GroupSpec& spec);
// invalid_argument naming the field; size >= 2, 0 <= rank < size, mode one of the four (an even size for
// the CFG-pair modes), speeds empty or one positive number per rank.
Result<GroupSpec> group_spec_from_json(const Json& json);

struct GroupPromptRequest {
  PromptRequest prompt;
  GroupSpec group;
};
Json to_json(const GroupPromptRequest& request);  // the PromptRequest body plus "group"
// The prompt part as prompt_request_from_json, and "group" when present (nullopt: a plain whole prompt).
Result<std::optional<GroupSpec>> group_of_prompt_body(const Json& json);

// One operation on a group's store. op: "set" (key, value) → {}; "get" (key, wait_ms) → {"value"} or
// {"ready": false} when the key did not appear within wait_ms; "add" (key, delta) → {"count"}; "check"
// (keys) → {"ready"}; "wait" (keys, wait_ms) → {"ready"}; "delete" (key) → {"deleted"}; "num_keys" →
// {"count"}. Values travel as base64. A group the coordinator does not run (now) → 404.
struct GroupKvRequest {
  std::string group_id;
  std::string op;
  std::string key;
  std::string value;  // raw bytes (set)
  std::vector<std::string> keys;
  int64_t delta = 0;
  int64_t wait_ms = 0;
};
Json to_json(const GroupKvRequest& request);
Result<GroupKvRequest> group_kv_request_from_json(const Json& json);

}  // namespace netdist::cluster::protocol
