#include "nodes/image_nodes.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "core/py_json.h"
#include "io/image_decode.h"
#include "io/png.h"
#include "io/sha256.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/upscale.h"

namespace netdist::nodes {

namespace fs = std::filesystem;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

void replace_all_in_place(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) s.replace(pos, from.size(), to);
}

// snprintf, not "0" + to_string: GCC 12 at -O3 reports a false -Wstringop-overflow on that in some unity TUs.
std::string two_digits(int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

}  // namespace

int next_save_counter(const fs::path& folder, const std::string& name) {
  int best = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string f = e.path().filename().string();
    if (f.size() <= name.size() || f.compare(0, name.size(), name) != 0 || f[name.size()] != '_') continue;
    const std::string rest = f.substr(name.size() + 1);
    const std::string digits = rest.substr(0, rest.find('_'));
    int value = 0;
    bool ok = !digits.empty();
    for (char c : digits) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    if (ok && digits.size() < 10) value = std::stoi(digits);
    best = std::max(best, value);
  }
  return best + 1;
}

namespace {

std::mutex& numbering_mutex() {
  static std::mutex m;
  return m;
}

// Guarded by numbering_mutex().
OutputRecorder& output_recorder() {
  static OutputRecorder recorder;
  return recorder;
}

Result<std::vector<SavedImage>> write_numbered_locked(const fs::path& folder, const std::string& subfolder,
                                                      const std::string& name, const std::vector<std::string>& pngs,
                                                      const std::string& prompt_id) {
  int counter = next_save_counter(folder, name);
  std::vector<SavedImage> saved;
  for (size_t b = 0; b < pngs.size(); ++b) {
    std::string base = name;
    replace_all_in_place(base, "%batch_num%", std::to_string(b));
    char num[16];
    std::snprintf(num, sizeof num, "%05d", counter);
    const std::string file = base + "_" + num + "_.png";
    const std::string path = (folder / file).string();
    if (output_recorder() && !prompt_id.empty()) ND_RETURN_IF_ERROR(output_recorder()(prompt_id, path));
    ND_RETURN_IF_ERROR(io::write_file_atomic(path, pngs[b]));
    saved.push_back({file, subfolder == "." ? "" : subfolder});
    ++counter;
  }
  return saved;
}

io::Image8 to_image8(const at::Tensor& image) {
  at::Tensor px = (image.to(at::kFloat) * 255.0).clamp(0.0, 255.0).to(at::kByte).contiguous();
  io::Image8 out;
  out.height = static_cast<int>(px.size(0));
  out.width = static_cast<int>(px.size(1));
  out.channels = static_cast<int>(px.size(2));
  out.pixels.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
  return out;
}

}  // namespace

void set_output_recorder(OutputRecorder recorder) {
  std::lock_guard<std::mutex> lock(numbering_mutex());
  output_recorder() = std::move(recorder);
}

Result<std::vector<SavedImage>> save_images(const at::Tensor& images, const std::string& output_dir,
                                            const std::string& filename_prefix, const nlohmann::ordered_json& prompt,
                                            const nlohmann::ordered_json& extra_pnginfo, int compress_level,
                                            const std::string& prompt_id) {
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0) {
    return Status::invalid_argument("SaveImage: images must be a non-empty [N, H, W, C] batch");
  }
  std::string prefix = filename_prefix;
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  replace_all_in_place(prefix, "%width%", std::to_string(images.size(2)));
  replace_all_in_place(prefix, "%height%", std::to_string(images.size(1)));
  replace_all_in_place(prefix, "%year%", std::to_string(tm.tm_year + 1900));
  replace_all_in_place(prefix, "%month%", two_digits(tm.tm_mon + 1));
  replace_all_in_place(prefix, "%day%", two_digits(tm.tm_mday));
  replace_all_in_place(prefix, "%hour%", two_digits(tm.tm_hour));
  replace_all_in_place(prefix, "%minute%", two_digits(tm.tm_min));
  replace_all_in_place(prefix, "%second%", two_digits(tm.tm_sec));
  const fs::path normal = fs::path(prefix).lexically_normal();
  const std::string subfolder = normal.parent_path().generic_string();
  const std::string name = normal.filename().string();
  const fs::path root = fs::absolute(output_dir).lexically_normal();
  const fs::path folder = (root / subfolder).lexically_normal();
  const std::string rel = folder.lexically_relative(root).generic_string();
  if (name.empty() || normal.is_absolute() || rel.rfind("..", 0) == 0) {
    return Status::invalid_argument("Saving image outside the output folder is not allowed. filename_prefix: " +
                                    filename_prefix);
  }
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return Status::io_error(folder.string() + ": cannot create: " + ec.message());

  std::vector<io::PngText> text;
  if (!prompt.is_null()) text.push_back({"prompt", python_json_dumps(prompt)});
  if (extra_pnginfo.is_object()) {
    for (auto it = extra_pnginfo.begin(); it != extra_pnginfo.end(); ++it) {
      text.push_back({it.key(), python_json_dumps(it.value())});
    }
  }
  // PNG compression is the slow part of saving a batch: encode the images on parallel threads (each image's
  // bytes are the same as a serial encode), then number and write them in batch order under the lock.
  const int64_t n = images.size(0);
  std::vector<std::optional<Result<std::string>>> encoded(static_cast<size_t>(n));
  {
    std::atomic<int64_t> next{0};
    auto encode_some = [&] {
      for (int64_t b; (b = next++) < n;) encoded[b] = io::encode_png(to_image8(images[b]), text, compress_level);
    };
    const int64_t threads = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (int64_t i = 1; i < threads; ++i) pool.emplace_back(encode_some);
    encode_some();
    for (std::thread& t : pool) t.join();
  }
  std::vector<std::string> pngs;
  pngs.reserve(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; ++b) {
    ND_ASSIGN_OR_RETURN(std::string bytes, std::move(*encoded[b]));
    pngs.push_back(std::move(bytes));
  }
  std::lock_guard<std::mutex> lock(numbering_mutex());
  return write_numbered_locked(folder, subfolder, name, pngs, prompt_id);
}

Result<std::vector<SavedImage>> write_numbered_pngs(const std::string& output_dir, const std::string& subfolder,
                                                    const std::string& name, const std::vector<std::string>& pngs,
                                                    const std::string& prompt_id) {
  const fs::path root = fs::absolute(output_dir).lexically_normal();
  const fs::path folder = (root / subfolder).lexically_normal();
  const std::string rel = folder.lexically_relative(root).generic_string();
  if (name.empty() || name.find('/') != std::string::npos || fs::path(subfolder).is_absolute() ||
      rel.empty() || rel.rfind("..", 0) == 0) {
    return Status::invalid_argument("image '" + name + "' in subfolder '" + subfolder +
                                    "' would be written outside " + output_dir);
  }
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return Status::io_error(folder.string() + ": cannot create: " + ec.message());
  std::lock_guard<std::mutex> lock(numbering_mutex());
  return write_numbered_locked(folder, rel == "." ? "" : rel, name, pngs, prompt_id);
}

namespace {

// The "images" UI output ComfyUI's SaveImage/PreviewImage report for `saved`.
graph::Json ui_images(const std::vector<SavedImage>& saved, const char* type) {
  graph::Json list = graph::Json::array();
  for (const SavedImage& s : saved) list.push_back({{"filename", s.filename}, {"subfolder", s.subfolder}, {"type", type}});
  return graph::Json{{"images", list}};
}

// SaveImage and PreviewImage.
void add_save_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env) {
  graph::NodeSchema save;
  save.class_type = "SaveImage";
  save.display_name = "Save Image";
  save.category = "image";
  save.description = "Saves the input images to your ComfyUI output directory.";
  save.required = {graph::link_input("images", "IMAGE"), graph::string_input("filename_prefix", "ComfyUI")};
  save.required[0].tooltip = "The images to save.";
  save.required[1].tooltip =
      "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "
      "%Empty Latent Image.width% to include values from nodes.";
  save.hidden = {{"prompt", "PROMPT"}, {"extra_pnginfo", "EXTRA_PNGINFO"}};
  save.output_node = true;
  add_fn_node(r, save, [env](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto images, need<ImageObject>(in, "images"));
    const bool meta = !env->options().disable_metadata;
    ND_ASSIGN_OR_RETURN(auto saved, save_images(images->images, env->options().output_dir, in.get_string("filename_prefix"),
                                                meta ? ctx.prompt() : graph::Json(), meta ? ctx.extra_pnginfo() : graph::Json(), 4,
                                                ctx.prompt_id()));
    ctx.set_ui_output(ui_images(saved, "output"));
    return std::vector<Value>{};
  });

  graph::NodeSchema preview;
  preview.class_type = "PreviewImage";
  preview.display_name = "Preview Image";
  preview.category = "image";
  preview.description = "Saves the input images to your ComfyUI output directory.";
  preview.required = {graph::link_input("images", "IMAGE")};
  preview.hidden = {{"prompt", "PROMPT"}, {"extra_pnginfo", "EXTRA_PNGINFO"}};
  preview.output_node = true;
  r.add(preview, [env]() -> std::unique_ptr<graph::NodeImpl> {
    // ComfyUI picks the random suffix once per node instance.
    static const char kLetters[] = "abcdefghijklmnopqrstupvxyz";
    std::random_device rd;
    std::string suffix;
    for (int i = 0; i < 5; ++i) suffix += kLetters[rd() % 26];
    const std::string prefix = "ComfyUI_temp_" + suffix;
    return std::make_unique<FnNode>([env, prefix](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
      ND_ASSIGN_OR_RETURN(auto images, need<ImageObject>(in, "images"));
      const bool meta = !env->options().disable_metadata;
      ND_ASSIGN_OR_RETURN(auto saved, save_images(images->images, env->options().temp_dir, prefix,
                                                  meta ? ctx.prompt() : graph::Json(), meta ? ctx.extra_pnginfo() : graph::Json(), 1,
                                                  ctx.prompt_id()));
      ctx.set_ui_output(ui_images(saved, "temp"));
      return std::vector<Value>{};
    });
  });
}

// LoadImage.
void add_load_image_node(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env) {
  graph::InputSpec image = graph::combo_input("image", {});
  image.options_provider = [env] { return env->input_images(); };
  image.extra["image_upload"] = true;
  graph::NodeSchema load;
  load.class_type = "LoadImage";
  load.display_name = "Load Image";
  load.category = "image";
  load.required = {image};
  load.output_types = {"IMAGE", "MASK"};
  // ComfyUI's LoadImage.VALIDATE_INPUTS: any existing file under input_dir is valid (also one in a
  // subfolder, as uploads with a subfolder and the cluster's shard inputs are), not only the listed ones.
  // netdist also reads the file's headers (not its pixels): a file that is not a PNG, JPEG or WebP image,
  // whose headers are corrupt, or that this build cannot decode fails here, named, instead of at run time.
  load.custom_validation = graph::CustomValidation{{"image"}, [env](const graph::Json& values) -> std::optional<std::string> {
    const graph::Json& v = values.value("image", graph::Json());
    const std::string name = v.is_string() ? v.get<std::string>() : "";
    std::error_code ec;
    const fs::path path = fs::path(env->options().input_dir) / name;
    if (name.empty() || name.find("..") != std::string::npos || name.front() == '/' || !fs::is_regular_file(path, ec))
      return "Invalid image file: " + name;
    Result<io::ImageHeader> header = io::read_image_file_header(path.string(), name);
    if (!header.is_ok()) return "Invalid image file: " + header.status().message();
    return std::nullopt;
  }};
  // ComfyUI's LoadImage.IS_CHANGED: the file's SHA-256, so a file replaced under the same name (an upload
  // with overwrite) is read again instead of served from the cache; PROMPT (the PNG metadata) records it.
  auto image_path = [env](const NodeInputs& in) -> Result<std::string> {
    const std::string name = in.get_string("image");
    if (name.find("..") != std::string::npos) return Status::invalid_argument("Invalid image file: " + name);
    return (fs::path(env->options().input_dir) / name).string();
  };
  auto file_hash = [image_path](const NodeInputs& in) -> std::optional<std::string> {
    Result<std::string> path = image_path(in);
    Result<std::string> h = path.is_ok() ? io::file_sha256(*path) : path.status();
    return h.is_ok() ? std::optional<std::string>(*h) : std::nullopt;
  };
  add_hooked_node(r, load, [image_path](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(const std::string path, image_path(in));
    ND_ASSIGN_OR_RETURN(std::string bytes, io::read_file(path));
    ND_ASSIGN_OR_RETURN(io::DecodedImage decoded, io::decode_image(bytes, path));
    // ComfyUI: for every frame (ImageSequence; several only for an animated WebP here), the RGB pixels / 255
    // and as the mask 1 - alpha / 255, or zeros [64, 64] where the mode has no alpha band; both batched.
    std::vector<at::Tensor> images, masks;
    for (const io::Image8& im : decoded.frames) {
      at::Tensor px = at::from_blob(const_cast<uint8_t*>(im.pixels.data()), {im.height, im.width, im.channels}, at::kByte)
                          .to(at::kFloat) / 255.0;
      images.push_back(px.slice(2, 0, 3));
      masks.push_back(im.channels == 4 ? 1.0 - px.select(2, 3) : at::zeros({64, 64}, at::kFloat));
    }
    auto out = std::make_shared<ImageObject>();
    out->images = at::stack(images).contiguous();
    auto mask = std::make_shared<MaskObject>();
    mask->mask = at::stack(masks).contiguous();
    return std::vector<Value>{object(out), object(mask)};
  }, file_hash);
}

// ComfyUI's core ImageBatch (nodes.py): image2 resized to image1's size (bilinear, center crop) if needed.
void add_image_batch_node(graph::NodeRegistry& r) {
  graph::NodeSchema batch = make_schema("ImageBatch", "Batch Images", "image",
                                 {graph::link_input("image1", "IMAGE"), graph::link_input("image2", "IMAGE")}, {"IMAGE"});
  add_fn_node(r, batch, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto a, need<ImageObject>(in, "image1"));
    ND_ASSIGN_OR_RETURN(auto b, need<ImageObject>(in, "image2"));
    at::Tensor second = b->images;
    if (a->images.sizes().slice(1) != second.sizes().slice(1)) {
      ND_ASSIGN_OR_RETURN(at::Tensor up, common_upscale(second.movedim(-1, 1), a->images.size(2), a->images.size(1),
                                                        "bilinear", "center"));
      second = up.movedim(1, -1);
      if (second.size(-1) != a->images.size(-1))
        return Status::invalid_argument("ImageBatch: image1 has " + std::to_string(a->images.size(-1)) +
                                        " channels, image2 " + std::to_string(second.size(-1)));
    }
    auto out = std::make_shared<ImageObject>();
    out->images = at::cat({a->images, second.contiguous()}, 0);
    return std::vector<Value>{object(out)};
  });
}

}  // namespace

void register_image_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env) {
  add_save_nodes(r, env);
  add_load_image_node(r, env);
  add_image_batch_node(r);
}

}  // namespace netdist::nodes
