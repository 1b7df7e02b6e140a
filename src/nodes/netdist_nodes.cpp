#include "nodes/netdist_nodes.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/base64.h"
#include "core/log.h"
#include "core/py_json.h"
#include "engine/runtime/tensor_io.h"
#include "io/png.h"
#include "nodes/image_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/npy.h"
#include "nodes/upscale.h"

namespace netdist::nodes {

namespace fs = std::filesystem;
using graph::InputSpec;
using graph::NodeContext;
using graph::NodeInputs;
using graph::NodeSchema;
using graph::Value;

std::string RemoteInfoObject::repr() const {
  if (remote_url.empty()) return "{}";
  return "{'remote_url': '" + remote_url + "', 'job_id': '" + job_id + "'}";
}

std::string RemoteChainObject::repr() const {
  return "{'seed': " + std::to_string(seed) + ", 'batch': " + std::to_string(batch) +
         ", 'seed_offset': " + std::to_string(seed_offset) + ", 'job_id': '" + job_id + "'}";
}

namespace {

constexpr const char* kModule = "custom_nodes.ComfyUI_NetDist";
constexpr std::chrono::milliseconds kViewTimeout{16000};  // NetDist's /view timeout
constexpr std::chrono::milliseconds kUrlTimeout{60000};   // LoadImageUrl / SaveImageUrl (the plugin sets none)

Value int_value(uint64_t v) {
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Value(v);
  return Value(static_cast<int64_t>(v));
}

NodeSchema netdist_schema(std::string cls, std::string title, std::string category, std::vector<InputSpec> required,
                          std::vector<std::string> outputs, std::vector<std::string> names = {}) {
  NodeSchema s = make_schema(std::move(cls), std::move(title), std::move(category), std::move(required), std::move(outputs));
  s.python_module = kModule;
  s.output_names = std::move(names);
  return s;
}

InputSpec url_input(const std::string& name, graph::Json default_value = nullptr) {
  return graph::string_input(name, std::move(default_value), false);
}

InputSpec combo_with_default(const std::string& name, std::vector<std::string> options, const std::string& def) {
  InputSpec s = graph::combo_input(name, std::move(options));
  s.default_value = def;
  return s;
}

InputSpec seed_input() { return graph::int_input("seed", 0, 0, graph::Json(std::numeric_limits<uint64_t>::max())); }

// A fingerprint that never repeats: the plugin's IS_CHANGED returning str(time.time()).
std::string always_changed() {
  static std::atomic<uint64_t> n{0};
  return "always:" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + ":" +
         std::to_string(n++);
}

// True when this prompt is a netdist cluster shard: the coordinator's own RemoteQueue node already
// dispatched the remote job, so a copy of it inside a shard must not dispatch again.
bool running_in_shard(const graph::Json& prompt) {
  if (!prompt.is_object()) return false;
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (it.value().is_object() && it.value().value("class_type", std::string()).rfind("NetdistShard", 0) == 0) return true;
  }
  return false;
}

// NetDist's queue()/dispatch for one remote: clear our old jobs there, rewrite the prompt, post it.
Result<std::shared_ptr<RemoteInfoObject>> dispatch(const RemoteClient& client, NodeContext& ctx, const std::string& cls,
                                                   const std::string& raw_url, const graph::Json& prompt,
                                                   const std::string& job_id, const std::string& outputs) {
  ND_ASSIGN_OR_RETURN(std::string url, clean_remote_url(raw_url));
  auto fail = [&](const Status& s) { return s.with_context(cls + ": remote " + url); };
  if (Status s = client.clear_queue(url, ctx.prompt_id()); !s.is_ok()) return fail(s);
  auto os = client.remote_os(url);
  if (!os.is_ok()) return fail(os.status());
  auto remote_prompt = build_remote_prompt(prompt, url, outputs, *os);
  if (!remote_prompt.is_ok()) return fail(remote_prompt.status());
  auto prompt_id = client.post_prompt(url, *remote_prompt, job_id);
  if (!prompt_id.is_ok()) return fail(prompt_id.status());
  auto info = std::make_shared<RemoteInfoObject>();
  info->remote_url = url;
  info->job_id = job_id;
  info->prompt_id = *prompt_id;
  return info;
}

// PNG bytes → IMAGE [1,H,W,3] float in [0,1] and MASK [1,H,W] (1 - alpha, or zeros [1,64,64] without alpha).
Result<std::pair<at::Tensor, at::Tensor>> decode_image(const std::string& bytes, const std::string& what) {
  ND_ASSIGN_OR_RETURN(auto decoded, io::decode_png(bytes, what));
  const io::Image8& im = decoded.first;
  at::Tensor px = at::from_blob(const_cast<uint8_t*>(im.pixels.data()), {im.height, im.width, im.channels}, at::kByte)
                      .to(at::kFloat) / 255.0;
  at::Tensor rgb = im.channels >= 3 ? px.slice(2, 0, 3) : px.slice(2, 0, 1).expand({im.height, im.width, 3});
  at::Tensor mask = im.channels == 4 ? (1.0 - px.select(2, 3)).unsqueeze(0).contiguous() : at::zeros({1, 64, 64}, at::kFloat);
  return std::make_pair(rgb.contiguous().unsqueeze(0), mask);
}

Result<std::string> encode_image(const at::Tensor& image, const std::vector<io::PngText>& text) {
  at::Tensor px = (image.to(at::kFloat) * 255.0).clamp(0.0, 255.0).to(at::kByte).contiguous();
  io::Image8 im;
  im.height = static_cast<int>(px.size(0));
  im.width = static_cast<int>(px.size(1));
  im.channels = static_cast<int>(px.size(2));
  im.pixels.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
  return io::encode_png(im, text, 4);
}

// ---- latents ----

Result<at::Tensor> latent_from_npy(const std::string& bytes, const std::string& what) {
  ND_ASSIGN_OR_RETURN(NpyArray a, parse_npy(bytes, what));
  const at::ScalarType type = a.dtype == NpyDtype::kFloat16 ? at::kHalf : at::kFloat;
  at::Tensor t = at::from_blob(a.data.data(), a.shape, type).to(at::kFloat).clone();
  return t;
}

// ComfyUI's SaveLatent file: "latent_tensor", scaled by 1/0.18215 unless "latent_format_version_0" is present.
Result<at::Tensor> latent_from_comfy(std::string bytes, const std::string& what) {
  ND_ASSIGN_OR_RETURN(runtime::WeightMap w, runtime::weights_from_buffer(std::move(bytes), what, runtime::LoadDtype::kFloat32));
  auto it = w.find("latent_tensor");
  if (it == w.end()) return Status::corruption(what + ": no 'latent_tensor' in this latent file");
  at::Tensor latent = it->second.to(at::kFloat).clone();
  if (w.find("latent_format_version_0") == w.end()) latent = latent * (1.0 / 0.18215);
  return latent;
}

Result<std::shared_ptr<LatentObject>> latent_object(at::Tensor t, const std::string& what) {
  if (t.dim() == 3) t = t.unsqueeze(0);
  if (t.dim() != 4)
    return Status::invalid_argument(what + ": a latent needs 3 or 4 dimensions, this one has " + std::to_string(t.dim()));
  auto out = std::make_shared<LatentObject>();
  out->samples = t.contiguous();
  return out;
}

bool has_ext(const std::string& name, const char* ext) {
  const size_t n = std::strlen(ext);
  return name.size() >= n && name.compare(name.size() - n, n, ext) == 0;
}

std::vector<std::string> latent_files(const std::string& input_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(input_dir, ec)) {
    const std::string f = e.path().filename().string();
    if (!e.is_regular_file(ec)) continue;
    for (const char* ext : {".latent", ".safetensors", ".npy", ".npz"}) {
      if (has_ext(f, ext)) {
        out.push_back(f);
        break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// folder_paths.get_annotated_filepath: "name [output]" / "[temp]" / "[input]" (default input). Empty if the
// name would leave its folder.
std::string annotated_path(const NodeEnv& env, std::string name) {
  std::string dir = env.options().input_dir;
  const std::pair<const char*, std::string> kinds[] = {{" [output]", env.options().output_dir},
                                                       {" [temp]", env.options().temp_dir},
                                                       {" [input]", env.options().input_dir}};
  for (const auto& [suffix, folder] : kinds) {
    if (has_ext(name, suffix)) {
      name = name.substr(0, name.size() - std::strlen(suffix));  // (resize: a GCC -Wstringop-overflow false positive)
      dir = folder;
      break;
    }
  }
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '/') return "";
  return (fs::path(dir) / name).string();
}

// output_dir/<dir of prefix>/<name>_NNNNN_<ext> with ComfyUI's counter (folder_paths.get_save_image_path); the
// folder is created. invalid_argument when the prefix leaves the output folder.
Result<std::string> numbered_output_path(const NodeEnv& env, const std::string& prefix, const std::string& ext) {
  const fs::path normal = fs::path(prefix).lexically_normal();
  const fs::path root = fs::absolute(env.options().output_dir).lexically_normal();
  const fs::path folder = (root / normal.parent_path()).lexically_normal();
  const std::string name = normal.filename().string();
  if (name.empty() || normal.is_absolute() || folder.lexically_relative(root).generic_string().rfind("..", 0) == 0)
    return Status::invalid_argument("saving outside the output folder is not allowed. filename_prefix: " + prefix);
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return Status::io_error(folder.string() + ": cannot create: " + ec.message());
  char num[16];
  std::snprintf(num, sizeof num, "%05d", next_save_counter(folder, name));
  return (folder / (name + "_" + num + "_" + ext)).string();
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

// RemoteQueueSimple (nodes/simple.py).
void add_simple_queue_node(graph::NodeRegistry& r, std::shared_ptr<RemoteClient> client) {
  NodeSchema simple = netdist_schema(
      "RemoteQueueSimple", "Queue on remote (single)", "remote",
      {url_input("remote_url", "http://127.0.0.1:8288/"), graph::int_input("batch_local", 1, 1, 8),
       graph::int_input("batch_remote", 1, 1, 8), graph::combo_input("trigger", {"on_change", "always"}),
       combo_with_default("enabled", {"true", "false", "remote"}, "true"), seed_input()},
      {"INT", "INT", "REMINFO"}, {"seed", "batch", "remote_info"});
  simple.hidden = {{"prompt", "PROMPT"}};
  add_hooked_node(
      r, simple,
      [client](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
        const uint64_t seed = in.get_uint64("seed");
        const int64_t batch_local = in.get_int("batch_local"), batch_remote = in.get_int("batch_remote");
        const std::string& enabled = in.get_string("enabled");
        if (enabled == "false" || (enabled == "true" && running_in_shard(ctx.prompt())))
          return std::vector<Value>{int_value(seed), Value(batch_local), object(std::make_shared<RemoteInfoObject>())};
        if (enabled == "remote") {
          if (seed > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(batch_local))
            return Status::invalid_argument("RemoteQueueSimple: seed " + std::to_string(seed) + " + batch_local " +
                                            std::to_string(batch_local) + " exceeds 2^64-1");
          return std::vector<Value>{int_value(seed + static_cast<uint64_t>(batch_local)), Value(batch_remote),
                                    object(std::make_shared<RemoteInfoObject>())};
        }
        ND_ASSIGN_OR_RETURN(auto info, dispatch(*client, ctx, "RemoteQueueSimple", in.get_string("remote_url"),
                                                ctx.prompt(), new_job_id(), "final_image"));
        return std::vector<Value>{int_value(seed), Value(batch_local), object(info)};
      },
      [](const NodeInputs& in) -> std::optional<std::string> {
        if (in.has("trigger") && in.get_string("trigger") == "always") return always_changed();
        std::string uuid = "W:" + (in.has("remote_url") ? in.get_string("remote_url") : "");
        if (in.has("batch_local")) uuid += ",B1:" + std::to_string(in.get_int("batch_local"));
        if (in.has("batch_remote")) uuid += ",B2:" + std::to_string(in.get_int("batch_remote"));
        if (in.has("seed")) uuid += ",S:" + std::to_string(in.get_uint64("seed"));
        if (in.has("enabled")) uuid += ",E:" + in.get_string("enabled");
        return uuid;
      });
}

// RemoteChainStart / RemoteQueueWorker / RemoteChainEnd (nodes/advanced.py).
void add_chain_nodes(graph::NodeRegistry& r, std::shared_ptr<RemoteClient> client) {
  add_hooked_node(
      r,
      netdist_schema("RemoteChainStart", "Queue on remote (start of chain)", "remote/advanced",
                     {graph::link_input("workflow", "JSON"), graph::combo_input("trigger", {"on_change", "always"}),
                      graph::int_input("batch", 1, 1, 8), seed_input()},
                     {"REMCHAIN"}, {"remote_chain"}),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto workflow, need<JsonObject>(in, "workflow"));
        auto chain = std::make_shared<RemoteChainObject>();
        chain->seed = in.get_uint64("seed");
        chain->batch = in.get_int("batch");
        chain->prompt = workflow->value;
        chain->seed_offset = chain->batch;
        chain->job_id = new_job_id();
        return std::vector<Value>{object(chain)};
      },
      // The plugin's IS_CHANGED takes a `prompt` argument that ComfyUI never passes: it raises, and ComfyUI
      // treats the node as changed on every run. A new job id each run is what that gives.
      [](const NodeInputs&) -> std::optional<std::string> { return always_changed(); });

  add_fn_node(
      r,
      netdist_schema("RemoteQueueWorker", "Queue on remote (worker)", "remote/advanced",
                     {graph::link_input("remote_chain", "REMCHAIN"), url_input("remote_url", "http://127.0.0.1:8288/"),
                      graph::int_input("batch_override", 0, 0, 8),
                      combo_with_default("enabled", {"true", "false", "remote"}, "true"),
                      combo_with_default("outputs", {"final_image", "any"}, "final_image")},
                     {"REMCHAIN", "REMINFO"}, {"remote_chain", "remote_info"}),
      [client](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto in_chain, need<RemoteChainObject>(in, "remote_chain"));
        auto chain = std::make_shared<RemoteChainObject>(*in_chain);
        const int64_t batch_override = in.get_int("batch_override");
        const int64_t current_offset = chain->seed_offset;
        chain->seed_offset += batch_override == 0 ? 1 : batch_override;
        const std::string& enabled = in.get_string("enabled");
        auto empty = object(std::make_shared<RemoteInfoObject>());
        if (enabled == "false" || (enabled == "true" && running_in_shard(ctx.prompt())))
          return std::vector<Value>{object(chain), empty};
        if (enabled == "remote") {
          if (chain->seed > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(current_offset))
            return Status::invalid_argument("RemoteQueueWorker: seed + seed offset exceeds 2^64-1");
          chain->seed += static_cast<uint64_t>(current_offset);
          if (batch_override > 0) chain->batch = batch_override;
          return std::vector<Value>{object(chain), empty};
        }
        ND_ASSIGN_OR_RETURN(auto info, dispatch(*client, ctx, "RemoteQueueWorker", in.get_string("remote_url"),
                                                chain->prompt, chain->job_id, in.get_string("outputs")));
        return std::vector<Value>{object(chain), object(info)};
      });

  add_fn_node(r,
              netdist_schema("RemoteChainEnd", "Queue on remote (end of chain)", "remote/advanced",
                             {graph::link_input("remote_chain", "REMCHAIN")}, {"INT", "INT"}, {"seed", "batch"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto chain, need<RemoteChainObject>(in, "remote_chain"));
                return std::vector<Value>{int_value(chain->seed), Value(chain->batch)};
              });
}

// LoadCurrentWorkflowJSON, LoadDiskWorkflowJSON / SaveDiskWorkflowJSON (nodes/workflows.py).
void add_workflow_json_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env) {
  NodeSchema current = netdist_schema("LoadCurrentWorkflowJSON", "Load workflow (current)", "remote/advanced", {},
                                      {"JSON"}, {"Workflow JSON"});
  current.hidden = {{"prompt", "PROMPT"}};
  add_fn_node(r, current, [](NodeContext& ctx, const NodeInputs&) -> Result<std::vector<Value>> {
    auto j = std::make_shared<JsonObject>();
    j->value = ctx.prompt();
    return std::vector<Value>{object(j)};
  });

  graph::InputSpec file = graph::combo_input("workflow", {});
  file.options_provider = [env] {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(env->options().input_dir, ec)) {
      if (e.is_regular_file(ec) && e.path().extension() == ".json") out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  NodeSchema load_disk = netdist_schema("LoadDiskWorkflowJSON", "Load workflow (disk)", "remote/advanced", {file},
                                        {"JSON"}, {"Workflow JSON"});
  load_disk.custom_validation = graph::CustomValidation{{"workflow"}, [env](const graph::Json& values) -> std::optional<std::string> {
    const graph::Json& v = values.value("workflow", graph::Json());
    const std::string name = v.is_string() ? v.get<std::string>() : "";
    const std::string path = annotated_path(*env, name);
    auto bytes = path.empty() ? Result<std::string>(Status::not_found(name)) : io::read_file(path);
    if (!bytes.is_ok()) return "Invalid JSON file: " + name;
    if (graph::Json::parse(*bytes, nullptr, false).is_discarded()) return "Failed to read JSON file: " + name;
    return std::nullopt;
  }};
  add_hooked_node(
      r, load_disk,
      [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        const std::string path = annotated_path(*env, in.get_string("workflow"));
        if (path.empty()) return Status::invalid_argument("LoadDiskWorkflowJSON: invalid file '" + in.get_string("workflow") + "'");
        ND_ASSIGN_OR_RETURN(std::string bytes, io::read_file(path));
        auto j = std::make_shared<JsonObject>();
        j->value = graph::Json::parse(bytes, nullptr, false);
        if (j->value.is_discarded()) return Status::invalid_argument("LoadDiskWorkflowJSON: " + path + " is not valid JSON");
        return std::vector<Value>{object(j)};
      },
      [env](const NodeInputs& in) -> std::optional<std::string> {
        if (!in.has("workflow")) return std::nullopt;
        auto bytes = io::read_file(annotated_path(*env, in.get_string("workflow")));
        return bytes.is_ok() ? std::to_string(fnv1a(*bytes)) + ":" + std::to_string(bytes->size()) : "missing";
      });

  NodeSchema save_disk = netdist_schema("SaveDiskWorkflowJSON", "Save workflow (disk)", "remote/advanced",
                                        {graph::link_input("workflow", "JSON"), graph::string_input("filename_prefix", "workflow/ComfyUI")},
                                        {});
  save_disk.output_node = true;
  add_fn_node(r, save_disk, [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto workflow, need<JsonObject>(in, "workflow"));
    ND_ASSIGN_OR_RETURN(std::string path, numbered_output_path(*env, in.get_string("filename_prefix"), ".json"));
    ND_RETURN_IF_ERROR(io::write_file_atomic(path, workflow->value.dump(2)));
    return std::vector<Value>{};
  });
}

// FetchRemote (nodes/simple.py + core/fetch.py).
void add_fetch_remote_node(graph::NodeRegistry& r, std::shared_ptr<RemoteClient> client) {
  add_fn_node(
      r,
      netdist_schema("FetchRemote", "Fetch from remote", "remote",
                     {graph::link_input("final_image", "IMAGE"), graph::link_input("remote_info", "REMINFO")}, {"IMAGE"}),
      [client](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto final_image, need<ImageObject>(in, "final_image"));
        ND_ASSIGN_OR_RETURN(auto info, need<RemoteInfoObject>(in, "remote_info"));
        auto black = [&] {
          auto out = std::make_shared<ImageObject>();
          out->images = final_image->images.slice(0, 0, 1) * 0.0;
          return std::vector<Value>{object(out)};
        };
        if (info->remote_url.empty() || info->job_id.empty()) return black();
        auto refs = client->wait_for_job(info->remote_url, info->prompt_id, info->job_id,
                                         [&ctx] { return ctx.interrupted(); });
        if (!refs.is_ok()) return refs.status().with_context("FetchRemote");
        std::vector<at::Tensor> images;
        for (const RemoteImageRef& ref : *refs) {
          const std::string url = view_url(info->remote_url, ref);
          auto bytes = client->get(url, kViewTimeout);
          if (!bytes.is_ok()) return bytes.status().with_context("FetchRemote");
          ND_ASSIGN_OR_RETURN(auto decoded, decode_image(*bytes, url));
          if (!images.empty() && decoded.first.sizes() != images.front().sizes())
            return Status::invalid_argument("FetchRemote: the remote images from " + info->remote_url +
                                            " differ in size; they cannot form one batch");
          images.push_back(decoded.first);
        }
        if (images.empty()) return black();
        auto out = std::make_shared<ImageObject>();
        out->images = at::cat(images, 0);
        return std::vector<Value>{object(out)};
      });
}

void add_remote_queue_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env, std::shared_ptr<RemoteClient> client) {
  add_simple_queue_node(r, client);
  add_chain_nodes(r, client);
  add_workflow_json_nodes(r, env);
  add_fetch_remote_node(r, client);
}

void add_image_nodes(graph::NodeRegistry& r, std::shared_ptr<RemoteClient> client) {
  add_fn_node(r,
              netdist_schema("LoadImageUrl", "Load Image (URL)", "remote/image", {url_input("url")}, {"IMAGE", "MASK"}),
              [client](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                const std::string& url = in.get_string("url");
                auto bytes = client->get(url, kUrlTimeout);
                if (!bytes.is_ok()) return bytes.status().with_context("LoadImageUrl");
                ND_ASSIGN_OR_RETURN(auto decoded, decode_image(*bytes, url));
                auto image = std::make_shared<ImageObject>();
                image->images = decoded.first;
                auto mask = std::make_shared<MaskObject>();
                mask->mask = decoded.second;
                return std::vector<Value>{object(image), object(mask)};
              });

  NodeSchema save = netdist_schema("SaveImageUrl", "Save Image (URL)", "remote/image",
                                   {graph::link_input("images", "IMAGE"), url_input("url"),
                                    graph::string_input("filename_prefix", "ComfyUI"),
                                    graph::combo_input("data_format", {"HTML_image", "Raw_data"})},
                                   {});
  save.hidden = {{"prompt", "PROMPT"}, {"extra_pnginfo", "EXTRA_PNGINFO"}};
  save.output_node = true;
  add_fn_node(r, save, [client](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto images, need<ImageObject>(in, "images"));
    // os.path.basename(os.path.normpath(filename_prefix))
    std::string prefix = fs::path(in.get_string("filename_prefix")).lexically_normal().generic_string();
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    const std::string filename = fs::path(prefix).filename().string();
    std::vector<io::PngText> text;
    if (!ctx.prompt().is_null()) text.push_back({"prompt", python_json_dumps(ctx.prompt())});
    if (ctx.extra_pnginfo().is_object()) {
      for (auto it = ctx.extra_pnginfo().begin(); it != ctx.extra_pnginfo().end(); ++it)
        text.push_back({it.key(), python_json_dumps(it.value())});
    }
    const bool html = in.get_string("data_format") == "HTML_image";
    graph::Json data = graph::Json::object();
    for (int64_t b = 0; b < images->images.size(0); ++b) {
      ND_ASSIGN_OR_RETURN(std::string png, encode_image(images->images[b], text));
      char num[16];
      std::snprintf(num, sizeof num, "%05d", static_cast<int>(b + 1));
      const std::string encoded = base64_encode(png);
      data[filename + "_" + num + ".png"] = html ? "data:image/png;base64," + encoded : encoded;
    }
    const std::string& url = in.get_string("url");
    auto reply = client->post(url, data.dump(), "application/json", kUrlTimeout);
    if (!reply.is_ok()) return reply.status().with_context("SaveImageUrl");
    return std::vector<Value>{};
  });

  add_fn_node(r,
              netdist_schema("CombineImageBatch", "Combine images", "remote/image",
                             {graph::link_input("images_a", "IMAGE"), graph::link_input("images_b", "IMAGE")}, {"IMAGE"},
                             {"images"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto a, need<ImageObject>(in, "images_a"));
                ND_ASSIGN_OR_RETURN(auto b, need<ImageObject>(in, "images_b"));
                if (a->images.sizes().slice(1) != b->images.sizes().slice(1)) {
                  // The plugin prints this and returns images_a alone.
                  log::warn("CombineImageBatch: image size mismatch {} vs {}; returning images_a",
                            c10::str(a->images.sizes()), c10::str(b->images.sizes()));
                  return std::vector<Value>{object(a)};
                }
                auto out = std::make_shared<ImageObject>();
                out->images = at::cat({a->images, b->images}, 0);
                return std::vector<Value>{object(out)};
              });
}

void add_latent_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env, std::shared_ptr<RemoteClient> client) {
  InputSpec latent = graph::combo_input("latent", {});
  latent.options_provider = [env] { return latent_files(env->options().input_dir); };
  NodeSchema load = netdist_schema("LoadLatentNumpy", "Load Latent (Numpy)", "remote/latent", {latent}, {"LATENT"});
  load.custom_validation = graph::CustomValidation{{"latent"}, [env](const graph::Json& values) -> std::optional<std::string> {
    const graph::Json& v = values.value("latent", graph::Json());
    const std::string name = v.is_string() ? v.get<std::string>() : "";
    const std::string path = annotated_path(*env, name);
    std::error_code ec;
    if (path.empty() || !fs::is_regular_file(path, ec)) return "Invalid latent file '" + name + "'";
    return std::nullopt;
  }};
  add_hooked_node(
      r, load,
      [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        const std::string name = in.get_string("latent");
        const std::string path = annotated_path(*env, name);
        if (path.empty()) return Status::invalid_argument("LoadLatentNumpy: invalid latent file '" + name + "'");
        ND_ASSIGN_OR_RETURN(std::string bytes, io::read_file(path));
        at::Tensor t;
        const std::string ext = fs::path(name).extension().string();
        if (ext == ".latent" || ext == ".safetensors") {
          ND_ASSIGN_OR_RETURN(t, latent_from_comfy(std::move(bytes), path));
        } else if (ext == ".npz") {
          return Status::unsupported("LoadLatentNumpy: " + path + ": .npz (sd_scripts cache) files are not supported");
        } else {
          auto npy = latent_from_npy(bytes, path);
          if (!npy.is_ok() && ext != ".npy")
            return Status::invalid_argument("LoadLatentNumpy: unknown latent extension '" + ext + "' (" +
                                            npy.status().message() + ")");
          ND_ASSIGN_OR_RETURN(t, std::move(npy));
        }
        ND_ASSIGN_OR_RETURN(auto out, latent_object(std::move(t), path));
        return std::vector<Value>{object(out)};
      },
      [env](const NodeInputs& in) -> std::optional<std::string> {
        if (!in.has("latent")) return std::nullopt;
        auto bytes = io::read_file(annotated_path(*env, in.get_string("latent")));
        return bytes.is_ok() ? std::to_string(fnv1a(*bytes)) + ":" + std::to_string(bytes->size()) : "missing";
      });

  NodeSchema load_url = netdist_schema("LoadLatentUrl", "Load Latent (URL)", "remote/latent", {url_input("url")}, {"LATENT"});
  add_fn_node(r, load_url, [client](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    const std::string& url = in.get_string("url");
    auto got = client->get(url, kViewTimeout);
    if (!got.is_ok()) return got.status().with_context("LoadLatentUrl");
    at::Tensor t;
    if (url.find(".latent") != std::string::npos || url.find(".safetensors") != std::string::npos) {
      ND_ASSIGN_OR_RETURN(t, latent_from_comfy(std::move(*got), url));
    } else if (url.find(".npy") != std::string::npos) {
      ND_ASSIGN_OR_RETURN(t, latent_from_npy(*got, url));
    } else if (url.find(".npz") != std::string::npos) {
      return Status::unsupported("LoadLatentUrl: " + url + ": .npz (sd_scripts cache) files are not supported");
    } else {
      auto comfy = latent_from_comfy(std::move(*got), url);
      if (!comfy.is_ok())
        return Status::invalid_argument("LoadLatentUrl: unknown latent extension '" + url + "' (" +
                                        comfy.status().message() + ")");
      t = *comfy;
    }
    ND_ASSIGN_OR_RETURN(auto out, latent_object(std::move(t), url));
    return std::vector<Value>{object(out)};
  });

  NodeSchema save = netdist_schema("SaveLatentNumpy", "Save Latent (Numpy)", "remote/latent",
                                   {graph::link_input("samples", "LATENT"), graph::string_input("filename_prefix", "latents/ComfyUI")},
                                   {"STRING"}, {"filename"});
  save.output_node = true;
  add_fn_node(r, save, [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto samples, need<LatentObject>(in, "samples"));
    ND_ASSIGN_OR_RETURN(std::string path, numbered_output_path(*env, in.get_string("filename_prefix"), ".npy"));
    at::Tensor t = samples->samples.to(at::kFloat).contiguous();
    NpyArray a;
    a.shape.assign(t.sizes().begin(), t.sizes().end());
    a.data.assign(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * 4);
    ND_ASSIGN_OR_RETURN(std::string bytes, serialize_npy(a));
    ND_RETURN_IF_ERROR(io::write_file_atomic(path, bytes));
    return std::vector<Value>{Value(fs::path(path).filename().string())};
  });
}

}  // namespace

void register_netdist_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env, HttpFn http) {
  auto client = std::make_shared<RemoteClient>(std::move(http));
  add_remote_queue_nodes(registry, env, client);
  add_image_nodes(registry, client);
  add_latent_nodes(registry, env, client);
}

}  // namespace netdist::nodes
