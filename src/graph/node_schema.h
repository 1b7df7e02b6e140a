// Node class descriptions (ComfyUI's INPUT_TYPES / RETURN_TYPES / OUTPUT_NODE ...) and their
// /object_info JSON, in the shape of the pinned ComfyUI (0.3.10, server.py node_info).
// Thread-safety: schemas are immutable values once registered; an options_provider must be callable from
// any thread (it runs on every /object_info and every validation, as INPUT_TYPES() does in ComfyUI).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace netdist::graph {

using Json = nlohmann::ordered_json;

// One input. `type` is "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO" (a choice from `options`) or a link
// type such as "MODEL", "LATENT", "*" or "IMAGE,MASK". Numeric options are JSON numbers so that ints stay
// exact (seed max 0xffffffffffffffff); null means "not set" and the key is left out of object_info.
struct InputSpec {
  std::string name;
  std::string type;
  Json default_value;
  Json min;
  Json max;
  Json step;
  Json round;                       // a number, or false to disable rounding
  std::optional<bool> multiline;
  std::vector<std::string> options;  // COMBO choices, in order
  std::function<std::vector<std::string>()> options_provider;  // if set, replaces `options` on each use
  Json extra = Json::object();      // other options, in order: dynamicPrompts, image_upload, ...
  bool force_input = false;         // "forceInput": true
  std::string tooltip;              // empty = absent
};

// A hidden input: what ComfyUI fills in itself ("PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID").
struct HiddenInput {
  std::string name;
  std::string kind;
};

// VALIDATE_INPUTS: replaces the range and list checks for `inputs` (ComfyUI skips them for inputs named
// in VALIDATE_INPUTS' signature). `check` receives {name: literal value or null for a link} and returns
// nullopt when valid, "" for a bare failure, or a reason string.
struct CustomValidation {
  std::vector<std::string> inputs;
  std::function<std::optional<std::string>(const Json& values)> check;
};

struct NodeSchema {
  std::string class_type;
  std::string display_name;          // empty = class_type
  std::string category = "sd";
  std::string description;
  std::string python_module = "nodes";
  std::vector<InputSpec> required;
  std::vector<InputSpec> optional;
  std::vector<HiddenInput> hidden;
  std::vector<std::string> output_types;
  std::vector<std::string> output_names;     // empty = output_types
  std::vector<bool> output_is_list;          // empty = all false
  std::vector<std::string> output_tooltips;  // empty = key absent
  bool output_node = false;
  bool deprecated = false;
  bool experimental = false;
  bool not_idempotent = false;  // NOT_IDEMPOTENT: the node id joins its cache key
  std::optional<CustomValidation> custom_validation;

  enum class Category { kRequired, kOptional };
  // The required or optional input called `name`, or nullptr; `category` receives which.
  const InputSpec* find_input(const std::string& name, Category* category = nullptr) const;
  const HiddenInput* find_hidden(const std::string& name) const;
};

// Builders for the common widget kinds; fields not covered stay unset.
InputSpec int_input(std::string name, Json default_value, Json min, Json max, Json step = nullptr);
InputSpec float_input(std::string name, Json default_value, Json min, Json max, Json step = nullptr,
                      Json round = nullptr);
InputSpec string_input(std::string name, Json default_value = nullptr, std::optional<bool> multiline = {});
InputSpec bool_input(std::string name, bool default_value);
InputSpec combo_input(std::string name, std::vector<std::string> options);
InputSpec link_input(std::string name, std::string type);

// The COMBO choices now (options_provider if set, else options).
std::vector<std::string> combo_options(const InputSpec& spec);
// The options dict: {"default", "min", "max", "step", "round", "multiline", extra..., "forceInput",
// "tooltip"}, only the keys that are set. This is also ComfyUI's error extra_info "input_config"[1].
Json input_options_json(const InputSpec& spec);
// The type element: "INT", "MODEL", ... or, for COMBO, the list of choices.
Json input_type_json(const InputSpec& spec);
// [type] when there are no options (a 1-tuple spec in ComfyUI), else [type, options].
Json input_spec_json(const InputSpec& spec);
// [type, options] always: ComfyUI's `input_config` in validation errors.
Json input_config_json(const InputSpec& spec);
// One /object_info entry (the value under the class name).
Json object_info_json(const NodeSchema& schema);

}  // namespace netdist::graph
