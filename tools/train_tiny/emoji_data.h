// The embedded model's training data: 64×64 emoji images with captions, from the npm packages
// emoji-datasource-twitter and emoji-datasource-google (MIT / Apache-2.0 and CC-BY 4.0 images, see
// models/README.md). Only tools/train_tiny uses this; netdist never needs it to run.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist::train {

inline constexpr const char* kEmojiVersion = "16.0.0";

struct EmojiItem {
  std::string set;                    // "twitter" or "google"
  std::string image;                  // file name, e.g. "2764-fe0f.png"
  std::vector<std::string> captions;  // "red heart", "heart", "red heart, smileys and emotion"
};

struct EmojiDataset {
  std::vector<EmojiItem> items;
  at::Tensor images;  // [N, 3, 64, 64] float32 in [-1, 1], alpha composited over white
};

// Runs `npm pack` for both packages into cache_dir (skipped when the tarballs exist) and extracts emoji.json
// and the 64px images. Returns the folder holding package-twitter/ and package-google/.
Result<std::string> fetch_emoji_packages(const std::string& cache_dir);

// Reads emoji.json and every 64px image it names from root/package-{twitter,google}/.
Result<EmojiDataset> load_emoji_dataset(const std::string& root);

// Captions as the model sees them: lowercased, '_' and '-' as spaces, '&' as "and".
std::string normalize_caption(const std::string& text);

}  // namespace netdist::train
