#include "tools/train_tiny/emoji_data.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/png.h"

namespace netdist::train {

namespace fs = std::filesystem;

std::string normalize_caption(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '_' || c == '-') {
      out += ' ';
    } else if (c == '&') {
      out += "and";
    } else if (c == ':' || c == '"') {
      continue;
    } else {
      out += char(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  std::string squeezed;
  for (char c : out) {
    if (c == ' ' && (squeezed.empty() || squeezed.back() == ' ')) continue;
    squeezed += c;
  }
  while (!squeezed.empty() && squeezed.back() == ' ') squeezed.pop_back();
  return squeezed;
}

Result<std::string> fetch_emoji_packages(const std::string& cache_dir) {
  fs::create_directories(cache_dir);
  for (const char* set : {"twitter", "google"}) {
    const std::string pkg = std::string("emoji-datasource-") + set;
    const std::string tarball = cache_dir + "/" + pkg + "-" + kEmojiVersion + ".tgz";
    const std::string out_dir = cache_dir + "/package-" + set;
    if (fs::exists(out_dir + "/emoji.json")) continue;
    if (!fs::exists(tarball)) {
      std::string cmd = "cd '" + cache_dir + "' && npm pack --silent " + pkg + "@" + kEmojiVersion + " >/dev/null";
      if (std::system(cmd.c_str()) != 0 || !fs::exists(tarball)) {
        return Status::unavailable("npm pack " + pkg + "@" + kEmojiVersion + " failed (needs npm and the registry)");
      }
    }
    fs::create_directories(out_dir);
    std::string cmd = "tar xzf '" + tarball + "' -C '" + out_dir + "' --strip-components=1 package/emoji.json " +
                      "package/LICENSE package/img/" + set + "/64";
    if (std::system(cmd.c_str()) != 0) return Status::io_error("extracting " + tarball + " failed");
  }
  return cache_dir;
}

namespace {

// RGBA (or RGB/grey) 8-bit → [3, 64, 64] float in [-1, 1], composited over white.
Result<at::Tensor> to_tensor(const io::Image8& im, const std::string& what) {
  if (im.width != 64 || im.height != 64) return Status::invalid_argument(what + ": not 64x64");
  at::Tensor out = at::empty({3, 64, 64}, at::kFloat);
  float* p = out.data_ptr<float>();
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) {
      const uint8_t* px = im.pixels.data() + (size_t(y) * 64 + x) * im.channels;
      float alpha = im.channels == 4 ? px[3] / 255.0f : 1.0f;
      for (int c = 0; c < 3; ++c) {
        float v = im.channels >= 3 ? px[c] / 255.0f : px[0] / 255.0f;
        float composited = v * alpha + (1.0f - alpha);
        p[c * 64 * 64 + y * 64 + x] = composited * 2.0f - 1.0f;
      }
    }
  }
  return out;
}

}  // namespace

Result<EmojiDataset> load_emoji_dataset(const std::string& root) {
  EmojiDataset data;
  std::vector<at::Tensor> images;
  for (const char* set : {"twitter", "google"}) {
    const std::string dir = root + "/package-" + set;
    ND_ASSIGN_OR_RETURN(std::string json_text, io::read_file(dir + "/emoji.json"));
    nlohmann::json entries = nlohmann::json::parse(json_text, nullptr, false);
    if (!entries.is_array()) return Status::corruption(dir + "/emoji.json: not a JSON array");
    for (const auto& e : entries) {
      if (!e.value("has_img_" + std::string(set), false)) continue;
      EmojiItem item;
      item.set = set;
      item.image = e.value("image", "");
      std::string name = normalize_caption(e.value("name", ""));
      std::string category = normalize_caption(e.value("category", ""));
      if (name.empty()) {
        auto shorts = e.value("short_names", std::vector<std::string>{});
        if (!shorts.empty()) name = normalize_caption(shorts[0]);
      }
      if (name.empty() || item.image.empty()) continue;
      item.captions.push_back(name);
      for (const std::string& s : e.value("short_names", std::vector<std::string>{})) {
        std::string c = normalize_caption(s);
        if (c != name && std::find(item.captions.begin(), item.captions.end(), c) == item.captions.end()) {
          item.captions.push_back(c);
        }
      }
      if (!category.empty()) item.captions.push_back(name + ", " + category);
      const std::string path = dir + "/img/" + set + "/64/" + item.image;
      auto bytes = io::read_file(path);
      if (!bytes.is_ok()) continue;  // the package lists a few images it does not ship at 64px
      ND_ASSIGN_OR_RETURN(auto decoded, io::decode_png(*bytes, path));
      ND_ASSIGN_OR_RETURN(at::Tensor t, to_tensor(decoded.first, path));
      images.push_back(t);
      data.items.push_back(std::move(item));
    }
  }
  if (images.empty()) return Status::not_found(root + ": no emoji images found");
  data.images = at::stack(images);
  return data;
}

}  // namespace netdist::train
