#include "graph/node_schema.h"

namespace netdist::graph {

const InputSpec* NodeSchema::find_input(const std::string& name, Category* category) const {
  for (const InputSpec& spec : required) {
    if (spec.name == name) {
      if (category) *category = Category::kRequired;
      return &spec;
    }
  }
  for (const InputSpec& spec : optional) {
    if (spec.name == name) {
      if (category) *category = Category::kOptional;
      return &spec;
    }
  }
  return nullptr;
}

const HiddenInput* NodeSchema::find_hidden(const std::string& name) const {
  for (const HiddenInput& h : hidden) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

InputSpec int_input(std::string name, Json default_value, Json min, Json max, Json step) {
  InputSpec spec;
  spec.name = std::move(name);
  spec.type = "INT";
  spec.default_value = std::move(default_value);
  spec.min = std::move(min);
  spec.max = std::move(max);
  spec.step = std::move(step);
  return spec;
}

InputSpec float_input(std::string name, Json default_value, Json min, Json max, Json step, Json round) {
  InputSpec spec = int_input(std::move(name), std::move(default_value), std::move(min), std::move(max),
                             std::move(step));
  spec.type = "FLOAT";
  spec.round = std::move(round);
  return spec;
}

InputSpec string_input(std::string name, Json default_value, std::optional<bool> multiline) {
  InputSpec spec;
  spec.name = std::move(name);
  spec.type = "STRING";
  spec.default_value = std::move(default_value);
  spec.multiline = multiline;
  return spec;
}

InputSpec bool_input(std::string name, bool default_value) {
  InputSpec spec;
  spec.name = std::move(name);
  spec.type = "BOOLEAN";
  spec.default_value = default_value;
  return spec;
}

InputSpec combo_input(std::string name, std::vector<std::string> options) {
  InputSpec spec;
  spec.name = std::move(name);
  spec.type = "COMBO";
  spec.options = std::move(options);
  return spec;
}

InputSpec link_input(std::string name, std::string type) {
  InputSpec spec;
  spec.name = std::move(name);
  spec.type = std::move(type);
  return spec;
}

std::vector<std::string> combo_options(const InputSpec& spec) {
  return spec.options_provider ? spec.options_provider() : spec.options;
}

Json input_options_json(const InputSpec& spec) {
  Json opts = Json::object();
  if (!spec.default_value.is_null()) opts["default"] = spec.default_value;
  if (!spec.min.is_null()) opts["min"] = spec.min;
  if (!spec.max.is_null()) opts["max"] = spec.max;
  if (!spec.step.is_null()) opts["step"] = spec.step;
  if (!spec.round.is_null()) opts["round"] = spec.round;
  if (spec.multiline) opts["multiline"] = *spec.multiline;
  for (auto it = spec.extra.begin(); it != spec.extra.end(); ++it) opts[it.key()] = it.value();
  if (spec.force_input) opts["forceInput"] = true;
  if (!spec.tooltip.empty()) opts["tooltip"] = spec.tooltip;
  return opts;
}

Json input_type_json(const InputSpec& spec) {
  if (spec.type == "COMBO") return Json(combo_options(spec));
  return Json(spec.type);
}

Json input_spec_json(const InputSpec& spec) {
  Json out = Json::array({input_type_json(spec)});
  Json opts = input_options_json(spec);
  if (!opts.empty()) out.push_back(std::move(opts));
  return out;
}

Json input_config_json(const InputSpec& spec) {
  return Json::array({input_type_json(spec), input_options_json(spec)});
}

Json object_info_json(const NodeSchema& schema) {
  Json input = Json::object();
  Json order = Json::object();
  // "required" is always there, empty for a node without inputs (ComfyUI's DisableNoise: {"required": {}}).
  auto add_group = [&](const char* key, const std::vector<InputSpec>& specs) {
    if (specs.empty() && std::string_view(key) != "required") return;
    Json group = Json::object();
    Json names = Json::array();
    for (const InputSpec& spec : specs) {
      group[spec.name] = input_spec_json(spec);
      names.push_back(spec.name);
    }
    input[key] = std::move(group);
    order[key] = std::move(names);
  };
  add_group("required", schema.required);
  add_group("optional", schema.optional);
  if (!schema.hidden.empty()) {
    Json group = Json::object();
    Json names = Json::array();
    for (const HiddenInput& h : schema.hidden) {
      group[h.name] = h.kind;
      names.push_back(h.name);
    }
    input["hidden"] = std::move(group);
    order["hidden"] = std::move(names);
  }
  Json info = Json::object();
  info["input"] = std::move(input);
  info["input_order"] = std::move(order);
  info["output"] = schema.output_types;
  if (schema.output_is_list.empty()) {
    info["output_is_list"] = std::vector<bool>(schema.output_types.size(), false);
  } else {
    info["output_is_list"] = schema.output_is_list;
  }
  info["output_name"] = schema.output_names.empty() ? schema.output_types : schema.output_names;
  info["name"] = schema.class_type;
  info["display_name"] = schema.display_name.empty() ? schema.class_type : schema.display_name;
  info["description"] = schema.description;
  info["python_module"] = schema.python_module;
  info["category"] = schema.category;
  info["output_node"] = schema.output_node;
  if (!schema.output_tooltips.empty()) info["output_tooltips"] = schema.output_tooltips;
  if (schema.deprecated) info["deprecated"] = true;
  if (schema.experimental) info["experimental"] = true;
  return info;
}

}  // namespace netdist::graph
