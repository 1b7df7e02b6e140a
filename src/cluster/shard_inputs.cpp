#include "cluster/shard_inputs.h"

#include <filesystem>

#include "cluster/protocol.h"
#include "core/base64.h"
#include "io/files.h"
#include "io/sha256.h"

namespace netdist::cluster {

namespace fs = std::filesystem;

bool reads_input_file(const std::string& class_type) {
  return class_type == "LoadImage" || class_type == "LoadImageMask";
}

namespace {

// A workflow node that loads an input file (a request's workflow: any field may have any JSON type).
bool loads_input_file(const Json& node) {
  if (!node.is_object()) return false;
  const auto cls = node.find("class_type");
  return cls != node.end() && cls->is_string() && reads_input_file(cls->get<std::string>());
}

}  // namespace

Status check_input_name(const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Status::invalid_argument("input file name '" + name + "' " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.find('\0') != std::string::npos) return bad("contains a NUL byte");
  if (name.find('\\') != std::string::npos) return bad("contains a backslash");
  if (name.front() == '/') return bad("is an absolute path");
  for (const auto& part : fs::path(name)) {
    if (part == "..") return bad("leaves the input folder ('..')");
  }
  return Status::ok();
}

Result<Json> collect_shard_inputs(const Json& workflow, const std::string& input_dir) {
  Json inputs = Json::object();
  for (const auto& [id, node] : workflow.items()) {
    if (!loads_input_file(node) || !node.contains("inputs") || !node["inputs"].is_object()) continue;
    const Json image = node["inputs"].value("image", Json());
    if (!image.is_string()) continue;
    const std::string name = image.get<std::string>();
    if (inputs.contains(name)) continue;
    ND_RETURN_IF_ERROR(check_input_name(name).with_context("node " + id));
    ND_ASSIGN_OR_RETURN(std::string bytes, io::read_file((fs::path(input_dir) / name).string()));
    inputs[name] = protocol::to_json(protocol::InputFile{io::sha256_hex(bytes), base64_encode(bytes)});
  }
  return inputs;
}

Result<Json> install_shard_inputs(Json workflow, const Json& inputs, const std::string& input_dir) {
  if (inputs.is_null()) return workflow;
  if (!inputs.is_object()) return Status::invalid_argument("shard \"inputs\" must be an object of files");
  Json installed = Json::object();  // name in the workflow → name under input_dir
  for (const auto& [name, file] : inputs.items()) {
    ND_RETURN_IF_ERROR(check_input_name(name));
    ND_ASSIGN_OR_RETURN(protocol::InputFile file_in, protocol::input_file_from_json(name, file));
    auto bytes = base64_decode(file_in.data);
    if (!bytes.is_ok()) return bytes.status().with_context("shard input '" + name + "'");
    const std::string sha = io::sha256_hex(*bytes);
    if (sha != file_in.sha256)
      return Status::invalid_argument("shard input '" + name + "' does not match its sha256 (got " + sha + ")");
    const std::string stored =
        std::string(kShardInputFolder) + "/" + sha + fs::path(name).extension().string();
    const fs::path path = fs::path(input_dir) / stored;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      fs::create_directories(path.parent_path(), ec);
      if (ec) return Status::io_error(path.parent_path().string() + ": cannot create: " + ec.message());
      ND_RETURN_IF_ERROR(io::write_file_atomic(path.string(), *bytes));
    }
    installed[name] = stored;
  }
  for (auto& [id, node] : workflow.items()) {
    if (!loads_input_file(node)) continue;
    if (!node.contains("inputs") || !node["inputs"].is_object()) continue;
    auto image = node["inputs"].find("image");
    if (image != node["inputs"].end() && image->is_string() && installed.contains(image->get<std::string>()))
      *image = installed[image->get<std::string>()];
  }
  return workflow;
}

}  // namespace netdist::cluster
