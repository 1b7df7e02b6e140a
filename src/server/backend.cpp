#include "server/backend.h"

namespace netdist::server {

Backend::~Backend() = default;

nlohmann::ordered_json QueueItem::to_json() const {
  return nlohmann::ordered_json::array({number, prompt_id, prompt, extra_data, outputs_to_execute});
}

}  // namespace netdist::server
