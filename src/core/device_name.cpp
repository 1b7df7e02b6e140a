#include "core/device_name.h"

namespace netdist {

Result<DeviceName> parse_device_name(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Status::invalid_argument("device '" + std::string(text) + "': " + why +
                                    " (expected cpu, cuda or cuda:N with N a device index: 0, 1, ...)");
  };
  if (text == "cpu") return DeviceName{};
  if (text == "cuda") return DeviceName{true, std::nullopt};
  if (text.rfind("cuda:", 0) != 0) return bad("unknown device");
  const std::string_view digits = text.substr(5);
  if (digits.empty()) return bad("no index after 'cuda:'");
  if (digits.size() > 4) return bad("index out of range");
  int index = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return bad("the index is not a number");
    index = index * 10 + (c - '0');
  }
  return DeviceName{true, index};
}

}  // namespace netdist
