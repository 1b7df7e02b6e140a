#include "cluster/group_protocol.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "core/base64.h"

namespace netdist::cluster::protocol {

namespace {

const Json& group_field(const Json& json, const char* key) {
  static const Json kMissing;
  if (!json.is_object()) return kMissing;
  const auto it = json.find(key);
  return it == json.end() ? kMissing : *it;
}

}  // namespace

Json to_json(const GroupSpec& s) {
  return Json{{"group_id", s.group_id}, {"rank", s.rank},           {"size", s.size},
              {"mode", s.mode},         {"store_url", s.store_url}, {"timeout_ms", s.timeout_ms},
              {"names", s.names}, {"speeds", s.speeds}};
}

Result<GroupSpec> group_spec_from_json(const Json& json) {
  if (!json.is_object()) return Status::invalid_argument("task \"group\" must be an object");
  GroupSpec s;
  const Json& id = group_field(json, "group_id");
  if (!id.is_string() || id.get<std::string>().empty())
    return Status::invalid_argument("task group needs a \"group_id\" string");
  s.group_id = id.get<std::string>();
  const Json& size = group_field(json, "size");
  const Json& rank = group_field(json, "rank");
  if (!size.is_number_integer() || size.get<int64_t>() < 2 || size.get<int64_t>() > 64)
    return Status::invalid_argument("task group \"size\" must be an integer in [2, 64]");
  s.size = int(size.get<int64_t>());
  if (!rank.is_number_integer() || rank.get<int64_t>() < 0 || rank.get<int64_t>() >= s.size)
    return Status::invalid_argument("task group \"rank\" must be an integer in [0, size)");
  s.rank = int(rank.get<int64_t>());
  const Json& mode = group_field(json, "mode");
  if (!mode.is_string() || (mode != "cfg" && mode != "tiles" && mode != "cfg+tiles" && mode != "rows+cfg"))
    return Status::invalid_argument(
        "task group \"mode\" must be \"cfg\", \"tiles\", \"cfg+tiles\" or \"rows+cfg\"");
  s.mode = mode.get<std::string>();
  if ((s.mode == "cfg+tiles" || s.mode == "rows+cfg") && s.size % 2 != 0)
    return Status::invalid_argument("task group mode \"" + s.mode + "\" needs an even \"size\"");
  const Json& url = group_field(json, "store_url");
  if (!url.is_null() && !url.is_string())
    return Status::invalid_argument("task group \"store_url\" must be a string");
  if (url.is_string()) s.store_url = url.get<std::string>();
  const Json& timeout = group_field(json, "timeout_ms");
  if (!timeout.is_null()) {
    if (!timeout.is_number_integer() || timeout.get<int64_t>() < 1)
      return Status::invalid_argument("task group \"timeout_ms\" must be a positive integer");
    s.timeout_ms = timeout.get<int64_t>();
  }
  const Json& names = group_field(json, "names");
  if (names.is_array()) {
    for (const Json& n : names) s.names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  }
  const Json& speeds = group_field(json, "speeds");
  if (!speeds.is_null()) {
    if (!speeds.is_array() || (!speeds.empty() && int(speeds.size()) != s.size))
      return Status::invalid_argument("task group \"speeds\" must be an array of one number per rank");
    for (const Json& v : speeds) {
      if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
        return Status::invalid_argument("task group \"speeds\" must hold positive finite numbers");
      s.speeds.push_back(v.get<double>());
    }
  }
  return s;
}

Json to_json(const GroupPromptRequest& r) {
  Json j = to_json(r.prompt);
  j["group"] = to_json(r.group);
  return j;
}

Result<std::optional<GroupSpec>> group_of_prompt_body(const Json& json) {
  const Json& group = group_field(json, "group");
  if (group.is_null()) return std::optional<GroupSpec>();
  ND_ASSIGN_OR_RETURN(GroupSpec spec, group_spec_from_json(group));
  return std::optional<GroupSpec>(std::move(spec));
}

Json to_json(const GroupKvRequest& r) {
  Json j{{"group_id", r.group_id}, {"op", r.op}};
  if (!r.key.empty()) j["key"] = r.key;
  if (r.op == "set") j["value"] = base64_encode(r.value);
  if (!r.keys.empty()) j["keys"] = r.keys;
  if (r.op == "add") j["delta"] = r.delta;
  if (r.wait_ms > 0) j["wait_ms"] = r.wait_ms;
  return j;
}

Result<GroupKvRequest> group_kv_request_from_json(const Json& json) {
  GroupKvRequest r;
  const Json& id = group_field(json, "group_id");
  const Json& op = group_field(json, "op");
  if (!id.is_string() || !op.is_string())
    return Status::invalid_argument("group kv body needs \"group_id\" and \"op\" strings");
  r.group_id = id.get<std::string>();
  r.op = op.get<std::string>();
  static const char* kOps[] = {"set", "get", "add", "check", "wait", "delete", "num_keys"};
  if (std::none_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return r.op == o; }))
    return Status::invalid_argument("group kv \"op\" " + op.dump() +
                                    " is not one of set, get, add, check, wait, delete, num_keys");
  const Json& key = group_field(json, "key");
  if (!key.is_null() && !key.is_string())
    return Status::invalid_argument("group kv \"key\" must be a string");
  if (key.is_string()) r.key = key.get<std::string>();
  if ((r.op == "set" || r.op == "get" || r.op == "add" || r.op == "delete") && r.key.empty())
    return Status::invalid_argument("group kv \"" + r.op + "\" needs a \"key\"");
  if (r.op == "set") {
    const Json& value = group_field(json, "value");
    if (!value.is_string())
      return Status::invalid_argument("group kv \"set\" needs a base64 \"value\" string");
    auto bytes = base64_decode(value.get<std::string>());
    if (!bytes.is_ok()) return Status::invalid_argument("group kv \"value\" is not base64");
    r.value = std::move(*bytes);
  }
  const Json& keys = group_field(json, "keys");
  if (keys.is_array()) {
    for (const Json& k : keys) {
      if (!k.is_string()) return Status::invalid_argument("group kv \"keys\" must be strings");
      r.keys.push_back(k.get<std::string>());
    }
  } else if (!keys.is_null()) {
    return Status::invalid_argument("group kv \"keys\" must be an array");
  }
  const Json& delta = group_field(json, "delta");
  if (!delta.is_null() && !delta.is_number_integer())
    return Status::invalid_argument("group kv \"delta\" must be an integer");
  if (delta.is_number_integer()) r.delta = delta.get<int64_t>();
  const Json& wait = group_field(json, "wait_ms");
  if (!wait.is_null() && !wait.is_number_integer())
    return Status::invalid_argument("group kv \"wait_ms\" must be an integer");
  if (wait.is_number_integer()) r.wait_ms = std::clamp<int64_t>(wait.get<int64_t>(), 0, 10000);
  return r;
}

}  // namespace netdist::cluster::protocol
