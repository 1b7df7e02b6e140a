#include "nodes/model_tile_nodes.h"

#include <cstring>

#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "netdist/upscale_model.h"
#include "netdist/vae_tiles.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;
using OJson = nlohmann::ordered_json;

namespace {

constexpr int64_t kModelTileMaxValues = int64_t{1} << 28;

const ModelTileKind kModelTileKinds[] = {{"ImageUpscaleWithModel", kUpscaleTileNode, "upscale_model"},
                                         {"VAEDecodeTiled", kVaeDecodeTileNode, "vae"}};

// The worker node's result: float32 tiles as its UI "netdist_latent" (the shard runner's reply rows), after
// one `progress` event for the tiles (a worker's status shows it; --test-step-delay-ms throttles on it).
Status model_tile_ui(NodeContext& ctx, const at::Tensor& out) {
  ND_RETURN_IF_ERROR(ctx.progress(out.size(0), out.size(0)));
  ND_ASSIGN_OR_RETURN(std::string bytes, runtime::weights_to_buffer({{"samples", out.contiguous()}}));
  ctx.set_ui_output(OJson{{"netdist_latent", OJson::array({base64_encode(bytes)})}});
  return Status::ok();
}

Result<std::vector<Value>> run_upscale_tiles(NodeContext& ctx, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto model, need<UpscaleModelObject>(in, "upscale_model"));
  ND_ASSIGN_OR_RETURN(at::Tensor tiles, in_node(parse_model_tile_job(in.get_string("tile_job")), kUpscaleTileNode));
  ND_ASSIGN_OR_RETURN(at::Tensor out, in_node(upscale_tiles(*model->model, tiles), kUpscaleTileNode));
  ND_RETURN_IF_ERROR(model_tile_ui(ctx, out));
  return std::vector<Value>{};
}

Result<std::vector<Value>> run_vae_decode_tiles(NodeContext& ctx, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
  ND_ASSIGN_OR_RETURN(at::Tensor tiles, in_node(parse_model_tile_job(in.get_string("tile_job")), kVaeDecodeTileNode));
  ND_ASSIGN_OR_RETURN(at::Tensor out, in_node(decode_tiles(*vae->model, tiles), kVaeDecodeTileNode));
  ND_RETURN_IF_ERROR(model_tile_ui(ctx, out));
  return std::vector<Value>{};
}

void add_model_tile_node(graph::NodeRegistry& r, const char* cls, const char* display, graph::InputSpec model,
                         RunFn fn) {
  graph::NodeSchema s =
      make_schema(cls, display, "netdist/internal", {std::move(model), graph::string_input("tile_job", "{}", true)}, {});
  s.output_node = true;
  add_fn_node(r, s, std::move(fn));
}

// ImageUpscaleWithModel as upscale_model_nodes.cpp runs it, its tiles through `runner` when there is one.
Result<std::vector<Value>> run_upscale_node(NodeContext& ctx, const NodeInputs& in, const ModelTileKind& kind,
                                            const ModelTileRunnerFor& runner_for) {
  ND_ASSIGN_OR_RETURN(auto model, need<UpscaleModelObject>(in, "upscale_model"));
  ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
  std::optional<TileRunner> runner;
  if (upscale_tile_count(image->images) >= 2 && runner_for) runner = runner_for(ctx, kind);
  Status progress_status = Status::ok();
  const auto progress = [&](int done, int total) {
    progress_status = ctx.progress(done, total);
    return progress_status.is_ok();
  };
  Result<at::Tensor> upscaled = runner ? upscale_image_tiled_by(*model->model, image->images, *runner)
                                       : upscale_image(*model->model, image->images, progress);
  if (!progress_status.is_ok()) return progress_status;
  auto out = std::make_shared<ImageObject>();
  ND_ASSIGN_OR_RETURN(out->images, in_node(std::move(upscaled), kind.node_class));
  return std::vector<Value>{object(out)};
}

// VAEDecodeTiled as model_nodes.cpp runs it, its tiles through `runner` when there is one.
Result<std::vector<Value>> run_vae_decode_tiled_node(NodeContext& ctx, const NodeInputs& in,
                                                     const ModelTileKind& kind,
                                                     const ModelTileRunnerFor& runner_for) {
  ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
  ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
  std::optional<TileRunner> runner = runner_for ? runner_for(ctx, kind) : std::nullopt;
  const int64_t tile_size = in.get_int("tile_size"), overlap = in.get_int("overlap");
  auto out = std::make_shared<ImageObject>();
  ND_ASSIGN_OR_RETURN(out->images,
                      in_node(runner ? decode_tiled_by(*vae->model, s->samples, tile_size, overlap, *runner)
                                     : decode_tiled(*vae->model, s->samples, tile_size, overlap),
                              kind.node_class));
  return std::vector<Value>{object(out)};
}

}  // namespace

void register_model_tile_nodes(graph::NodeRegistry& r) {
  add_model_tile_node(r, kUpscaleTileNode, "Upscale model tiles (netdist tile task)",
                      graph::link_input("upscale_model", "UPSCALE_MODEL"), run_upscale_tiles);
  add_model_tile_node(r, kVaeDecodeTileNode, "VAE decode tiles (netdist tile task)", graph::link_input("vae", "VAE"),
                      run_vae_decode_tiles);
}

// The JSON also says "channels_last" (optional, default false): the memory format the tiles are computed in,
// the local code's, so that libtorch picks the same kernels and gives the same bits.
std::string model_tile_job(const at::Tensor& tiles) {
  const bool channels_last = tiles.dim() == 4 && tiles.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  const at::Tensor t = tiles.to(at::kCPU, at::kFloat).contiguous();
  const std::string_view data(reinterpret_cast<const char*>(t.data_ptr<float>()), size_t(t.numel()) * sizeof(float));
  return OJson{{"shape", t.sizes().vec()}, {"channels_last", channels_last}, {"data", base64_encode(data)}}.dump();
}

Result<at::Tensor> parse_model_tile_job(const std::string& text) {
  const OJson j = OJson::parse(text, nullptr, false);
  if (!j.is_object()) return Status::invalid_argument("tile_job is not a JSON object");
  const OJson& shape = j.contains("shape") ? j["shape"] : OJson();
  if (!shape.is_array() || shape.size() != 4)
    return Status::invalid_argument("tile_job \"shape\" must be an array of 4 integers [n, c, h, w]");
  std::vector<int64_t> dims;
  int64_t values = 1;
  for (const OJson& d : shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() < 1 || d.get<uint64_t>() > uint64_t(kModelTileMaxValues))
      return Status::invalid_argument("tile_job \"shape\" must hold integers >= 1");
    dims.push_back(d.get<int64_t>());
    values *= dims.back();
    if (values > kModelTileMaxValues)
      return Status::invalid_argument("tile_job \"shape\" has more than 2^28 values");
  }
  const OJson& data = j.contains("data") ? j["data"] : OJson();
  if (!data.is_string()) return Status::invalid_argument("tile_job \"data\" must be a base64 string");
  auto bytes = base64_decode(data.get<std::string>());
  if (!bytes.is_ok()) return bytes.status().with_context("tile_job \"data\"");
  if (bytes->size() != size_t(values) * sizeof(float))
    return Status::invalid_argument("tile_job \"data\" holds " + std::to_string(bytes->size()) + " bytes, not " +
                                    std::to_string(values) + " float32 values");
  at::Tensor out = at::empty(dims, at::kFloat);
  std::memcpy(out.data_ptr<float>(), bytes->data(), bytes->size());
  const OJson& cl = j.contains("channels_last") ? j["channels_last"] : OJson(false);
  if (!cl.is_boolean()) return Status::invalid_argument("tile_job \"channels_last\" must be true or false");
  return cl.get<bool>() ? out.contiguous(at::MemoryFormat::ChannelsLast) : out;
}

const ModelTileKind* model_tile_kind(const std::string& node_class) {
  for (const ModelTileKind& k : kModelTileKinds)
    if (k.node_class == node_class) return &k;
  return nullptr;
}

graph::NodeFactory model_tile_node_factory(const ModelTileKind& kind, ModelTileRunnerFor runner_for) {
  RunFn fn = [kind, runner_for](NodeContext& ctx, const NodeInputs& in) {
    return kind.node_class == "VAEDecodeTiled" ? run_vae_decode_tiled_node(ctx, in, kind, runner_for)
                                               : run_upscale_node(ctx, in, kind, runner_for);
  };
  return [fn] { return std::make_unique<FnNode>(fn); };
}

}  // namespace netdist::nodes
