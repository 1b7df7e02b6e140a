// Test-only Backend: node classes FakeLoader, FakeSampler and SaveImage with ComfyUI-shaped validation
// errors, realistic execution events, a per-node output cache (identical resubmission executes nothing)
// and real PNG files written into the output directory.
//
// FakeSampler inputs: seed (int), steps (int ≥ 1, "5" converts to 5), model (link), and test hooks
// preview_bytes (binary preview frame per step), fail (returns an error without emitting execution_error),
// wait_for_interrupt (blocks until interrupted, at most 10 s), plan (an object emitted as kPlanEvent),
// node_timings ({"list": array}, the array emitted as kNodesEvent).
// Thread-safety: as Backend requires.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "io/png.h"
#include "server/backend.h"

namespace netdist::server {

class FakeBackend : public Backend {
 public:
  using json = nlohmann::ordered_json;

  explicit FakeBackend(std::string output_dir) : output_dir_(std::move(output_dir)) {}

  ValidationOutcome validate(const json& prompt) override {
    ValidationOutcome out;
    if (!prompt.is_object()) return fail(error("invalid_prompt", "Invalid prompt", "prompt must be an object"), json::object());
    json converted = prompt;
    json node_errors = json::object();
    for (auto it = converted.begin(); it != converted.end(); ++it) {
      json& node = it.value();
      if (!node.is_object() || !node.contains("class_type"))
        return fail(error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                          "Node ID '#" + it.key() + "'"), json::object());
      const std::string cls = node["class_type"].is_string() ? node["class_type"].get<std::string>() : "";
      if (cls != "FakeLoader" && cls != "FakeSampler" && cls != "SaveImage")
        return fail(error("invalid_prompt", "Cannot execute because node " + cls + " does not exist.",
                          "Node ID '#" + it.key() + "'"), json::object());
      if (!node.contains("inputs")) node["inputs"] = json::object();
      json& inputs = node["inputs"];
      if (!inputs.is_object())
        return fail(error("invalid_prompt", "Node '#" + it.key() + "' inputs must be an object", ""), json::object());
      if (cls == "FakeSampler") {
        for (const char* name : {"steps", "preview_bytes"}) {
          if (!inputs.contains(name)) continue;
          const json& v = inputs[name];
          const bool convertible = v.is_string() && name == std::string("steps");
          if (!convertible && (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (1 << 24)))
            return fail(error("invalid_prompt", std::string("FakeSampler ") + name + " must be an integer in [0, 2^24]",
                              "Node ID '#" + it.key() + "'"), json::object());
        }
        for (const char* name : {"fail", "wait_for_interrupt"}) {
          if (inputs.contains(name) && !inputs[name].is_boolean())
            return fail(error("invalid_prompt", std::string("FakeSampler ") + name + " must be a boolean",
                              "Node ID '#" + it.key() + "'"), json::object());
        }
      }
      if (cls == "SaveImage" && inputs.contains("filename_prefix") && !inputs["filename_prefix"].is_string())
        return fail(error("invalid_prompt", "SaveImage filename_prefix must be a string", "Node ID '#" + it.key() + "'"),
                    json::object());
      if (cls == "FakeLoader") {
        const json name = inputs.value("ckpt_name", json());
        if (name != "model.safetensors") {
          const std::string details = "ckpt_name: " + name.dump() + " not in ['model.safetensors']";
          node_errors[it.key()] = {
              {"errors", json::array({{{"type", "value_not_in_list"}, {"message", "Value not in list"}, {"details", details},
                                       {"extra_info", {{"input_name", "ckpt_name"}, {"received_value", name}}}}})},
              {"dependent_outputs", output_ids(prompt)},
              {"class_type", cls}};
        }
      } else if (cls == "FakeSampler" && inputs.contains("steps") && inputs["steps"].is_string()) {
        try {
          inputs["steps"] = std::stoi(inputs["steps"].get<std::string>());
        } catch (...) {
          return fail(error("invalid_prompt", "FakeSampler steps must be an integer", "Node ID '#" + it.key() + "'"),
                      json::object());
        }
      }
    }
    const json outputs = output_ids(prompt);
    if (outputs.empty()) return fail(error("prompt_no_outputs", "Prompt has no outputs", ""), json::object());
    if (!node_errors.empty()) {
      std::string details;
      for (auto& [id, e] : node_errors.items()) details += std::string(e["errors"][0]["message"]) + ": " + std::string(e["errors"][0]["details"]);
      return fail(error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors);
    }
    out.ok = true;
    for (const auto& id : outputs) out.outputs.push_back(id);
    out.prompt = converted;
    return out;
  }

  Status execute(const QueueItem& item, const EmitFn& emit, std::atomic<bool>& interrupt, json& outputs) override {
    ++executed_prompts;
    const std::string& pid = item.prompt_id;
    std::lock_guard lock(mutex_);
    emit("execution_start", {{"prompt_id", pid}});
    json cached = json::array();
    std::vector<std::string> order;
    for (const char* cls : {"FakeLoader", "FakeSampler", "SaveImage"})
      for (auto it = item.prompt.begin(); it != item.prompt.end(); ++it)
        if (it.value()["class_type"] == cls) order.push_back(it.key());
    for (const auto& id : order) {
      auto c = cache_.find(id);
      if (c != cache_.end() && c->second.first == item.prompt[id].dump()) cached.push_back(id);
    }
    emit("execution_cached", {{"nodes", cached}, {"prompt_id", pid}});
    json executed = json::array();
    std::map<std::string, std::pair<std::string, json>> next_cache;
    for (const auto& id : order) {
      const json& node = item.prompt[id];
      const std::string cls = node["class_type"];
      const json& inputs = node["inputs"];
      if (std::find(cached.begin(), cached.end(), json(id)) != cached.end()) {
        next_cache[id] = cache_[id];
        if (cls == "SaveImage") {
          emit("executed", {{"node", id}, {"display_node", id}, {"output", cache_[id].second}, {"prompt_id", pid}});
          outputs[id] = cache_[id].second;
        }
        continue;
      }
      if (interrupt.load()) return interrupted(emit, pid, id, cls, executed);
      emit("executing", {{"node", id}, {"display_node", id}, {"prompt_id", pid}});
      json ui;
      if (cls == "FakeSampler") {
        if (inputs.value("fail", false)) return Status::internal("FakeSampler " + id + " failed on purpose");
        if (inputs.value("wait_for_interrupt", false)) {
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (!interrupt.load() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (inputs.contains("plan")) emit(kPlanEvent, inputs["plan"]);
        if (inputs.contains("node_timings")) emit(kNodesEvent, inputs["node_timings"]["list"]);
        const int steps = inputs.value("steps", 1);
        const int preview_bytes = inputs.value("preview_bytes", 0);
        for (int s = 0; s < steps; ++s) {
          if (interrupt.load()) return interrupted(emit, pid, id, cls, executed);
          emit("progress", {{"value", s + 1}, {"max", steps}, {"prompt_id", pid}, {"node", id}});
          if (preview_bytes > 0)
            emit(kPreviewEvent, {{"format", "JPEG"}, {"image", json::binary(std::vector<uint8_t>(preview_bytes, uint8_t(s)))}});
        }
      } else if (cls == "SaveImage") {
        const std::string prefix = inputs.value("filename_prefix", std::string("ComfyUI"));
        char name[64];
        std::snprintf(name, sizeof(name), "_%05d_.png", ++counter_);
        io::Image8 image{8, 8, 3, std::vector<uint8_t>(8 * 8 * 3, uint8_t(counter_ * 40))};
        auto png = io::encode_png(image, {{"prompt", item.prompt.dump()}}, 4);
        if (!png.is_ok()) return png.status();
        std::filesystem::create_directories(output_dir_);
        ND_RETURN_IF_ERROR(io::write_file_atomic(output_dir_ + "/" + prefix + name, *png));
        ui = {{"images", json::array({{{"filename", prefix + name}, {"subfolder", ""}, {"type", "output"}}})}};
        emit("executed", {{"node", id}, {"display_node", id}, {"output", ui}, {"prompt_id", pid}});
        outputs[id] = ui;
      }
      executed.push_back(id);
      next_cache[id] = {node.dump(), ui};
    }
    cache_ = std::move(next_cache);
    emit("execution_success", {{"prompt_id", pid}});
    return Status::ok();
  }

  json object_info() override {
    const json sampler = {
        {"input", {{"required", {{"seed", json::array({"INT", {{"default", 0}, {"min", 0}}})},
                                 {"steps", json::array({"INT", {{"default", 20}, {"min", 1}}})},
                                 {"model", json::array({"MODEL"})}}}}},
        {"input_order", {{"required", json::array({"seed", "steps", "model"})}}},
        {"output", json::array({"LATENT"})}, {"output_is_list", json::array({false})},
        {"output_name", json::array({"LATENT"})}, {"name", "FakeSampler"}, {"display_name", "FakeSampler"},
        {"description", ""}, {"python_module", "nodes"}, {"category", "sampling"}, {"output_node", false}};
    const json loader = {
        {"input", {{"required", {{"ckpt_name", json::array({json::array({"model.safetensors"}), json::object()})}}}}},
        {"input_order", {{"required", json::array({"ckpt_name"})}}},
        {"output", json::array({"MODEL"})}, {"output_is_list", json::array({false})},
        {"output_name", json::array({"MODEL"})}, {"name", "FakeLoader"}, {"display_name", "Load Checkpoint"},
        {"description", ""}, {"python_module", "nodes"}, {"category", "loaders"}, {"output_node", false}};
    json save = loader;
    save["input"] = {{"required", {{"images", json::array({"IMAGE"})}, {"filename_prefix", json::array({"STRING", {{"default", "ComfyUI"}}})}}}};
    save["input_order"] = {{"required", json::array({"images", "filename_prefix"})}};
    save["output"] = save["output_is_list"] = save["output_name"] = json::array();
    save["name"] = save["display_name"] = "SaveImage";
    save["category"] = "image";
    save["output_node"] = true;
    return {{"FakeLoader", loader}, {"FakeSampler", sampler}, {"SaveImage", save}};
  }

  json system_stats_devices() override {
    return json::array({{{"name", "cpu"}, {"type", "cpu"}, {"index", nullptr}, {"vram_total", 0}, {"vram_free", 0},
                         {"torch_vram_total", 0}, {"torch_vram_free", 0}}});
  }

  void free_memory(bool unload_models, bool free_memory) override { ++free_calls; }

  std::atomic<int> executed_prompts{0};
  std::atomic<int> free_calls{0};

 private:
  static json error(const std::string& type, const std::string& message, const std::string& details) {
    return {{"type", type}, {"message", message}, {"details", details}, {"extra_info", json::object()}};
  }
  static ValidationOutcome fail(json err, json node_errors) {
    ValidationOutcome out;
    out.ok = false;
    out.error_body = {{"error", std::move(err)}, {"node_errors", node_errors}};
    out.node_errors = std::move(node_errors);
    return out;
  }
  static json output_ids(const json& prompt) {
    json ids = json::array();
    for (auto it = prompt.begin(); it != prompt.end(); ++it)
      if (it.value().is_object() && it.value().value("class_type", json()) == "SaveImage") ids.push_back(it.key());
    return ids;
  }
  static Status interrupted(const EmitFn& emit, const std::string& pid, const std::string& id, const std::string& cls,
                            const json& executed) {
    emit("execution_interrupted", {{"prompt_id", pid}, {"node_id", id}, {"node_type", cls}, {"executed", executed}});
    return Status::cancelled("interrupted at node " + id);
  }

  const std::string output_dir_;
  std::mutex mutex_;
  std::map<std::string, std::pair<std::string, json>> cache_;  // node id → (node json, ui)
  int counter_ = 0;
};

}  // namespace netdist::server
