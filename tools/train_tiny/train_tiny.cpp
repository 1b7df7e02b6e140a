// train_tiny: trains netdist's embedded default model (models/tiny-emoji.safetensors) on emoji images.
//
//   build/gpu/train_tiny --out models --device cuda [--data-cache .traindata] [--seed 1]
//
// Steps: fetch the emoji packages (npm pack), learn a BPE vocabulary from the captions, train the
// AutoencoderKL, then the UNet and the text encoder together (AdamW, EMA, classifier-free-guidance dropout,
// a seeded data order), and write one single-file SD1-layout checkpoint plus vocab.json / merges.txt.
// Everything is built from the engine's own modules, so the ordinary loader and family detection run the
// result. Losses are printed as plain lines; models/README.md keeps the log of the shipped model.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/runtime/tensor_io.h"
#include "engine/runtime/weights.h"
#include "engine/text/bpe_trainer.h"
#include "engine/text/clip_text_model.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/text/tokenize_prompt.h"
#include "engine/unet/unet.h"
#include "engine/vae/vae.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "tools/train_tiny/emoji_data.h"
#include "tools/train_tiny/tiny_config.h"

namespace nd = netdist;
using netdist::Status;

namespace {

struct Options {
  std::string out = "models";
  std::string data_cache = ".traindata";
  std::string device = "cuda";
  uint64_t seed = 1;
  int vae_steps = 3000;
  int unet_steps = 12000;
  int vae_batch = 128;
  int batch = 1024;  // UNet stage: the step rate on one GPU is launch-bound, so a big batch is nearly free
  int merges = 1200;
  double vae_lr = 4e-4;
  double unet_lr = 5e-4;
  double ema_decay = 0.999;
  double cfg_dropout = 0.1;
  double vae_seconds = 1e9;  // wall-clock caps: a stage ends at its step count or its time, whichever first
  double unet_seconds = 1e9;
  bool unet_f8 = true;       // store the UNet as float8 e4m3 (keeps the shipped model under 25 MB)
  std::string convert_from;  // re-store an existing checkpoint with this storage policy; no training
  // Image sizes the UNet trains at, in pixels (multiples of 8). The data is 64×64; a larger size is the
  // image upscaled (bicubic), encoded by the trained VAE. UNet step k trains at sizes[k % count], so every
  // size gets the same share of steps; the VAE trains at the first size.
  std::vector<int> sizes = {64};
};

// The images resized to size×size (bicubic, clamped to [-1, 1]); the data's own size returns them as they
// are.
at::Tensor images_at(const at::Tensor& images, int size) {
  if (images.size(-1) == size) return images;
  return at::upsample_bicubic2d(images, {size, size}, /*align_corners=*/false).clamp(-1.0, 1.0);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Words of every caption, split like the tokenizer's pre-split for plain lowercase ASCII text.
std::map<std::string, int> caption_words(const nd::train::EmojiDataset& data) {
  std::map<std::string, int> words;
  for (const auto& item : data.items) {
    for (const std::string& caption : item.captions) {
      std::string word;
      auto flush = [&] {
        if (!word.empty()) words[word] += 1;
        word.clear();
      };
      for (char c : caption) {
        unsigned char u = static_cast<unsigned char>(c);
        if (std::isalpha(u) || u >= 0x80) {
          word += c;
        } else {
          flush();
          if (!std::isspace(u)) words[std::string(1, c)] += 1;
        }
      }
      flush();
    }
  }
  return words;
}

at::Tensor token_ids(const nd::text::ClipTokenizer& tokenizer, const std::string& caption) {
  auto windows = nd::text::tokenize_with_weights(tokenizer, caption, nd::text::TokenizeOptions::clip_l());
  ND_ASSERT(windows.is_ok(), windows.status().to_string());
  const auto& ids = windows->front().ids;
  return at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
}

void ema_update(torch::nn::Module& ema, torch::nn::Module& model, double decay) {
  torch::NoGradGuard no_grad;
  auto e = ema.parameters();
  auto m = model.parameters();
  for (size_t i = 0; i < e.size(); ++i) e[i].mul_(decay).add_(m[i].detach(), 1.0 - decay);
}

void copy_weights(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard no_grad;
  auto d = dst.parameters();
  auto s = src.parameters();
  for (size_t i = 0; i < d.size(); ++i) d[i].copy_(s[i]);
}

// The engine's layers allocate parameters uninitialised and frozen (inference loads weights over them):
// give them torch.nn's default initialisation and enable gradients.
void init_for_training(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : module.named_parameters(true)) {
    at::Tensor p = item.value();
    const std::string& name = item.key();
    if (p.dim() == 1) {
      const bool is_weight = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
      p.fill_(is_weight ? 1.0 : 0.0);
    } else {
      const double bound = 1.0 / std::sqrt(double(p.numel() / p.size(0)));
      p.copy_(at::empty(p.sizes(), at::kFloat).uniform_(-bound, bound, gen));
    }
    p.set_requires_grad(true);
  }
}

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// 100 training images with their first caption, spread evenly over the dataset, for the retrieval test
// (tests/data/emoji): RGB over white, PNG, plus captions.json.
Status export_testset(const nd::train::EmojiDataset& data, const std::string& dir) {
  std::filesystem::create_directories(dir);
  nlohmann::json cases = nlohmann::json::array();
  const int64_t n = data.images.size(0);
  std::set<std::string> seen;
  for (int64_t k = 0, i = 0; k < 100 && i < n; i = (++k) * n / 100) {
    while (i < n && seen.count(data.items[i].captions[0])) ++i;
    if (i >= n) break;
    seen.insert(data.items[i].captions[0]);
    at::Tensor px =
        ((data.images[i] + 1.0) * 127.5).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
    nd::io::Image8 im{64, 64, 3,
                      std::vector<uint8_t>(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel())};
    ND_ASSIGN_OR_RETURN(std::string bytes, nd::io::encode_png(im, {}, 9));
    const std::string file = data.items[i].set + "_" + data.items[i].image;
    ND_RETURN_IF_ERROR(nd::io::write_file_atomic(dir + "/" + file, bytes));
    cases.push_back({{"file", file}, {"caption", data.items[i].captions[0]}});
  }
  return nd::io::write_file_atomic(dir + "/captions.json", cases.dump(1));
}

// Writes the checkpoint: the UNet's conv and linear weights as float8 e4m3 when asked, everything else
// (biases, norms, VAE, text encoder) as float16.
Status write_checkpoint(const std::string& path, const nd::runtime::WeightMap& weights,
                        const std::map<std::string, std::string>& metadata, bool unet_f8) {
  nd::runtime::WeightMap half;
  std::set<std::string> f8;
  for (const auto& [k, v] : weights) {
    half[k] = at::isFloatingType(v.scalar_type()) ? v.to(at::kCPU).to(at::kHalf) : v;
    if (unet_f8 && k.rfind(nd::tiny::kUnetPrefix, 0) == 0 && v.dim() >= 2) f8.insert(k);
  }
  return nd::runtime::save_safetensors_mixed(path, half, metadata,
                                             [&f8](const std::string& name) { return f8.count(name) > 0; });
}

Status convert(const Options& opt) {
  ND_ASSIGN_OR_RETURN(auto file, nd::io::SafetensorsFile::open(opt.convert_from));
  std::map<std::string, std::string> metadata(file->metadata().begin(), file->metadata().end());
  ND_ASSIGN_OR_RETURN(nd::runtime::WeightMap weights, nd::runtime::weights_from_file(file));
  std::filesystem::create_directories(opt.out);
  const std::string path = opt.out + "/tiny-emoji.safetensors";
  ND_RETURN_IF_ERROR(write_checkpoint(path, weights, metadata, opt.unet_f8));
  std::printf("wrote %s from %s (unet %s)\n", path.c_str(), opt.convert_from.c_str(),
              opt.unet_f8 ? "f8_e4m3" : "f16");
  return Status::ok();
}

Status run(const Options& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.sizes.empty()) return Status::invalid_argument("--sizes: give at least one image size");
  for (int size : opt.sizes) {
    if (size < 64 || size % 8 != 0) {
      return Status::invalid_argument("--sizes: " + std::to_string(size) +
                                      " is not a multiple of 8 of at least 64");
    }
  }
  torch::manual_seed(opt.seed);
  const at::Device device(opt.device);
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  std::filesystem::create_directories(opt.out);

  ND_ASSIGN_OR_RETURN(std::string root, nd::train::fetch_emoji_packages(opt.data_cache));
  ND_ASSIGN_OR_RETURN(nd::train::EmojiDataset data, nd::train::load_emoji_dataset(root));
  const int64_t n = data.images.size(0);
  std::printf("data: %lld images from emoji-datasource-{twitter,google}@%s (%.1fs)\n", (long long)n,
              nd::train::kEmojiVersion, seconds_since(t0));

  ND_RETURN_IF_ERROR(export_testset(data, opt.out + "/testset"));
  nd::text::BpeVocab vocab = nd::text::train_bpe(caption_words(data), opt.merges);
  ND_RETURN_IF_ERROR(nd::io::write_file_atomic(opt.out + "/vocab.json", nd::text::vocab_json(vocab)));
  ND_RETURN_IF_ERROR(nd::io::write_file_atomic(opt.out + "/merges.txt", nd::text::merges_txt(vocab)));
  ND_ASSIGN_OR_RETURN(nd::text::ClipTokenizer tokenizer, nd::text::ClipTokenizer::load(opt.out));
  std::printf("bpe: %zu merges, vocab %zu\n", vocab.merges.size(), tokenizer.vocab_size());

  // Pre-tokenized captions: caption_ids[k] for the k-th caption, caption_owner[k] its image.
  std::vector<at::Tensor> caption_ids;
  std::vector<int64_t> caption_owner;
  for (int64_t i = 0; i < n; ++i) {
    for (const std::string& c : data.items[i].captions) {
      caption_ids.push_back(token_ids(tokenizer, c));
      caption_owner.push_back(i);
    }
  }
  at::Tensor all_ids = at::stack(caption_ids).to(device);
  at::Tensor owner = at::tensor(caption_owner, at::kLong).to(device);
  at::Tensor empty_ids = token_ids(tokenizer, "").to(device);
  at::Tensor images = data.images.to(device);

  nd::tiny::TinyConfig cfg = nd::tiny::tiny_config(static_cast<int>(tokenizer.vocab_size()));
  std::mt19937_64 order(opt.seed);

  // 1. VAE.
  nd::vae::AutoencoderKL vae(cfg.vae);
  init_for_training(*vae, opt.seed);
  vae->to(device);
  std::printf("vae: %lld parameters\n", (long long)parameter_count(*vae));
  {
    torch::optim::AdamW optim(vae->parameters(), torch::optim::AdamWOptions(opt.vae_lr).weight_decay(0.0));
    const auto vae_start = std::chrono::steady_clock::now();
    for (int step = 1; step <= opt.vae_steps && seconds_since(vae_start) < opt.vae_seconds; ++step) {
      at::Tensor idx = at::randint(n, {opt.vae_batch}, at::TensorOptions().dtype(at::kLong).device(device));
      at::Tensor x = images.index_select(0, idx);
      at::Tensor flip = at::rand({opt.vae_batch, 1, 1, 1}, x.options()) < 0.5;
      x = at::where(flip, x.flip({3}), x);
      at::Tensor moments = vae->encode_moments(x);
      auto parts = moments.chunk(2, 1);
      at::Tensor logvar = parts[1].clamp(-30.0, 20.0);
      at::Tensor z = parts[0] + at::exp(0.5 * logvar) * at::randn_like(parts[0]);
      at::Tensor rec = vae->decode(z);
      at::Tensor l1 = (rec - x).abs().mean();
      at::Tensor kl = 0.5 * (parts[0].pow(2) + logvar.exp() - 1.0 - logvar).mean();
      at::Tensor loss = l1 + 1e-6 * kl;
      optim.zero_grad();
      loss.backward();
      optim.step();
      if (step % 250 == 0 || step == 1) {
        std::printf("vae step %5d  l1 %.4f  kl %.2f  (%.0fs)\n", step, l1.item<double>(), kl.item<double>(),
                    seconds_since(t0));
        std::fflush(stdout);
      }
    }
  }
  vae->eval();
  // One latent set per training size; the scale factor comes from the first (the data's own size).
  std::vector<at::Tensor> latents_by_size;
  {
    torch::NoGradGuard no_grad;
    for (int size : opt.sizes) {
      std::vector<at::Tensor> chunks;
      for (int64_t i = 0; i < n; i += 256) {
        chunks.push_back(vae->encode(images_at(images.slice(0, i, std::min(n, i + 256)), size)));
      }
      latents_by_size.push_back(at::cat(chunks));
    }
  }
  const double scale_factor = 1.0 / latents_by_size[0].std().item<double>();
  for (auto& l : latents_by_size) l = l * scale_factor;
  std::printf("vae: latent std %.4f -> scale factor %.5f\n", 1.0 / scale_factor, scale_factor);
  for (size_t i = 0; i < opt.sizes.size(); ++i) {
    std::printf("unet data: %d px -> latents %s, std %.4f\n", opt.sizes[i],
                c10::str(latents_by_size[i].sizes()).c_str(), latents_by_size[i].std().item<double>());
  }

  // 2. UNet + text encoder.
  nd::unet::UNetModel unet(cfg.unet);
  nd::text::ClipTextModel clip(cfg.text);
  nd::unet::UNetModel unet_ema(cfg.unet);
  nd::text::ClipTextModel clip_ema(cfg.text);
  init_for_training(*unet, opt.seed + 1);
  init_for_training(*unet_ema, opt.seed + 1);
  unet->to(device);
  clip->to(device);
  unet_ema->to(device);
  clip_ema->to(device);
  copy_weights(*unet_ema, *unet);
  copy_weights(*clip_ema, *clip);
  std::printf("unet: %lld parameters, text encoder: %lld parameters\n", (long long)parameter_count(*unet),
              (long long)parameter_count(*clip));

  // SD's discrete schedule: scaled-linear betas 0.00085 .. 0.012 over 1000 steps.
  std::vector<double> alphas_cumprod(1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) {
    double b = std::sqrt(0.00085) + (std::sqrt(0.012) - std::sqrt(0.00085)) * i / 999.0;
    prod *= 1.0 - b * b;
    alphas_cumprod[i] = prod;
  }
  at::Tensor ac = at::tensor(alphas_cumprod, at::kDouble).to(at::kFloat).to(device);

  std::vector<at::Tensor> params = unet->parameters();
  for (auto& p : clip->parameters()) params.push_back(p);
  torch::optim::AdamW optim(params, torch::optim::AdamWOptions(opt.unet_lr).weight_decay(0.01));
  const int64_t n_captions = all_ids.size(0);
  std::vector<int64_t> perm(n_captions);
  size_t cursor = perm.size();
  double running = 0.0;
  const auto unet_start = std::chrono::steady_clock::now();
  int unet_steps_done = 0;
  for (int step = 1; step <= opt.unet_steps; ++step) {
    const double progress =
        std::max(double(step) / opt.unet_steps, seconds_since(unet_start) / opt.unet_seconds);
    if (progress > 1.0) break;
    unet_steps_done = step;
    if (cursor + opt.batch > perm.size()) {
      for (int64_t i = 0; i < n_captions; ++i) perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), order);
      cursor = 0;
    }
    at::Tensor pick =
        at::tensor(std::vector<int64_t>(perm.begin() + cursor, perm.begin() + cursor + opt.batch), at::kLong)
            .to(device);
    cursor += opt.batch;
    at::Tensor ids = all_ids.index_select(0, pick);
    at::Tensor drop = at::rand({opt.batch, 1}, at::TensorOptions().device(device)) < opt.cfg_dropout;
    ids = at::where(drop, empty_ids.unsqueeze(0).expand_as(ids), ids);
    const at::Tensor& latents = latents_by_size[static_cast<size_t>(step) % latents_by_size.size()];
    at::Tensor x0 = latents.index_select(0, owner.index_select(0, pick));
    at::Tensor t = at::randint(1000, {opt.batch}, at::TensorOptions().dtype(at::kLong).device(device));
    at::Tensor a = ac.index_select(0, t).view({-1, 1, 1, 1});
    at::Tensor eps = at::randn_like(x0);
    at::Tensor xt = a.sqrt() * x0 + (1.0 - a).sqrt() * eps;
    at::Tensor context = clip->forward(ids, -1, true).hidden;
    at::Tensor pred = unet->forward(xt, t.to(at::kFloat), context);
    at::Tensor loss = (pred - eps).pow(2).mean();
    optim.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    const double lr =
        opt.unet_lr * std::min(1.0, step / 500.0) * (0.5 * (1.0 + std::cos(M_PI * progress)) * 0.9 + 0.1);
    for (auto& group : optim.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optim.step();
    ema_update(*unet_ema, *unet, step < 1000 ? 0.99 : opt.ema_decay);
    ema_update(*clip_ema, *clip, step < 1000 ? 0.99 : opt.ema_decay);
    running += loss.item<double>();
    if (step % 500 == 0) {
      std::printf("unet step %6d  loss %.4f  lr %.2e  (%.0fs)\n", step, running / 500.0, lr,
                  seconds_since(t0));
      std::fflush(stdout);
      running = 0.0;
    }
  }

  std::printf("unet: %d steps of batch %d in %.0fs\n", unet_steps_done, opt.batch, seconds_since(unet_start));

  // 3. Write the checkpoint: SD1 single-file names, fp16 storage, config in the metadata.
  nd::runtime::WeightMap weights;
  for (auto& [k, v] : nd::runtime::module_weights(*unet_ema, nd::tiny::kUnetPrefix)) weights[k] = v;
  for (auto& [k, v] : nd::runtime::module_weights(*vae, nd::tiny::kVaePrefix)) weights[k] = v;
  for (auto& [k, v] : nd::runtime::module_weights(*clip_ema, nd::tiny::kTextPrefix)) weights[k] = v;
  std::map<std::string, std::string> metadata = nd::tiny::metadata(cfg, scale_factor);
  metadata["netdist.vocab_json"] = nd::text::vocab_json(vocab);
  metadata["netdist.merges_txt"] = nd::text::merges_txt(vocab);
  metadata["netdist.training"] = nlohmann::json{
      {"seed", opt.seed},
      {"vae_steps", opt.vae_steps},
      {"unet_steps", unet_steps_done},
      {"batch", opt.batch},
      {"sizes", opt.sizes},
      {"images", n},
      {"seconds", seconds_since(t0)}}.dump();
  const std::string path = opt.out + "/tiny-emoji.safetensors";
  ND_RETURN_IF_ERROR(write_checkpoint(path, weights, metadata, opt.unet_f8));
  std::printf("wrote %s (%zu tensors) in %.0fs\n", path.c_str(), weights.size(), seconds_since(t0));
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Train netdist's embedded tiny emoji model"};
  app.add_option("--out", opt.out, "output folder (tiny-emoji.safetensors, vocab.json, merges.txt)");
  app.add_option("--data-cache", opt.data_cache, "where the npm packages are fetched and unpacked");
  app.add_option("--device", opt.device, "cuda, cuda:N or cpu");
  app.add_option("--seed", opt.seed);
  app.add_option("--vae-steps", opt.vae_steps);
  app.add_option("--unet-steps", opt.unet_steps);
  app.add_option("--batch", opt.batch, "UNet + text encoder batch");
  app.add_option("--vae-batch", opt.vae_batch, "VAE batch");
  app.add_option("--unet-lr", opt.unet_lr);
  app.add_option("--merges", opt.merges, "BPE merges to learn");
  app.add_option("--sizes", opt.sizes, "image sizes the UNet trains at (px, multiples of 8; the data is 64)")
      ->delimiter(',');
  app.add_option("--vae-seconds", opt.vae_seconds, "wall-clock cap for the VAE stage");
  app.add_option("--unet-seconds", opt.unet_seconds, "wall-clock cap for the UNet + text encoder stage");
  app.add_option("--unet-f8", opt.unet_f8, "store the UNet as float8 e4m3 (default true)");
  app.add_option("--convert-from", opt.convert_from,
                 "re-store this checkpoint with the storage policy; no training");
  CLI11_PARSE(app, argc, argv);
  Status s = opt.convert_from.empty() ? run(opt) : convert(opt);
  if (!s.is_ok()) {
    std::fprintf(stderr, "train_tiny: %s\n", s.to_string().c_str());
    return 1;
  }
  return 0;
}
