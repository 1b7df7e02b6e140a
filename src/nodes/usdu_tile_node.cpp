#include "nodes/usdu_tile_node.h"

#include <algorithm>
#include <cstring>

#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;
using OJson = nlohmann::ordered_json;

namespace {

// A JSON array of `n` integers ≥ `min`, or invalid_argument naming tile_job's `key`.
Result<std::vector<int64_t>> usdu_tile_ints(const OJson& j, const char* key, size_t n, int64_t min) {
  const OJson* v = j.is_object() && j.contains(key) ? &j[key] : nullptr;
  if (!v || !v->is_array() || v->size() != n)
    return Status::invalid_argument(std::string("tile_job \"") + key + "\" must be an array of " +
                                    std::to_string(n) + " integers");
  std::vector<int64_t> out;
  for (const OJson& x : *v) {
    if (!x.is_number_integer() || x.get<int64_t>() < min)
      return Status::invalid_argument(std::string("tile_job \"") + key +
                                      "\" must hold integers >= " + std::to_string(min));
    out.push_back(x.get<int64_t>());
  }
  return out;
}

Result<std::vector<Value>> run_usdu_tile_node(NodeContext& ctx, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(UsduTileJob job,
                      in_node(parse_usdu_tile_job(in.get_string("tile_job")), kUsduTileNode));
  ND_ASSIGN_OR_RETURN(UsduSampling s,
                      in_node(usdu_sampling(in, job.image_width, job.image_height), kUsduTileNode));
  Status progress_status;
  ProgressFn progress = [&](int step, int total) {
    progress_status = ctx.progress(step, total);
    return progress_status.is_ok();
  };
  auto redrawn = usdu_redraw_tiles(s, job.step, job.tiles, job.canvas_width, job.canvas_height, progress);
  if (!progress_status.is_ok()) return progress_status;
  if (!redrawn.is_ok()) return redrawn.status().with_context(kUsduTileNode);
  ND_ASSIGN_OR_RETURN(std::string bytes,
                      runtime::weights_to_buffer({{"samples", usdu_tiles_to_u8(*redrawn)}}));
  ctx.set_ui_output(OJson{{"netdist_latent", OJson::array({base64_encode(bytes)})}});
  return std::vector<Value>{};
}

}  // namespace

void register_usdu_tile_node(graph::NodeRegistry& r) {
  std::vector<graph::InputSpec> in = usdu_input_specs(false);
  in.erase(std::remove_if(in.begin(), in.end(),
                          [](const graph::InputSpec& i) { return i.name == "upscaled_image"; }),
           in.end());
  in.push_back(graph::string_input("tile_job", "{}", true));
  graph::NodeSchema s =
      make_schema(kUsduTileNode, "Ultimate SD Upscale tiles (netdist tile task)", "netdist/internal", in, {});
  s.output_node = true;
  add_fn_node(r, s, run_usdu_tile_node);
}

OJson usdu_tile_job(const UsduWave& wave, size_t k) {
  const UsduStep& step = wave.steps[wave.step_ids[k]];
  const std::vector<PilImage>& tiles = wave.inputs[k];
  OJson crops = OJson::array();
  for (const UsduTile& t : step.tiles) crops.push_back({t.crop.x1, t.crop.y1, t.crop.x2, t.crop.y2});
  std::string pixels;
  for (const PilImage& t : tiles)
    pixels.append(reinterpret_cast<const char*>(t.pixels.data()), t.pixels.size());
  const int64_t w = tiles.empty() ? 0 : tiles[0].width, h = tiles.empty() ? 0 : tiles[0].height;
  return OJson{{"image", {wave.sampling.image_width, wave.sampling.image_height}},
               {"canvas", {wave.canvas.width, wave.canvas.height}},
               {"crops", std::move(crops)},
               {"size", {w, h}},
               {"count", tiles.size()},
               {"pixels", base64_encode(pixels)}};
}

Result<UsduTileJob> parse_usdu_tile_job(const std::string& text) {
  const OJson j = OJson::parse(text, nullptr, false);
  if (!j.is_object()) return Status::invalid_argument("tile_job is not a JSON object");
  UsduTileJob job;
  ND_ASSIGN_OR_RETURN(auto image, usdu_tile_ints(j, "image", 2, 1));
  ND_ASSIGN_OR_RETURN(auto canvas, usdu_tile_ints(j, "canvas", 2, 1));
  ND_ASSIGN_OR_RETURN(auto size, usdu_tile_ints(j, "size", 2, 1));
  job.image_width = image[0];
  job.image_height = image[1];
  job.canvas_width = canvas[0];
  job.canvas_height = canvas[1];
  const OJson& crops = j.contains("crops") ? j["crops"] : OJson();
  if (!crops.is_array() || crops.empty())
    return Status::invalid_argument("tile_job \"crops\" must be a non-empty array");
  for (const OJson& c : crops) {
    ND_ASSIGN_OR_RETURN(auto box, usdu_tile_ints(OJson{{"crops", c}}, "crops", 4, 0));
    UsduTile t;
    t.crop = PilBox{box[0], box[1], box[2], box[3]};
    t.tile_width = size[0];
    t.tile_height = size[1];
    job.step.tiles.push_back(std::move(t));
  }
  const OJson& count = j.contains("count") ? j["count"] : OJson();
  if (!count.is_number_unsigned() || count.get<uint64_t>() < 1 || count.get<uint64_t>() > 4096)
    return Status::invalid_argument("tile_job \"count\" must be an integer in [1, 4096]");
  const OJson& pixels = j.contains("pixels") ? j["pixels"] : OJson();
  if (!pixels.is_string()) return Status::invalid_argument("tile_job \"pixels\" must be a base64 string");
  auto bytes = base64_decode(pixels.get<std::string>());
  if (!bytes.is_ok()) return bytes.status().with_context("tile_job \"pixels\"");
  const size_t n = count.get<size_t>(), per = static_cast<size_t>(size[0] * size[1] * 3);
  if (size[0] > 16384 || size[1] > 16384 || bytes->size() != n * per)
    return Status::invalid_argument("tile_job \"pixels\" holds " + std::to_string(bytes->size()) +
                                    " bytes, not " + std::to_string(n) + " tiles of " +
                                    std::to_string(size[0]) + "x" + std::to_string(size[1]) + " RGB");
  for (size_t i = 0; i < n; ++i) {
    PilImage t = pil_new(size[0], size[1], 3);
    std::memcpy(t.pixels.data(), bytes->data() + i * per, per);
    job.tiles.push_back(std::move(t));
  }
  return job;
}

at::Tensor usdu_tiles_to_u8(const std::vector<PilImage>& tiles) {
  ND_ASSERT(!tiles.empty(), "usdu_tiles_to_u8: no tiles");
  at::Tensor out =
      at::empty({static_cast<int64_t>(tiles.size()), tiles[0].height, tiles[0].width, 3}, at::kByte);
  for (size_t i = 0; i < tiles.size(); ++i) {
    ND_ASSERT(
        tiles[i].width == tiles[0].width && tiles[i].height == tiles[0].height && tiles[i].channels == 3,
        "usdu_tiles_to_u8: tiles differ in size");
    std::memcpy(out[static_cast<int64_t>(i)].data_ptr<uint8_t>(), tiles[i].pixels.data(),
                tiles[i].pixels.size());
  }
  return out;
}

Result<std::vector<PilImage>> usdu_tiles_from_u8(const at::Tensor& tiles, const std::string& what) {
  if (!tiles.defined() || tiles.scalar_type() != at::kByte || tiles.dim() != 4 || tiles.size(3) != 3 ||
      tiles.size(1) < 1 || tiles.size(2) < 1)
    return Status::invalid_argument(what + " must be uint8 tiles [n, h, w, 3]");
  at::Tensor t = tiles.contiguous();
  std::vector<PilImage> out;
  for (int64_t i = 0; i < t.size(0); ++i) {
    PilImage im = pil_new(t.size(2), t.size(1), 3);
    std::memcpy(im.pixels.data(), t[i].data_ptr<uint8_t>(), im.pixels.size());
    out.push_back(std::move(im));
  }
  return out;
}

}  // namespace netdist::nodes
