// Fake node classes for graph/ tests and the prompt fuzzer: the schemas of ComfyUI's text-to-image core
// nodes (pinned nodes.py, tooltips included) with implementations that only build labelled objects, plus a
// few probes (TestWidgets, TestFail, TestAny). tests/data/graph/gen_validation_golden.py declares the same
// classes in Python to produce golden validation replies from ComfyUI's own execution.py.
// Thread-safety: FakeRuns is not synchronised; use one registry per thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/node_registry.h"

namespace netdist::graph::fake {

struct Thing : Object {
  Thing(std::string type, std::string label) : type_(std::move(type)), label_(std::move(label)) {}
  std::string type_name() const override { return type_; }
  std::string repr() const override {
    std::string out = "<";
    out += type_;
    out += " ";
    out += label_;
    out += ">";
    return out;
  }
  std::string type_;
  std::string label_;
};

// How often each class ran, and an optional hook a test uses to interrupt mid-node.
struct FakeRuns {
  std::map<std::string, int> count;
  std::atomic<bool>* interrupt_at_step = nullptr;  // KSampler sets it before reporting step 2
  int total() const {
    int n = 0;
    for (const auto& [k, v] : count) n += v;
    return n;
  }
};

inline std::string label_of(const NodeInputs& in, const std::string& name) {
  auto t = in.get_object<Thing>(name);
  return t ? t->label_ : "?";
}

class FakeNode : public NodeImpl {
 public:
  using Fn = std::function<Result<std::vector<Value>>(NodeContext&, const NodeInputs&)>;
  FakeNode(std::string class_type, FakeRuns* runs, Fn fn)
      : class_type_(std::move(class_type)), runs_(runs), fn_(std::move(fn)) {}
  Result<std::vector<Value>> run(NodeContext& ctx, const NodeInputs& in) override {
    if (runs_) runs_->count[class_type_] += 1;
    return fn_(ctx, in);
  }

 private:
  std::string class_type_;
  FakeRuns* runs_;
  Fn fn_;
};

inline std::vector<std::string> sampler_names() {
  return {"euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
          "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
          "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
          "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
          "res_multistep_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2"};
}

inline std::vector<std::string> scheduler_names() {
  return {"normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta", "linear_quadratic",
          "kl_optimal"};
}

inline InputSpec tip(InputSpec spec, std::string tooltip) {
  spec.tooltip = std::move(tooltip);
  return spec;
}

inline void add_node(NodeRegistry& r, FakeRuns* runs, NodeSchema schema, FakeNode::Fn fn) {
  std::string class_type = schema.class_type;
  r.add(std::move(schema), [class_type, runs, fn] { return std::make_unique<FakeNode>(class_type, runs, fn); });
}

inline Value thing(const std::string& type, std::string label) {
  return ObjectPtr(std::make_shared<Thing>(type, std::move(label)));
}

inline void register_core_nodes(NodeRegistry& r, FakeRuns* runs) {
  NodeSchema loader;
  loader.class_type = "CheckpointLoaderSimple";
  loader.display_name = "Load Checkpoint";
  loader.category = "loaders";
  loader.description = "Loads a diffusion model checkpoint, diffusion models are used to denoise latents.";
  loader.required = {tip(combo_input("ckpt_name", {"v1-5-pruned-emaonly.safetensors", "sdxl.safetensors"}),
                         "The name of the checkpoint (model) to load.")};
  loader.output_types = {"MODEL", "CLIP", "VAE"};
  loader.output_tooltips = {"The model used for denoising latents.", "The CLIP model used for encoding text prompts.",
                            "The VAE model used for encoding and decoding images to and from latent space."};
  add_node(r, runs, loader, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    const std::string& name = in.get_string("ckpt_name");
    return std::vector<Value>{thing("MODEL", name), thing("CLIP", name), thing("VAE", name)};
  });

  NodeSchema encode;
  encode.class_type = "CLIPTextEncode";
  encode.display_name = "CLIP Text Encode (Prompt)";
  encode.category = "conditioning";
  encode.description =
      "Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model "
      "towards generating specific images.";
  InputSpec text = tip(string_input("text", nullptr, true), "The text to be encoded.");
  text.extra["dynamicPrompts"] = true;
  encode.required = {text, tip(link_input("clip", "CLIP"), "The CLIP model used for encoding the text.")};
  encode.output_types = {"CONDITIONING"};
  encode.output_tooltips = {"A conditioning containing the embedded text used to guide the diffusion model."};
  add_node(r, runs, encode, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    return std::vector<Value>{thing("CONDITIONING", in.get_string("text"))};
  });

  NodeSchema empty;
  empty.class_type = "EmptyLatentImage";
  empty.display_name = "Empty Latent Image";
  empty.category = "latent";
  empty.description = "Create a new batch of empty latent images to be denoised via sampling.";
  empty.required = {tip(int_input("width", 512, 16, 16384, 8), "The width of the latent images in pixels."),
                    tip(int_input("height", 512, 16, 16384, 8), "The height of the latent images in pixels."),
                    tip(int_input("batch_size", 1, 1, 4096), "The number of latent images in the batch.")};
  empty.output_types = {"LATENT"};
  empty.output_tooltips = {"The empty latent image batch."};
  add_node(r, runs, empty, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    return std::vector<Value>{thing("LATENT", std::to_string(in.get_int("width")) + "x" +
                                                  std::to_string(in.get_int("height")))};
  });

  NodeSchema sampler;
  sampler.class_type = "KSampler";
  sampler.display_name = "KSampler";
  sampler.category = "sampling";
  sampler.description =
      "Uses the provided model, positive and negative conditioning to denoise the latent image.";
  sampler.required = {
      tip(link_input("model", "MODEL"), "The model used for denoising the input latent."),
      tip(int_input("seed", 0, 0, uint64_t(0xffffffffffffffffull)), "The random seed used for creating the noise."),
      tip(int_input("steps", 20, 1, 10000), "The number of steps used in the denoising process."),
      tip(float_input("cfg", 8.0, 0.0, 100.0, 0.1, 0.01),
          "The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values result "
          "in images more closely matching the prompt however too high values will negatively impact quality."),
      tip(combo_input("sampler_name", sampler_names()),
          "The algorithm used when sampling, this can affect the quality, speed, and style of the generated "
          "output."),
      tip(combo_input("scheduler", scheduler_names()),
          "The scheduler controls how noise is gradually removed to form the image."),
      tip(link_input("positive", "CONDITIONING"),
          "The conditioning describing the attributes you want to include in the image."),
      tip(link_input("negative", "CONDITIONING"),
          "The conditioning describing the attributes you want to exclude from the image."),
      tip(link_input("latent_image", "LATENT"), "The latent image to denoise."),
      tip(float_input("denoise", 1.0, 0.0, 1.0, 0.01),
          "The amount of denoising applied, lower values will maintain the structure of the initial image allowing "
          "for image to image sampling.")};
  sampler.output_types = {"LATENT"};
  sampler.output_tooltips = {"The denoised latent."};
  add_node(r, runs, sampler, [runs](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    int64_t steps = in.get_int("steps");
    for (int64_t i = 0; i < steps; ++i) {
      if (runs && runs->interrupt_at_step && i == 1) runs->interrupt_at_step->store(true);
      Status s = ctx.progress(i + 1, steps);
      if (!s.is_ok()) return s;
    }
    return std::vector<Value>{thing("LATENT", "seed" + std::to_string(in.get_uint64("seed")))};
  });

  NodeSchema decode;
  decode.class_type = "VAEDecode";
  decode.display_name = "VAE Decode";
  decode.category = "latent";
  decode.description = "Decodes latent images back into pixel space images.";
  decode.required = {tip(link_input("samples", "LATENT"), "The latent to be decoded."),
                     tip(link_input("vae", "VAE"), "The VAE model used for decoding the latent.")};
  decode.output_types = {"IMAGE"};
  decode.output_tooltips = {"The decoded image."};
  add_node(r, runs, decode, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    return std::vector<Value>{thing("IMAGE", label_of(in, "samples"))};
  });

  NodeSchema save;
  save.class_type = "SaveImage";
  save.display_name = "Save Image";
  save.category = "image";
  save.description = "Saves the input images to your ComfyUI output directory.";
  save.required = {
      tip(link_input("images", "IMAGE"), "The images to save."),
      tip(string_input("filename_prefix", "ComfyUI"),
          "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "
          "%Empty Latent Image.width% to include values from nodes.")};
  save.hidden = {{"prompt", "PROMPT"}, {"extra_pnginfo", "EXTRA_PNGINFO"}};
  save.output_node = true;
  add_node(r, runs, save, [](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    Json image = Json::object();
    image["filename"] = in.get_string("filename_prefix") + "_00001_.png";
    image["subfolder"] = "";
    image["type"] = "output";
    Json ui = Json::object();
    ui["images"] = Json::array({image});
    ctx.set_ui_output(ui);
    return std::vector<Value>{};
  });

  NodeSchema widgets;
  widgets.class_type = "TestWidgets";
  widgets.category = "testing";
  widgets.required = {bool_input("flag", false), string_input("text", "")};
  widgets.optional = {int_input("count", 0, 0, 10), float_input("ratio", 0.5, 0.0, 1.0, 0.01),
                      link_input("image", "IMAGE,MASK")};
  widgets.output_types = {"INT"};
  widgets.output_node = true;
  add_node(r, runs, widgets, [](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    Json ui = Json::object();
    ui["text"] = Json::array({in.get_string("text")});
    ctx.set_ui_output(ui);
    return std::vector<Value>{in.has("count") ? in.get_int("count") : int64_t(0)};
  });

  NodeSchema fail;
  fail.class_type = "TestFail";
  fail.category = "testing";
  fail.required = {link_input("images", "IMAGE"), string_input("reason", "boom")};
  fail.output_types = {"IMAGE"};
  add_node(r, runs, fail, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    return Status::invalid_argument(in.get_string("reason"));
  });

  NodeSchema any;
  any.class_type = "TestAny";
  any.category = "testing";
  any.required = {link_input("value", "*")};
  any.output_types = {"*"};
  add_node(r, runs, any, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    return std::vector<Value>{*in.find("value")};
  });
}

}  // namespace netdist::graph::fake
